"""Arc sequencing: an optimised beamlet fluence -> one MLC aperture per control point within the limits.

1. Fluence per gantry angle: the plan's beamlet weights (MU) reshaped on each control point's
   beam's-eye-view grid; control points with the same geometry (the cw and ccw full arcs share
   their angles) are summed, and that angle's fluence is shared by its m copies.
2. Leaf-pair profiles: each leaf pair sees the mean fluence of the beamlet rows it covers
   (overlap-weighted; a 2.5 mm leaf over a 2.5 mm beamlet row sees that row exactly).
3. Apertures: m apertures per angle, one per copy, fitted greedily by least squares: with residual
   R (initially the fluence), the aperture A and MU w minimise ||R - w 1_A||^2 (leaf-width
   weighted). For a given w that is, per leaf pair, the interval of cells maximising sum(R - w / 2)
   (a maximum-sum subarray, empty allowed); w is chosen from N_LEVELS levels of R's maximum.
   The r-th aperture of an angle goes to the r-th copy (arc order), so an arc sees apertures of
   the same rank at neighbouring angles. Each aperture's leaf edges are then median-filtered over
   3 neighbouring open pairs (removes single-pair spikes: a smoother aperture, a higher MCS, for a
   small dose cost; docs/deliverable.md has the comparison).
4. Machine limits per arc: between consecutive control points each leaf moves at most
   d = max_leaf_speed x (sector angle / max gantry speed) - min_gap / 2 (the gantry may only turn
   slower, never faster, so this bound holds whatever MU the segments get). The leaf tracks are
   projected onto that bound by the mean of the forward- and backward-clamped tracks (each is
   d-Lipschitz, so their mean is); clamping preserves x1 <= x2. Then the leaf travel range, and
   the minimum tip-to-tip gap by opening closed pairs symmetrically (<= min_gap / 2 per leaf,
   hence the margin in d). Closed leaf pairs park at the centre of their aperture's open region.
   Jaws are static per arc: the bounding box of every open leaf pair of the arc, within the
   machine's jaw limits.
The MU of each aperture (w) only seeds the segment-weight re-optimisation (simsbrt.delivery.plan).
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from simsbrt.delivery.apertures import Apertures
from simsbrt.delivery.machine import MachineModel
from simsbrt.errors import SpecError

N_LEVELS = 12
DEFAULT_MEDIAN_PAIRS = 3


def median_intervals(start, stop, window: int):
    """Median-filter the open intervals' edges over `window` neighbouring open leaf pairs (closed pairs stay
    closed; a pair the filter would close keeps its own interval)."""
    from scipy.ndimage import median_filter

    opened = stop > start
    if opened.sum() < 3:
        return start, stop
    idx = np.flatnonzero(opened)
    s = start.copy()
    e = stop.copy()
    s[idx] = median_filter(start[idx], size=window, mode="nearest")
    e[idx] = median_filter(stop[idx], size=window, mode="nearest")
    bad = e <= s
    s[bad & opened], e[bad & opened] = start[bad & opened], stop[bad & opened]
    return s, e


def angle_fluence(beamlets, weights_mu) -> "OrderedDict":
    """Geometry key -> (control point indices, k0, l0, summed fluence (n_k, n_l) in MU)."""
    weights = np.asarray(weights_mu, dtype=np.float64)
    if weights.shape != (beamlets.n_beamlets,):
        raise SpecError("weights_mu", f"needs {beamlets.n_beamlets} beamlet weights, got {weights.shape}")
    offsets = beamlets.column_offsets
    groups: OrderedDict = OrderedDict()
    for c, (cp, g) in enumerate(zip(beamlets.control_points, beamlets.grids)):
        key = (round(cp.gantry_deg, 6), round(cp.couch_deg, 6), round(cp.collimator_deg, 6),
               tuple(np.round(cp.isocentre_mm, 6)))
        groups.setdefault(key, []).append((c, g, weights[offsets[c]:offsets[c + 1]]))
    out = OrderedDict()
    for key, members in groups.items():
        k0 = min(g.k0 for _, g, _ in members)
        l0 = min(g.l0 for _, g, _ in members)
        k1 = max(g.k0 + g.n_u for _, g, _ in members)
        l1 = max(g.l0 + g.n_v for _, g, _ in members)
        fluence = np.zeros((k1 - k0, l1 - l0))
        for _, g, w in members:
            block = np.zeros(g.active.shape)
            block[g.active] = w
            fluence[g.k0 - k0:g.k0 - k0 + g.n_u, g.l0 - l0:g.l0 - l0 + g.n_v] += block
        out[key] = ([c for c, _, _ in members], k0, l0, fluence)
    return out


def leaf_pair_profiles(fluence: np.ndarray, l0: int, size_mm: float, boundaries_mm: np.ndarray) -> np.ndarray:
    """(n_pairs, n_k) mean fluence each leaf pair sees along its cells (beamlet rows overlap-weighted)."""
    n_l = fluence.shape[1]
    row_lo = (l0 + np.arange(n_l)) * size_mm
    lo = np.maximum(boundaries_mm[:-1, None], row_lo[None, :])
    hi = np.minimum(boundaries_mm[1:, None], row_lo[None, :] + size_mm)
    overlap = np.clip(hi - lo, 0.0, None)                      # (n_pairs, n_l) mm
    width = np.diff(boundaries_mm)[:, None]
    return (overlap / width) @ fluence.T


def best_intervals(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the maximum-sum interval [start, stop) of ``values`` (empty -> start = stop = 0, gain 0)."""
    n_rows, n = values.shape
    start = np.zeros(n_rows, dtype=np.int64)
    stop = np.zeros(n_rows, dtype=np.int64)
    gain = np.zeros(n_rows)
    run = np.zeros(n_rows)
    run_start = np.zeros(n_rows, dtype=np.int64)
    for k in range(n):
        restart = run <= 0.0
        run = np.where(restart, values[:, k], run + values[:, k])
        run_start = np.where(restart, k, run_start)
        better = run > gain
        gain = np.where(better, run, gain)
        start = np.where(better, run_start, start)
        stop = np.where(better, k + 1, stop)
    return start, stop, gain


