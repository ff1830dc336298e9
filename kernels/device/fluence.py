"""Dose of one control point's fluence map at one voxel: the final dose of a plan, without a matrix.

The influence-matrix entry of beamlet (k, l) (kernels/device/influence.py, exact mode) is
    D[voxel, (k, l)] = scale * sum_c fx_c[k] * fy_c[l]
with fx_c / fy_c the per-component Gaussian masses of the cell's u / v interval (component_masses,
amplitudes in fx). For a fluence map W (MU per cell, zero where no beamlet) the dose is therefore
    sum_{k,l} D[voxel, (k, l)] W[k, l] = scale * sum_c fx_c^T W fy_c,
evaluated with the same device functions (beam_coordinates, component_masses): 3 (nu + nv) edge
tails and 3 nu nv multiply-adds per (voxel, control point) instead of a matrix row.

The two scatter components are summed over every cell of the box of non-zero weights. The primary
(width s0 of a few mm) is summed over the cells that meet [u - R s0, u + R s0] x [v - R s0, v + R s0]
(R = reach_nsigma; R <= 0: every cell). What that leaves out is bounded, not estimated: the masses of
the cells outside the window sum to at most the Gaussian mass beyond R sigmas on either side,
outside = erfc(R / sqrt(2)), in u and in v, so the omitted primary dose is at most
    bound = scale * a0 * max(W) * 2 * outside,
returned with the dose; the caller checks the bound against the dose (simsbrt.dose.final).

Columns (fluence_column_dose): the voxels of one grid column (same x, y; different z) share the
iso-plane coordinate u of every control point whose X_b and Z_b have no z component (coplanar arcs,
collimator 0: u = (r . X_b) SAD / (SAD - r . Z_b) does not depend on z, bit for bit). The scatter widths
do not depend on depth (beam.component_sigma_mm), so the u-side masses m_c(k; u) of the two scatter
components and the row sums r_c[l] = sum_k m_c(k; u) W[k, l] are computed once per column and control
point; each voxel then needs a_c * sum_l m_c(l; v) r_c[l]: 2 (nv + 1) edge tails and 2 nv multiply-adds
for the scatter instead of 2 (nu + nv + 2) tails and 2 nu nv multiply-adds. The primary (its width
depends on the voxel's depth) is evaluated per voxel as above. The same sums, in another order:
equal to fluence_pair_dose up to float64 rounding.
"""
import math

from .beam import component_amplitude, component_sigma_mm
from .influence import CPI_GEOM, CPI_K0, CPI_L0, CPI_NV, STRIDE, TILE, beam_coordinates, component_masses


