"""Influence-matrix entries of one (voxel, control point) pair: the one routine both drivers run.

Beamlet (k, l) of a control point covers the iso-plane square
    u in [(k0 + k) * pitch, (k0 + k + 1) * pitch],  v in [(l0 + l) * pitch, (l0 + l + 1) * pitch]
and its column is cell_to_col[cell0 + k * nv + l] (-1: no beamlet there).

Exact mode (tau <= 0): every beamlet of the control point is evaluated and every positive value kept.
Sampled mode (tau > 0), unbiased (the expectation of every entry equals its exact value):
  * a window of beamlets whose edges lie within window_nsigma primary sigmas of the voxel's
    projection is evaluated exactly (all components); values >= tau are kept, smaller ones are
    kept with probability value / tau at value tau (Russian roulette, as in matRad's dij sampling,
    facts 2.1);
  * outside the window only the two scatter components reach the voxel. Their total T over the
    control point's beamlet rectangle is known analytically; M = ceil(T / tau) (at most
    max_draws <= MAX_DRAWS_PER_COMPONENT) beamlets are drawn with probability proportional to the component's
    value (stratified inverse-CDF sampling of the separable Gaussian), each carrying T / M; draws
    landing in the window are dropped (the window already holds those beamlets exactly). The primary outside the window (beyond window_nsigma sigmas)
    is neglected: its relative size is below 1e-4 for window_nsigma = 4.
Random numbers are counter-based (seed, voxel, control point, slot), so the counting pass and
the filling pass see the same entries, and a run is reproducible on every backend.
"""
import math

from .beam import P_GY_PER_MU, P_SAD, component_amplitude, component_sigma_mm, gaussian_edge_tail, \
    gaussian_interval_mass, interval_mass_from_tails, inverse_square_factor
from .sampling import truncated_normal_sample, uniform_open01

# control-point float table (n_cp, N_CPF)
CPF_SRC = 0
CPF_XB = 3
CPF_YB = 6
CPF_ZB = 9
CPF_ISO = 12
CPF_SC = 15
N_CPF = 16
# control-point integer table (n_cp, N_CPI)
CPI_K0 = 0
CPI_L0 = 1
CPI_NU = 2
CPI_NV = 3
CPI_CELL0 = 4
CPI_GEOM = 5
CPI_PRIMARY = 6  # the first control point with identical geometry and beamlets (itself if none earlier)
CPI_COL_SHIFT = 7  # column offset of this control point's beamlets relative to the primary's
N_CPI = 8

TILE = 32  # window tile
STRIDE = TILE + 1  # scratch arrays hold 3 * STRIDE values per axis (edge tails, then interval masses)
MAX_DRAWS_PER_COMPONENT = 16
MAX_DRAWS = 32  # = 2 scatter components x MAX_DRAWS_PER_COMPONENT
ROULETTE_SLOT = 0x3FFFFFFF


