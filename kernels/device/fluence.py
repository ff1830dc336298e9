"""Dose of one control point's fluence map at one voxel: the final dose of a plan, without a matrix.

The influence-matrix entry of beamlet (k, l) (kernels/device/influence.py, exact mode) is
    D[voxel, (k, l)] = scale * sum_c fx_c[k] * fy_c[l]
with fx_c / fy_c the per-component Gaussian masses of the cell's u / v interval (cell_masses,
amplitudes in fx). For a fluence map W (MU per cell, zero where no beamlet) the dose is therefore
    sum_{k,l} D[voxel, (k, l)] W[k, l] = scale * sum_c fx_c^T W fy_c,
evaluated here for every cell of the control point's beamlet rectangle (no window, no sampling)
with the same device functions (beam_coordinates, cell_masses): 3 (nu + nv) edge tails and
3 nu nv multiply-adds per (voxel, control point) instead of a matrix row.
"""
from .beam import component_amplitude, component_sigma_mm
from .influence import CPI_K0, CPI_L0, CPI_NV, STRIDE, TILE, beam_coordinates, cell_masses


def fluence_pair_dose(px, py, pz, z_rad, cp, cpf, cpi, pitch, p, fluence, fl0, box, fx, fy):
    """Dose (Gy) at voxel (px, py, pz) (radiological depth z_rad from this control point's source) of the
    fluence map of control point cp: fluence[fl0[cp] + k * nv + l] MU in cell (k, l); only the cells
    box[cp] = (k_lo, k_hi, l_lo, l_hi) (half-open) can be non-zero."""
    u, v, scale = beam_coordinates(px, py, pz, cp, cpf, p)
    if scale <= 0.0:
        return 0.0
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
    total = 0.0
    kt = box[cp, 0]
    while kt < box[cp, 1]:
        nk = min(TILE, box[cp, 1] - kt)
        cell_masses(fx, eu0, kt, nk, pitch, u, s0, s1, s2, a0, a1, a2)
        lt = box[cp, 2]
        while lt < box[cp, 3]:
            nl = min(TILE, box[cp, 3] - lt)
            cell_masses(fy, ev0, lt, nl, pitch, v, s0, s1, s2, 1.0, 1.0, 1.0)
            for qk in range(nk):
                row = base + (kt + qk) * nv + lt
                t0 = 0.0
                t1 = 0.0
                t2 = 0.0
                for ql in range(nl):
                    w = fluence[row + ql]
                    t0 += w * fy[ql]
                    t1 += w * fy[STRIDE + ql]
                    t2 += w * fy[2 * STRIDE + ql]
                total += fx[qk] * t0 + fx[STRIDE + qk] * t1 + fx[2 * STRIDE + qk] * t2
            lt += nl
        kt += nk
    return scale * total
