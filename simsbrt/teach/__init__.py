"""Teaching demonstrations of dose gradients (issue 6): figures and a self-contained HTML page."""
