"""The 6 MV pencil-beam model as scalar functions (maths only: no decorators, no allocation).

Dose per MU to a point from a rectangular aperture [u_lo, u_hi] x [v_lo, v_hi] (iso-plane mm):

    D = gy_per_mu * Sc * (SAD / r_geo)^2 * sum_i A_i(z_rad) * F(u; sigma_i) * F(v; sigma_i)

with F the mass of a 1-D Gaussian centred on the point's iso-plane projection (u, v) that falls
inside the aperture (an erf difference: the aperture convolved analytically with the kernel).
The aperture is one beamlet or a whole open field: because F telescopes, the sum over the
beamlets that tile a field equals the field's dose exactly.

Components (physics-and-clinical-facts.md sections 2.1, 2.5):
  i = 0  primary: Bortfeld depth term (beta_1) with a Gaussian whose width combines the source
         size / penumbra blur (facts 1.5: FWHM ~5 mm at iso) and a depth-growing primary spread;
  i = 1  medium-range scatter: Bortfeld term (beta_2) plus the electron-contamination term that
         gives the surface dose (facts 1.6);
  i = 2  long-range scatter: Bortfeld term (beta_3).
Bortfeld depth term (Bortfeld et al. 1993 eq. 17, facts 2.1):
    D_i(z) = beta_i / (beta_i - mu) * (exp(-mu z) - exp(-beta_i z)).

The parameter vector layout (P_*) is the one simsbrt.dose.machine.BeamModel.as_array() packs.
"""
import math

P_MU = 0
P_BETA1 = 1
P_BETA2 = 2
P_BETA3 = 3
P_W1 = 4
P_W2 = 5
P_W3 = 6
P_WE = 7
P_BETAE = 8
P_SIG_SRC = 9
P_SIG_P0 = 10
P_SIG_PSLOPE = 11
P_SIG2 = 12
P_SIG3 = 13
P_SAD = 14
P_GY_PER_MU = 15
N_BEAM_PARAMS = 16
N_COMPONENTS = 3

INV_SQRT2 = 0.7071067811865476


def bortfeld_depth(z_mm, mu_per_mm, beta_per_mm):
    """Bortfeld 1993 eq. 17 depth component (0 at and above the surface)."""
    if z_mm <= 0.0:
        return 0.0
    return beta_per_mm / (beta_per_mm - mu_per_mm) * (math.exp(-mu_per_mm * z_mm) - math.exp(-beta_per_mm * z_mm))


def component_amplitude(i, z_mm, p):
    """Broad-field depth weight A_i(z) of lateral component i (model units, before calibration)."""
    mu = p[P_MU]
    if i == 0:
        return p[P_W1] * bortfeld_depth(z_mm, mu, p[P_BETA1])
    if i == 1:
        zc = z_mm if z_mm > 0.0 else 0.0
        return p[P_W2] * bortfeld_depth(z_mm, mu, p[P_BETA2]) + p[P_WE] * math.exp(-p[P_BETAE] * zc)
    return p[P_W3] * bortfeld_depth(z_mm, mu, p[P_BETA3])


def component_sigma_mm(i, z_mm, p):
    """Lateral Gaussian width (iso-plane mm) of component i at radiological depth z."""
    if i == 0:
        zc = z_mm if z_mm > 0.0 else 0.0
        spread = p[P_SIG_P0] + p[P_SIG_PSLOPE] * zc
        return math.sqrt(p[P_SIG_SRC] * p[P_SIG_SRC] + spread * spread)
    if i == 1:
        return p[P_SIG2]
    return p[P_SIG3]


def normal_cdf(x):
    """Standard normal CDF, accurate in both tails (erfc)."""
    return 0.5 * math.erfc(-x * INV_SQRT2)


def gaussian_edge_tail(x_mm, sigma_mm):
    """Mass of a centred 1-D Gaussian beyond an edge at x, on the side away from the centre."""
    return 0.5 * math.erfc(abs(x_mm) / sigma_mm * INV_SQRT2)


def interval_mass_from_tails(lo_mm, hi_mm, tail_lo, tail_hi):
    """Mass inside [lo, hi] from the two edge tails (differences taken on the tail side for precision)."""
    if lo_mm >= 0.0:
        return tail_lo - tail_hi
    if hi_mm <= 0.0:
        return tail_hi - tail_lo
    return 1.0 - tail_lo - tail_hi


def gaussian_interval_mass(lo_mm, hi_mm, sigma_mm):
    """Mass of a centred 1-D Gaussian (sigma) inside [lo, hi]."""
    return interval_mass_from_tails(lo_mm, hi_mm, gaussian_edge_tail(lo_mm, sigma_mm),
                                    gaussian_edge_tail(hi_mm, sigma_mm))


def inverse_square_factor(r_geo_mm, sad_mm):
    return (sad_mm / r_geo_mm) * (sad_mm / r_geo_mm)


def aperture_dose_per_mu(u_mm, v_mm, z_rad_mm, r_geo_mm, u_lo, u_hi, v_lo, v_hi, head_scatter, p):
    """Absolute dose (Gy per MU) at a point from a rectangular iso-plane aperture (see module doc)."""
    total = 0.0
    for i in range(N_COMPONENTS):
        amp = component_amplitude(i, z_rad_mm, p)
        if amp > 0.0:
            s = component_sigma_mm(i, z_rad_mm, p)
            total += amp * gaussian_interval_mass(u_lo - u_mm, u_hi - u_mm, s) * gaussian_interval_mass(
                v_lo - v_mm, v_hi - v_mm, s)
    return p[P_GY_PER_MU] * head_scatter * inverse_square_factor(r_geo_mm, p[P_SAD]) * total
