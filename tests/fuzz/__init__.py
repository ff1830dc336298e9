"""Fuzzing every input format through the real command line (see harness.py and mutations.py)."""
