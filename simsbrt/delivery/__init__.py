"""Deliverable VMAT: machine limits as data, MLC apertures per control point, their exact dose, MU,
delivery time and modulation (docs/deliverable.md)."""
