"""Measures on depth-dose curves and lateral profiles: dmax, PDD normalisation, 80-20 penumbra."""
from __future__ import annotations

import numpy as np


def dmax_mm(depth_mm: np.ndarray, dose: np.ndarray) -> float:
    """Depth of maximum dose, refined by a parabola through the maximum and its neighbours."""
    depth = np.asarray(depth_mm, dtype=float)
    d = np.asarray(dose, dtype=float)
    i = int(np.argmax(d))
    if 0 < i < len(d) - 1:
        x0, x1, x2 = depth[i - 1:i + 2]
        y0, y1, y2 = d[i - 1:i + 2]
        denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
        if denom != 0:
            a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
            b = (x2 * x2 * (y0 - y1) + x1 * x1 * (y2 - y0) + x0 * x0 * (y1 - y2)) / denom
            if a < 0:
                return float(np.clip(-b / (2 * a), x0, x2))
    return float(depth[i])


def _crossing(x: np.ndarray, y: np.ndarray, level: float) -> float:
    """First x (going outwards) where the decreasing profile y falls to level (linear interpolation)."""
    below = np.nonzero(y <= level)[0]
    if len(below) == 0 or below[0] == 0:
        return float("nan")
    j = below[0]
    x0, x1, y0, y1 = x[j - 1], x[j], y[j - 1], y[j]
    return float(x0 + (level - y0) * (x1 - x0) / (y1 - y0)) if y1 != y0 else float(x1)


def penumbra_80_20_mm(x_mm: np.ndarray, dose: np.ndarray, centre_dose: float | None = None) -> float:
    """80-20 % width of a field edge, averaged over both edges present in the profile.

    The profile is normalised to the central-axis dose (``centre_dose``, or the value nearest x = 0).
    """
    x = np.asarray(x_mm, dtype=float)
    y = np.asarray(dose, dtype=float)
    order = np.argsort(x)
    x, y = x[order], y[order]
    if centre_dose is None:
        centre_dose = float(y[np.argmin(np.abs(x))])
    y = y / centre_dose
    widths = []
    for sign in (1.0, -1.0):
        side = (x * sign) >= 0
        xs = (x * sign)[side]
        ys = y[side]
        o = np.argsort(xs)
        xs, ys = xs[o], ys[o]
        if len(xs) < 3 or ys[-1] > 0.2:
            continue
        w = _crossing(xs, ys, 0.2) - _crossing(xs, ys, 0.8)
        if np.isfinite(w):
            widths.append(w)
    return float(np.mean(widths)) if widths else float("nan")