def pair_entries(px, py, pz, z_rad, row_id, cp, cpf, cpi, cell_to_col, pitch, p, tau, window_nsigma, max_draws, seed,
                 fx, fy, dcol, dval, out_col, out_val, out_start, write):
    """Count (and, when write, store at out_start) the entries of voxel (px, py, pz) for control point cp."""
    u, v, scale = beam_coordinates(px, py, pz, cp, cpf, p)
    if scale <= 0.0:
        return 0

    k0 = cpi[cp, CPI_K0]
    l0 = cpi[cp, CPI_L0]
    nu = cpi[cp, CPI_NU]
    nv = cpi[cp, CPI_NV]
    cell0 = cpi[cp, CPI_CELL0]
    eu0 = k0 * pitch
    ev0 = l0 * pitch

    a0 = component_amplitude(0, z_rad, p)
    a1 = component_amplitude(1, z_rad, p)
    a2 = component_amplitude(2, z_rad, p)
    s0 = component_sigma_mm(0, z_rad, p)
    s1 = component_sigma_mm(1, z_rad, p)
    s2 = component_sigma_mm(2, z_rad, p)

    exact = tau <= 0.0
    if exact:
        ka = 0
        kb = nu - 1
        la = 0
        lb = nv - 1
    else:
        reach = window_nsigma * s0
        ka = max(0, int(math.ceil((u - reach - eu0) / pitch - 1.0)))
        kb = min(nu - 1, int(math.floor((u + reach - eu0) / pitch)))
        la = max(0, int(math.ceil((v - reach - ev0) / pitch - 1.0)))
        lb = min(nv - 1, int(math.floor((v + reach - ev0) / pitch)))

    n = 0
    kt = ka
    while kt <= kb:
        kt_end = min(kt + TILE - 1, kb)
        nk = kt_end - kt + 1
        cell_masses(fx, eu0, kt, nk, pitch, u, s0, s1, s2, a0, a1, a2)
        lt = la
        while lt <= lb:
            lt_end = min(lt + TILE - 1, lb)
            nl = lt_end - lt + 1
            cell_masses(fy, ev0, lt, nl, pitch, v, s0, s1, s2, 1.0, 1.0, 1.0)
            for kk in range(kt, kt_end + 1):
                qk = kk - kt
                for ll in range(lt, lt_end + 1):
                    col = cell_to_col[cell0 + kk * nv + ll]
                    if col < 0:
                        continue
                    ql = ll - lt
                    val = scale * (fx[qk] * fy[ql] + fx[STRIDE + qk] * fy[STRIDE + ql]
                                   + fx[2 * STRIDE + qk] * fy[2 * STRIDE + ql])
                    if val <= 0.0:
                        continue
                    if val < tau:
                        r = uniform_open01(seed, row_id, cp, kk * nv + ll, 0)
                        if r * tau >= val:
                            continue
                        val = tau
                    if write:
                        out_col[out_start + n] = col
                        out_val[out_start + n] = val
                    n += 1
            lt = lt_end + 1
        kt = kt_end + 1

    if exact:
        return n

    # scatter beyond the window: unbiased draws
    nd = 0
    eu1 = eu0 + nu * pitch
    ev1 = ev0 + nv * pitch
    for comp in range(1, 3):
        a = a1 if comp == 1 else a2
        s = s1 if comp == 1 else s2
        if a <= 0.0:
            continue
        total = scale * a * gaussian_interval_mass(eu0 - u, eu1 - u, s) * gaussian_interval_mass(ev0 - v, ev1 - v, s)
        if total <= 0.0:
            continue
        if total >= tau:
            m = int(math.ceil(total / tau))
            if m > max_draws:
                m = max_draws
            each = total / m
        else:
            r = uniform_open01(seed, row_id, cp, ROULETTE_SLOT, comp)
            if r * tau >= total:
                continue
            m = 1
            each = tau
        ulo = (eu0 - u) / s
        uhi = (eu1 - u) / s
        vlo = (ev0 - v) / s
        vhi = (ev1 - v) / s
        # stratified (Latin-hypercube) draws: draw mm takes u-stratum mm and v-stratum (mm + shift) mod m;
        # a uniformly random shift keeps every draw's expectation exact (unbiased)
        shift = int(uniform_open01(seed, row_id, cp, ROULETTE_SLOT + 1, comp) * m)
        if shift >= m:
            shift = m - 1
        for mm in range(m):
            r1 = (mm + uniform_open01(seed, row_id, cp, 2 * mm, comp)) / m
            r2 = ((mm + shift) % m + uniform_open01(seed, row_id, cp, 2 * mm + 1, comp)) / m
            xu = u + s * truncated_normal_sample(ulo, uhi, r1)
            xv = v + s * truncated_normal_sample(vlo, vhi, r2)
            k = int(math.floor((xu - eu0) / pitch))
            l = int(math.floor((xv - ev0) / pitch))
            k = min(max(k, 0), nu - 1)
            l = min(max(l, 0), nv - 1)
            if ka <= k and k <= kb and la <= l and l <= lb:
                continue
            col = cell_to_col[cell0 + k * nv + l]
            if col < 0:
                continue
            found = -1
            for q in range(nd):
                if dcol[q] == col:
                    found = q
                    break
            if found >= 0:
                dval[found] += each
            else:
                dcol[nd] = col
                dval[nd] = each
                nd += 1
    for q in range(nd):
        if write:
            out_col[out_start + n] = dcol[q]
            out_val[out_start + n] = dval[q]
        n += 1
    return n


def beam_coordinates(px, py, pz, cp, cpf, p):
    """(u, v, scale) of a voxel at control point cp: its iso-plane projection (mm) and the dose per MU factor
    gy_per_mu * Sc * inverse square; scale = 0 for a voxel at or behind the source plane."""
    sad = p[P_SAD]
    rx = px - cpf[cp, CPF_ISO]
    ry = py - cpf[cp, CPF_ISO + 1]
    rz = pz - cpf[cp, CPF_ISO + 2]
    t = sad - (rx * cpf[cp, CPF_ZB] + ry * cpf[cp, CPF_ZB + 1] + rz * cpf[cp, CPF_ZB + 2])
    if t <= 1.0:
        return 0.0, 0.0, 0.0
    mag = sad / t
    u = (rx * cpf[cp, CPF_XB] + ry * cpf[cp, CPF_XB + 1] + rz * cpf[cp, CPF_XB + 2]) * mag
    v = (rx * cpf[cp, CPF_YB] + ry * cpf[cp, CPF_YB + 1] + rz * cpf[cp, CPF_YB + 2]) * mag
    gx = px - cpf[cp, CPF_SRC]
    gy = py - cpf[cp, CPF_SRC + 1]
    gz = pz - cpf[cp, CPF_SRC + 2]
    r_geo = math.sqrt(gx * gx + gy * gy + gz * gz)
    return u, v, p[P_GY_PER_MU] * cpf[cp, CPF_SC] * inverse_square_factor(r_geo, sad)


def cell_masses(f, e0, first, n, pitch, centre, s0, s1, s2, a0, a1, a2):
    """Per-component masses of the n beamlet cells [e0 + j pitch, e0 + (j + 1) pitch], j = first + q, of a Gaussian
    centred on centre: f[c * STRIDE + q] = a_c * mass (components c = 0, 1, 2 with widths s0, s1, s2)."""
    component_masses(f, 0, e0, first, n, pitch, centre, s0, a0)
    component_masses(f, STRIDE, e0, first, n, pitch, centre, s1, a1)
    component_masses(f, 2 * STRIDE, e0, first, n, pitch, centre, s2, a2)


def component_masses(f, off, e0, first, n, pitch, centre, s, a):
    """f[off + q] = a * mass of a Gaussian (width s, centred on centre) in cell j = first + q (q < n); uses
    f[off .. off + n] as scratch (the edge tails, differenced on the tail side for precision)."""
    for q in range(n + 1):
        f[off + q] = gaussian_edge_tail(e0 + (first + q) * pitch - centre, s)
    for q in range(n):  # in place: mass q needs tails q and q + 1
        xlo = e0 + (first + q) * pitch - centre
        xhi = e0 + (first + q + 1) * pitch - centre
        f[off + q] = a * interval_mass_from_tails(xlo, xhi, f[off + q], f[off + q + 1])
