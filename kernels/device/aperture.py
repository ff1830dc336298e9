"""Dose per MU of an MLC aperture at one control point: the one routine both drivers run.

An aperture is the union of leaf-pair rectangles [x1_j, x2_j] x [b_j, b_j+1] (iso-plane mm; leaves
move along X_b = u, the pairs are stacked along Y_b = v), each clipped by the jaws
[jx1, jx2] x [jy1, jy2]. Every rectangle is integrated exactly as in beam.aperture_dose_per_mu
(the pencil-beam kernel convolved analytically with the rectangle: products of Gaussian interval
masses), so the aperture's dose is the exact sum over its open rectangles. A rectangle whose
nearest u or v edge lies more than EDGE_NSIGMA widths away from the point on one side is skipped
(and a whole component when the jaw rectangle does):
its mass is below erfc(EDGE_NSIGMA / sqrt 2) / 2 < 1e-19 of the component, under the float64
rounding of the sum (no lateral cut-off of any physical size).

MLC transmission: the closed-leaf area inside the jaws (the jaw rectangle, clipped to the leaf bank,
minus the open leaf-pair rectangles) transmits a fraction T of the open-field dose of the jaws, T as
measured (closed-leaf dose / open-field dose, same jaws). So the dose is
    (1 - T) x Sc(open leaf area) x open rectangles + T x Sc(jaw field) x jaw rectangle
(T = cpf[cp, AP_T], the machine file's mlc.transmission_frac; Sc the head-scatter factor of each
field's equivalent square), and a fully closed bank gives exactly T x the open field of its jaws.
Outside the jaws nothing is transmitted (jaw transmission neglected, docs/deliverable.md);
tongue-and-groove and rounded leaf ends are not modelled.

Control-point tables: cpf as in influence.py (source, X_b, Y_b, Z_b, isocentre, head-scatter
factor Sc of the open area) plus T and the jaw field's Sc; leaves (n_cp, n_pairs, 2) = (x1, x2);
jaws (n_cp, 4) = (x1, x2, y1, y2).
"""
import math

from .beam import (N_COMPONENTS, P_GY_PER_MU, P_SAD, component_amplitude, component_sigma_mm, gaussian_edge_tail,
                   gaussian_interval_mass, interval_mass_from_tails, inverse_square_factor)

EDGE_NSIGMA = 9.0
AP_SRC = 0
AP_XB = 3
AP_YB = 6
AP_ZB = 9
AP_ISO = 12
AP_SC = 15
AP_T = 16
AP_SC_JAWS = 17
AP_COLUMNS = 18


