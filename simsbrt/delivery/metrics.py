"""Delivery numbers of an aperture plan: MU, delivery time and the modulation complexity score.

Delivery time of a segment (consecutive control points c, c + 1 of an arc; simsbrt.delivery.apertures):
    t = max(angle / max gantry speed, segment MU / max dose rate, largest leaf move / max leaf speed)
(the gantry slows down whenever the dose rate or the leaves need more time); the plan's time is
the sum over the segments of every arc, beam-on only (no time between arcs).

Modulation complexity score (McNiven, Sharpe, Purdie, Med Phys 2010;37:505): per aperture
    LSV = prod over banks of prod_n (pos_max - |pos_n - pos_n+1|) / pos_max   (adjacent open leaves)
    AAV = sum_a (x2_a - x1_a) / sum_a max over the beam's apertures of (x2_a - x1_a)
    MCS = sum over apertures of AAV x LSV x MU / MU_beam,
with pos_max the range of the bank's open leaf positions. Evaluated here per control point with its
MU (the VMAT form of Masi et al., Med Phys 2013;40:071718, on the static control-point apertures);
the plan's MCS is the MU-weighted mean over its arcs. 1 = one open rectangle; lower = more modulated.
Open leaves: pairs inside the Y jaws whose gap exceeds the machine's minimum gap.
"""
from __future__ import annotations

import numpy as np

from simsbrt.delivery.apertures import Apertures, cp_mu

GAP_TOLERANCE_MM = 1e-6


def open_pairs(apertures: Apertures, c: int) -> np.ndarray:
    b = apertures.machine.leaf_boundaries_mm
    jaws = apertures.jaws_mm[c]
    inside = (b[1:] > jaws[2] + GAP_TOLERANCE_MM) & (b[:-1] < jaws[3] - GAP_TOLERANCE_MM)
    gap = apertures.leaves_mm[c, :, 1] - apertures.leaves_mm[c, :, 0]
    return inside & (gap > apertures.machine.min_leaf_gap_mm + GAP_TOLERANCE_MM)


def leaf_sequence_variability(x: np.ndarray) -> float:
    """LSV of one bank's open leaf positions (in leaf order); 1 for fewer than two leaves."""
    if len(x) < 2:
        return 1.0
    pos_max = float(x.max() - x.min())
    if pos_max <= 0.0:
        return 1.0
    return float(np.prod((pos_max - np.abs(np.diff(x))) / pos_max))


def modulation_complexity_score(apertures: Apertures, mu_per_cp) -> float:
    """MU-weighted MCS of the plan (module doc)."""
    mu = np.asarray(mu_per_cp, dtype=np.float64)
    scores, arc_mu = [], []
    for arc in apertures.arc_slices():
        cps = range(arc.start, arc.stop)
        width = apertures.leaves_mm[arc, :, 1] - apertures.leaves_mm[arc, :, 0]
        masks = np.array([open_pairs(apertures, c) for c in cps])
        widest = np.where(masks, width, 0.0).max(axis=0)
        total = float(mu[arc].sum())
        if total <= 0.0 or widest.sum() <= 0.0:
            continue
        score = 0.0
        for i, c in enumerate(cps):
            m = masks[i]
            if not m.any() or mu[c] <= 0.0:
                continue
            lsv = (leaf_sequence_variability(apertures.leaves_mm[c, m, 0])
                   * leaf_sequence_variability(apertures.leaves_mm[c, m, 1]))
            aav = float(width[i][m].sum() / widest.sum())
            score += aav * lsv * mu[c] / total
        scores.append(score)
        arc_mu.append(total)
    return float(np.average(scores, weights=arc_mu)) if scores else float("nan")


def segment_times_s(apertures: Apertures, segment_mu_per_fraction) -> np.ndarray:
    """Beam-on time of every segment (module doc), in segment order."""
    machine = apertures.machine
    seg = np.asarray(segment_mu_per_fraction, dtype=np.float64)
    times, s = [], 0
    for arc in apertures.arc_slices():
        cps = list(range(arc.start, arc.stop))
        for c in cps[:-1]:
            angle = abs((apertures.control_points[c + 1].gantry_deg - apertures.control_points[c].gantry_deg + 180.0)
                        % 360.0 - 180.0)
            move = float(np.abs(apertures.leaves_mm[c + 1] - apertures.leaves_mm[c]).max())
            times.append(max(angle / machine.max_gantry_speed_deg_per_s, seg[s] / machine.max_dose_rate_mu_per_s,
                             move / machine.max_leaf_speed_mm_per_s))
            s += 1
    return np.asarray(times)


def max_leaf_speed_mm_per_s(apertures: Apertures, segment_mu_per_fraction) -> float:
    """The fastest leaf move of the plan at its delivery timing (must not exceed the machine's)."""
    times = segment_times_s(apertures, segment_mu_per_fraction)
    moves, s = [], 0
    for arc in apertures.arc_slices():
        for c in range(arc.start, arc.stop - 1):
            moves.append(float(np.abs(apertures.leaves_mm[c + 1] - apertures.leaves_mm[c]).max()))
            s += 1
    return float(max(m / t for m, t in zip(moves, times))) if moves else 0.0


def delivery_metrics(apertures: Apertures, segment_mu_total, n_fractions: int) -> dict:
    """MU per fraction, beam-on time per fraction, MCS and the fastest leaf (per-fraction timing)."""
    seg_fx = np.asarray(segment_mu_total, dtype=np.float64) / n_fractions
    times = segment_times_s(apertures, seg_fx)
    mu_cp = cp_mu(seg_fx, apertures.arc_of_cp)
    machine = apertures.machine
    return {"mu_per_fraction": float(seg_fx.sum()),
            "delivery_time_s_per_fraction": float(times.sum()),
            "mcs": modulation_complexity_score(apertures, mu_cp),
            "max_leaf_speed_mm_per_s": max_leaf_speed_mm_per_s(apertures, seg_fx),
            "machine": machine.name,
            "calibration": f"{machine.calibration_gy_per_mu * 100:g} cGy/MU at dmax, SSD 100 cm, 10 x 10 cm "
                           f"({machine.energy}); dose rate cap {machine.max_dose_rate_mu_per_min:g} MU/min"}