def fluence_pair_dose(px, py, pz, z_rad, cp, cpf, cpi, pitch, p, fluence, fl0, box, wmax, reach_nsigma, outside,
                      fx, fy):
    """(dose, bound) in Gy at voxel (px, py, pz) (radiological depth z_rad from this control point's source) of
    the fluence map of control point cp: fluence[fl0[cp] + k * nv + l] MU in cell (k, l); only the cells
    box[cp] = (k_lo, k_hi, l_lo, l_hi) (half-open) can be non-zero; wmax[cp] = the largest of them."""
    u, v, scale = beam_coordinates(px, py, pz, cp, cpf, p)
    if scale <= 0.0:
        return 0.0, 0.0
    nv = cpi[cp, CPI_NV]
    eu0 = cpi[cp, CPI_K0] * pitch
    ev0 = cpi[cp, CPI_L0] * pitch
    a0 = component_amplitude(0, z_rad, p)
    a1 = component_amplitude(1, z_rad, p)
    a2 = component_amplitude(2, z_rad, p)
    s0 = component_sigma_mm(0, z_rad, p)
    s1 = component_sigma_mm(1, z_rad, p)
    s2 = component_sigma_mm(2, z_rad, p)
    base = fl0[cp]
    k_lo = box[cp, 0]
    k_hi = box[cp, 1]
    l_lo = box[cp, 2]
    l_hi = box[cp, 3]
    total = 0.0
    # scatter components: every cell of the box
    kt = k_lo
    while kt < k_hi:
        nk = min(TILE, k_hi - kt)
        component_masses(fx, STRIDE, eu0, kt, nk, pitch, u, s1, a1)
        component_masses(fx, 2 * STRIDE, eu0, kt, nk, pitch, u, s2, a2)
        lt = l_lo
        while lt < l_hi:
            nl = min(TILE, l_hi - lt)
            component_masses(fy, STRIDE, ev0, lt, nl, pitch, v, s1, 1.0)
            component_masses(fy, 2 * STRIDE, ev0, lt, nl, pitch, v, s2, 1.0)
            for qk in range(nk):
                row = base + (kt + qk) * nv + lt
                t1 = 0.0
                t2 = 0.0
                for ql in range(nl):
                    w = fluence[row + ql]
                    t1 += w * fy[STRIDE + ql]
                    t2 += w * fy[2 * STRIDE + ql]
                total += fx[STRIDE + qk] * t1 + fx[2 * STRIDE + qk] * t2
            lt += nl
        kt += nk
    if a0 <= 0.0:
        return scale * total, 0.0
    primary, bound = primary_window_dose(u, v, scale, a0, s0, cp, cpi, pitch, fluence, fl0, box, wmax, reach_nsigma,
                                         outside, fx, fy)
    return scale * (total + primary), bound


def primary_window(u, v, s0, cp, cpi, pitch, box, reach_nsigma):
    """(ka, kb, la, lb, cut): the half-open cell ranges of the primary window of control point cp at iso-plane
    (u, v) (the cells within reach_nsigma primary sigmas s0; all cells of the box when reach_nsigma <= 0), and
    whether the window leaves cells of the box out (then the bound of the module doc applies)."""
    k_lo = box[cp, 0]
    k_hi = box[cp, 1]
    l_lo = box[cp, 2]
    l_hi = box[cp, 3]
    if reach_nsigma <= 0.0:
        return k_lo, k_hi, l_lo, l_hi, False
    eu0 = cpi[cp, CPI_K0] * pitch
    ev0 = cpi[cp, CPI_L0] * pitch
    reach = reach_nsigma * s0
    ka = max(k_lo, int(math.floor((u - reach - eu0) / pitch)))
    kb = min(k_hi, int(math.floor((u + reach - eu0) / pitch)) + 1)
    la = max(l_lo, int(math.floor((v - reach - ev0) / pitch)))
    lb = min(l_hi, int(math.floor((v + reach - ev0) / pitch)) + 1)
    return ka, kb, la, lb, (ka > k_lo or kb < k_hi or la > l_lo or lb < l_hi)


def primary_window_dose(u, v, scale, a0, s0, cp, cpi, pitch, fluence, fl0, box, wmax, reach_nsigma, outside, fx, fy):
    """(sum_{k,l} a0 m0(k; u) W[k, l] m0(l; v) over the primary window (before scale), bound on the omitted primary in Gy)
    of control point cp at iso-plane (u, v); the window and its bound as in the module doc."""
    nv = cpi[cp, CPI_NV]
    eu0 = cpi[cp, CPI_K0] * pitch
    ev0 = cpi[cp, CPI_L0] * pitch
    base = fl0[cp]
    ka, kb, la, lb, cut = primary_window(u, v, s0, cp, cpi, pitch, box, reach_nsigma)
    bound = scale * a0 * wmax[cp] * 2.0 * outside if cut else 0.0
    primary = 0.0
    kt = ka
    while kt < kb:
        nk = min(TILE, kb - kt)
        component_masses(fx, 0, eu0, kt, nk, pitch, u, s0, a0)
        lt = la
        while lt < lb:
            nl = min(TILE, lb - lt)
            component_masses(fy, 0, ev0, lt, nl, pitch, v, s0, 1.0)
            primary = primary_tile(fluence, base + kt * nv + lt, nv, nk, nl, fx, fy, primary)
            lt += nl
        kt += nk
    return primary, bound