def mlc_aperture_dose_per_mu(u_mm, v_mm, z_rad_mm, r_geo_mm, cp, boundaries, leaves, jaws, head_scatter,
                             transmission, head_scatter_jaws, p):
    """Absolute dose (Gy per MU) at iso-plane point (u, v) from the MLC aperture of control point cp,
    with the fraction `transmission` of the open-field dose through the closed leaves inside the jaws
    (head-scatter factors: head_scatter for the open leaf area, head_scatter_jaws for the jaw field).

    Adjacent leaf pairs share their boundary, so each v edge tail is evaluated once per component; a leaf tip
    at the same position as the previous pair's reuses its tail too (the same values, computed once)."""
    jx1 = jaws[cp, 0]
    jx2 = jaws[cp, 1]
    jy1 = jaws[cp, 2]
    jy2 = jaws[cp, 3]
    n_pairs = leaves.shape[1]
    by1 = boundaries[0] if boundaries[0] > jy1 else jy1             # the jaw rectangle under the leaf bank
    by2 = boundaries[n_pairs] if boundaries[n_pairs] < jy2 else jy2
    total = 0.0
    total_jaws = 0.0
    for i in range(N_COMPONENTS):
        amp = component_amplitude(i, z_rad_mm, p)
        if amp <= 0.0:
            continue
        s = component_sigma_mm(i, z_rad_mm, p)
        reach = EDGE_NSIGMA * s
        if jx1 - u_mm > reach or u_mm - jx2 > reach or by1 - v_mm > reach or v_mm - by2 > reach:
            continue               # every rectangle of the field lies beyond EDGE_NSIGMA widths (module doc)
        acc = 0.0
        last_edge = 1e300          # the v edge whose tail is held in last_tail
        last_tail = 0.0
        last_ulo = 1e300           # the u edges (leaf tips) whose tails are held: neighbouring pairs often share them
        tail_ulo = 0.0
        last_uhi = 1e300
        tail_uhi = 0.0
        for j in range(n_pairs):
            vlo = boundaries[j] if boundaries[j] > jy1 else jy1
            vhi = boundaries[j + 1] if boundaries[j + 1] < jy2 else jy2
            if vhi <= vlo:
                continue
            if vlo - v_mm > reach or v_mm - vhi > reach:
                continue
            ulo = leaves[cp, j, 0] if leaves[cp, j, 0] > jx1 else jx1
            uhi = leaves[cp, j, 1] if leaves[cp, j, 1] < jx2 else jx2
            if uhi <= ulo or ulo - u_mm > reach or u_mm - uhi > reach:
                continue
            tail_lo = last_tail if vlo == last_edge else gaussian_edge_tail(vlo - v_mm, s)
            tail_hi = gaussian_edge_tail(vhi - v_mm, s)
            last_edge = vhi
            last_tail = tail_hi
            mass_v = interval_mass_from_tails(vlo - v_mm, vhi - v_mm, tail_lo, tail_hi)
            if ulo != last_ulo:
                last_ulo = ulo
                tail_ulo = gaussian_edge_tail(ulo - u_mm, s)
            if uhi != last_uhi:
                last_uhi = uhi
                tail_uhi = gaussian_edge_tail(uhi - u_mm, s)
            acc += interval_mass_from_tails(ulo - u_mm, uhi - u_mm, tail_ulo, tail_uhi) * mass_v
        if transmission > 0.0 and jx2 > jx1 and by2 > by1:
            total_jaws += amp * (gaussian_interval_mass(jx1 - u_mm, jx2 - u_mm, s)
                                 * gaussian_interval_mass(by1 - v_mm, by2 - v_mm, s))
        total += amp * acc
    fluence = (1.0 - transmission) * head_scatter * total + transmission * head_scatter_jaws * total_jaws
    return p[P_GY_PER_MU] * inverse_square_factor(r_geo_mm, p[P_SAD]) * fluence


def mlc_point_dose_per_mu(px, py, pz, z_rad_mm, cp, cpf, boundaries, leaves, jaws, p):
    """Dose per MU at patient point (px, py, pz) (radiological depth z_rad from this control point's source)."""
    sad = p[P_SAD]
    rx = px - cpf[cp, AP_ISO]
    ry = py - cpf[cp, AP_ISO + 1]
    rz = pz - cpf[cp, AP_ISO + 2]
    t = sad - (rx * cpf[cp, AP_ZB] + ry * cpf[cp, AP_ZB + 1] + rz * cpf[cp, AP_ZB + 2])
    if t <= 1.0:
        return 0.0
    mag = sad / t
    u = (rx * cpf[cp, AP_XB] + ry * cpf[cp, AP_XB + 1] + rz * cpf[cp, AP_XB + 2]) * mag
    v = (rx * cpf[cp, AP_YB] + ry * cpf[cp, AP_YB + 1] + rz * cpf[cp, AP_YB + 2]) * mag
    gx = px - cpf[cp, AP_SRC]
    gy = py - cpf[cp, AP_SRC + 1]
    gz = pz - cpf[cp, AP_SRC + 2]
    r_geo = math.sqrt(gx * gx + gy * gy + gz * gz)
    return mlc_aperture_dose_per_mu(u, v, z_rad_mm, r_geo, cp, boundaries, leaves, jaws, cpf[cp, AP_SC], cpf[cp, AP_T],
                                    cpf[cp, AP_SC_JAWS], p)