def fit_aperture(residual: np.ndarray, pair_width_mm: np.ndarray):
    """(start, stop, mu): the aperture and MU minimising the width-weighted ||residual - mu 1_A||^2."""
    top = float(residual.max()) if residual.size else 0.0
    n_pairs = residual.shape[0]
    best = (np.zeros(n_pairs, np.int64), np.zeros(n_pairs, np.int64), 0.0)
    best_gain = 0.0
    if top <= 0.0:
        return best
    for level in np.linspace(1.0 / N_LEVELS, 1.0, N_LEVELS):
        mu = level * top
        start, stop, gain = best_intervals(residual - 0.5 * mu)
        total = 2.0 * mu * float((gain * pair_width_mm).sum())   # reduction of the squared error
        if total > best_gain:
            best_gain, best = total, (start, stop, mu)
    return best


def _clamped_tracks(targets: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Mean of the forward- and backward-clamped tracks (n_cp, ...): consecutive moves <= step[c]."""
    fwd = targets.copy()
    for c in range(1, len(fwd)):
        fwd[c] = np.clip(fwd[c], fwd[c - 1] - step[c - 1], fwd[c - 1] + step[c - 1])
    bwd = targets.copy()
    for c in range(len(bwd) - 2, -1, -1):
        bwd[c] = np.clip(bwd[c], bwd[c + 1] - step[c], bwd[c + 1] + step[c])
    return 0.5 * (fwd + bwd)


def max_leaf_step_mm(machine: MachineModel, sector_deg: float) -> float:
    """Largest leaf move between consecutive control points sector_deg apart (at full gantry speed)."""
    return machine.max_leaf_speed_mm_per_s * sector_deg / machine.max_gantry_speed_deg_per_s


def sequence_plan(beamlets, weights_mu, arc_set, machine: MachineModel, smoothing_mm: float = 0.0,
                  median_pairs: int = DEFAULT_MEDIAN_PAIRS):
    """Apertures of every control point within the machine's limits, and the fitted MU per control point.
    smoothing_mm > 0: each angle's fluence is first smoothed with a Gaussian of that sigma (iso plane);
    median_pairs > 1: each fitted aperture's leaf edges are median-filtered over that many open pairs."""
    size = float(beamlets.size_mm)
    bounds = machine.leaf_boundaries_mm
    width = np.diff(bounds)
    n_cp, n_pairs = beamlets.n_control_points, machine.n_leaf_pairs
    targets = np.zeros((n_cp, n_pairs, 2))
    is_open = np.zeros((n_cp, n_pairs), dtype=bool)
    fitted_mu = np.zeros(n_cp)
    for members, k0, l0, fluence in angle_fluence(beamlets, weights_mu).values():
        lo_v, hi_v = l0 * size, (l0 + fluence.shape[1]) * size
        if lo_v < bounds[0] - 1e-9 or hi_v > bounds[-1] + 1e-9:
            raise SpecError("machine", f"the beamlets span v = {lo_v:g}..{hi_v:g} mm, beyond the "
                                       f"{machine.name} leaf bank ({bounds[0]:g}..{bounds[-1]:g} mm)")
        if smoothing_mm > 0:
            from scipy.ndimage import gaussian_filter

            fluence = gaussian_filter(fluence, smoothing_mm / size, mode="constant")
        residual = leaf_pair_profiles(fluence, l0, size, bounds)
        for c in members:
            start, stop, mu = fit_aperture(residual, width)
            if median_pairs > 1:
                start, stop = median_intervals(start, stop, median_pairs)
            opened = stop > start
            x1, x2 = (k0 + start) * size, (k0 + stop) * size
            centre = float(np.mean(0.5 * (x1 + x2)[opened])) if opened.any() else 0.5 * (k0 + k0 + fluence.shape[0]) * size
            targets[c, :, 0] = np.where(opened, x1, centre)
            targets[c, :, 1] = np.where(opened, x2, centre)
            is_open[c] = opened
            fitted_mu[c] = mu
            cells = np.arange(residual.shape[1])[None, :]
            residual = residual - mu * ((cells >= start[:, None]) & (cells < stop[:, None]))
    arc_of_cp = np.array([cp.arc_index for cp in beamlets.control_points], dtype=np.int64)
    leaves = np.zeros_like(targets)
    jaws = np.zeros((n_cp, 4))
    gap = machine.min_leaf_gap_mm
    for a, arc in enumerate(arc_set.arcs):
        cps = np.flatnonzero(arc_of_cp == a)
        if len(cps) == 0:
            continue
        sector = arc.span_deg / len(cps)
        step = np.full(max(len(cps) - 1, 1), max(max_leaf_step_mm(machine, sector) - 0.5 * gap, 0.0))
        track = _clamped_tracks(targets[cps], step)
        track = np.clip(track, machine.leaf_position_min_mm, machine.leaf_position_max_mm)
        mid = 0.5 * (track[..., 0] + track[..., 1])
        short = track[..., 1] - track[..., 0] < gap
        track[..., 0] = np.where(short, mid - 0.5 * gap, track[..., 0])
        track[..., 1] = np.where(short, mid + 0.5 * gap, track[..., 1])
        leaves[cps] = track
        jaws[cps] = arc_jaws(track, is_open[cps], bounds, machine)
    return Apertures(machine, tuple(beamlets.control_points), arc_of_cp, leaves, jaws), fitted_mu


def arc_jaws(track: np.ndarray, is_open: np.ndarray, bounds: np.ndarray, machine: MachineModel) -> np.ndarray:
    """Static jaws (x1, x2, y1, y2) of one arc: the bounding box of its open leaf pairs, within the limits."""
    if not is_open.any():
        x = (-machine.min_leaf_gap_mm, machine.min_leaf_gap_mm)
        y = (bounds[len(bounds) // 2 - 1], bounds[len(bounds) // 2])
    else:
        x = (float(track[..., 0][is_open].min()), float(track[..., 1][is_open].max()))
        pairs = np.flatnonzero(is_open.any(axis=0))
        y = (float(bounds[pairs.min()]), float(bounds[pairs.max() + 1]))
    x = np.clip(x, *machine.jaw_x_mm)
    y = np.clip(y, *machine.jaw_y_mm)
    return np.array([x[0], x[1], y[0], y[1]])