def primary_tile(fluence, row0, nv, nk, nl, fx, fy, total):
    """total + sum_qk fx[qk] sum_ql W[row0 + qk nv + ql] fy[ql]: one tile of the primary sum (masses in fx, fy),
    added to total in a fixed order (primary_window_dose and primary_window_maps sum the same way)."""
    for qk in range(nk):
        row = row0 + qk * nv
        t0 = 0.0
        for ql in range(nl):
            t0 += fluence[row + ql] * fy[ql]
        total += fx[qk] * t0
    return total


def primary_window_maps(u, v, a0, s0, cp, cpi, pitch, fluence, fl0, box, reach_nsigma, fx, fy, acc):
    """primary_window_dose's sum for every fluence map at once (fluence[j]: map j; the Gaussian masses are
    computed once for all): acc[j] = the primary of map j before scale, summed in the same order as
    primary_window_dose. Returns whether the window leaves cells of the box out."""
    nv = cpi[cp, CPI_NV]
    eu0 = cpi[cp, CPI_K0] * pitch
    ev0 = cpi[cp, CPI_L0] * pitch
    base = fl0[cp]
    ka, kb, la, lb, cut = primary_window(u, v, s0, cp, cpi, pitch, box, reach_nsigma)
    for j in range(fluence.shape[0]):
        acc[j] = 0.0
    kt = ka
    while kt < kb:
        nk = min(TILE, kb - kt)
        component_masses(fx, 0, eu0, kt, nk, pitch, u, s0, a0)
        lt = la
        while lt < lb:
            nl = min(TILE, lb - lt)
            component_masses(fy, 0, ev0, lt, nl, pitch, v, s0, 1.0)
            for j in range(fluence.shape[0]):
                acc[j] = primary_tile(fluence[j], base + kt * nv + lt, nv, nk, nl, fx, fy, acc[j])
            lt += nl
        kt += nk
    return cut


def scatter_row_sums(u, cp, cpi, pitch, p, fluence, fl0, box, fx, r1, r2):
    """r_c[j, l - l_lo] = sum_k m_c(k; u) W_j[k, l] over the box of control point cp, for the two scatter
    components (c = 1, 2; unit-amplitude masses of their depth-independent widths) and every fluence map j."""
    s1 = component_sigma_mm(1, 0.0, p)
    s2 = component_sigma_mm(2, 0.0, p)
    nv = cpi[cp, CPI_NV]
    eu0 = cpi[cp, CPI_K0] * pitch
    base = fl0[cp]
    k_lo = box[cp, 0]
    k_hi = box[cp, 1]
    l_lo = box[cp, 2]
    l_hi = box[cp, 3]
    for j in range(fluence.shape[0]):
        for q in range(l_hi - l_lo):
            r1[j, q] = 0.0
            r2[j, q] = 0.0
    kt = k_lo
    while kt < k_hi:
        nk = min(TILE, k_hi - kt)
        component_masses(fx, STRIDE, eu0, kt, nk, pitch, u, s1, 1.0)
        component_masses(fx, 2 * STRIDE, eu0, kt, nk, pitch, u, s2, 1.0)
        for qk in range(nk):
            m1 = fx[STRIDE + qk]
            m2 = fx[2 * STRIDE + qk]
            row = base + (kt + qk) * nv + l_lo
            for j in range(fluence.shape[0]):
                w = fluence[j]
                for q in range(l_hi - l_lo):  # independent lanes: vectorisable without reassociation
                    wq = w[row + q]
                    r1[j, q] += m1 * wq
                    r2[j, q] += m2 * wq
        kt += nk


