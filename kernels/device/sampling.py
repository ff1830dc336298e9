"""Counter-based random numbers and truncated-normal sampling (no state: the same on every target).

hash32 keeps every product below 2**63 (multipliers < 2**31, operands < 2**32) so int64
arithmetic on the CPU, on a GPU and in pure Python (the CUDA simulator) gives identical bits.
"""
import math

MASK32 = 0xFFFFFFFF
INV_2POW32 = 2.3283064365386963e-10
SQRT2PI = 2.5066282746310002


def hash32(x):
    x = x & MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & MASK32
    x = x ^ (x >> 15)
    x = (x * 0x2C1B3C6D) & MASK32
    x = x ^ (x >> 16)
    return x


def uniform_open01(seed, a, b, c, d):
    """A uniform number in (0, 1) determined by (seed, a, b, c, d)."""
    h = hash32(d + 0x3C6EF372)
    h = hash32(h ^ (c & MASK32))
    h = hash32(h ^ (b & MASK32))
    h = hash32(h ^ (a & MASK32))
    h = hash32(h ^ (seed & MASK32))
    return (h + 0.5) * INV_2POW32


def standard_normal_quantile(p):
    """Inverse standard normal CDF (Acklam's rational approximation + one Halley step)."""
    if p <= 0.0:
        return -40.0
    if p >= 1.0:
        return 40.0
    p_low = 0.02425
    if p < p_low:
        q = math.sqrt(-2.0 * math.log(p))
        x = (((((-7.784894002430293e-03 * q - 3.223964580411365e-01) * q - 2.400758277161838e+00) * q
               - 2.549732539343734e+00) * q + 4.374664141464968e+00) * q + 2.938163982698783e+00) / (
            (((7.784695709041462e-03 * q + 3.224671290700398e-01) * q + 2.445134137142996e+00) * q
             + 3.754408661907416e+00) * q + 1.0)
    elif p <= 1.0 - p_low:
        q = p - 0.5
        r = q * q
        x = (((((-3.969683028665376e+01 * r + 2.209460984245205e+02) * r - 2.759285104469687e+02) * r
               + 1.383577518672690e+02) * r - 3.066479806614716e+01) * r + 2.506628277459239e+00) * q / (
            ((((-5.447609879822406e+01 * r + 1.615858368580409e+02) * r - 1.556989798598866e+02) * r
              + 6.680131188771972e+01) * r - 1.328068155288572e+01) * r + 1.0)
    else:
        q = math.sqrt(-2.0 * math.log(1.0 - p))
        x = -(((((-7.784894002430293e-03 * q - 3.223964580411365e-01) * q - 2.400758277161838e+00) * q
                - 2.549732539343734e+00) * q + 4.374664141464968e+00) * q + 2.938163982698783e+00) / (
            (((7.784695709041462e-03 * q + 3.224671290700398e-01) * q + 2.445134137142996e+00) * q
             + 3.754408661907416e+00) * q + 1.0)
    # one Halley refinement step
    e = 0.5 * math.erfc(-x * 0.7071067811865476) - p
    u = e * SQRT2PI * math.exp(0.5 * x * x)
    return x - u / (1.0 + 0.5 * x * u)


def truncated_normal_sample(lo, hi, r):
    """A standard-normal variate restricted to [lo, hi] from a uniform r in (0, 1) (inverse CDF).

    Intervals entirely in the upper tail are reflected so the CDF differences keep their precision.
    """
    sign = 1.0
    if lo >= 0.0:
        t = lo
        lo = -hi
        hi = -t
        sign = -1.0
    a = 0.5 * math.erfc(-lo * 0.7071067811865476)
    b = 0.5 * math.erfc(-hi * 0.7071067811865476)
    p = a + r * (b - a)
    x = standard_normal_quantile(p)
    if x < lo:
        x = lo
    if x > hi:
        x = hi
    return sign * x