def scatter_from_row_sums(v, a1, a2, cp, cpi, pitch, p, box, fy, r1, r2, t1, t2, acc):
    """acc[j] = a1 sum_l m1(l; v) r1[j, l] + a2 sum_l m2(l; v) r2[j, l]: the scatter of control point cp (before
    scale) of every fluence map j (t1, t2: scratch, one per map)."""
    s1 = component_sigma_mm(1, 0.0, p)
    s2 = component_sigma_mm(2, 0.0, p)
    ev0 = cpi[cp, CPI_L0] * pitch
    l_lo = box[cp, 2]
    l_hi = box[cp, 3]
    n_maps = r1.shape[0]
    for j in range(n_maps):
        t1[j] = 0.0
        t2[j] = 0.0
    lt = l_lo
    while lt < l_hi:
        nl = min(TILE, l_hi - lt)
        component_masses(fy, STRIDE, ev0, lt, nl, pitch, v, s1, 1.0)
        component_masses(fy, 2 * STRIDE, ev0, lt, nl, pitch, v, s2, 1.0)
        off = lt - l_lo
        for j in range(n_maps):
            x1 = t1[j]
            x2 = t2[j]
            for ql in range(nl):
                x1 += fy[STRIDE + ql] * r1[j, off + ql]
                x2 += fy[2 * STRIDE + ql] * r2[j, off + ql]
            t1[j] = x1
            t2[j] = x2
        lt += nl
    for j in range(n_maps):
        acc[j] = a1 * t1[j] + a2 * t2[j]


def fluence_column_dose(first, stop, points, depths, cpf, cpi, pitch, p, fluence, fl0, box, wmax, reach_nsigma,
                        outside, shared, fx, fy, r1, r2, t1, t2, acc, prim, out, bound):
    """out[j, i], bound[j, i] for the voxels first <= i < stop of one grid column (same x, y) and every fluence map j
    (fluence[j], wmax[j]): the sum over the control points of fluence_pair_dose, with the u-side scatter shared by
    the column where shared[cp] (module doc) and the Gaussian masses shared by the maps. r1, r2: (maps, box width)
    scratch; t1, t2, acc, prim: one per map."""
    n_maps = fluence.shape[0]
    for j in range(n_maps):
        for i in range(first, stop):
            out[j, i] = 0.0
            bound[j, i] = 0.0
    for cp in range(cpf.shape[0]):
        if box[cp, 0] >= box[cp, 1]:
            continue  # no weight (or an alias: its weights are summed into its primary's map)
        geom = cpi[cp, CPI_GEOM]
        if shared[cp] == 0:
            for j in range(n_maps):
                for i in range(first, stop):
                    d, b = fluence_pair_dose(points[i, 0], points[i, 1], points[i, 2], depths[i, geom], cp, cpf, cpi,
                                             pitch, p, fluence[j], fl0, box, wmax[j], reach_nsigma, outside, fx, fy)
                    out[j, i] += d
                    bound[j, i] += b
            continue
        u, v, scale = beam_coordinates(points[first, 0], points[first, 1], points[first, 2], cp, cpf, p)
        if scale <= 0.0:
            continue  # at or behind the source plane: the whole column (the test does not depend on z)
        scatter_row_sums(u, cp, cpi, pitch, p, fluence, fl0, box, fx, r1, r2)
        for i in range(first, stop):
            u, v, scale = beam_coordinates(points[i, 0], points[i, 1], points[i, 2], cp, cpf, p)
            z_rad = depths[i, geom]
            a0 = component_amplitude(0, z_rad, p)
            scatter_from_row_sums(v, component_amplitude(1, z_rad, p), component_amplitude(2, z_rad, p),
                                  cp, cpi, pitch, p, box, fy, r1, r2, t1, t2, acc)
            if a0 > 0.0:
                cut = primary_window_maps(u, v, a0, component_sigma_mm(0, z_rad, p), cp, cpi, pitch, fluence, fl0,
                                          box, reach_nsigma, fx, fy, prim)
                for j in range(n_maps):
                    acc[j] += prim[j]
                    if cut:
                        bound[j, i] += scale * a0 * wmax[j, cp] * 2.0 * outside
            for j in range(n_maps):
                out[j, i] += scale * acc[j]
