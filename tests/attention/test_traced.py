"""The error-free transformations of the traced paths against exact rational arithmetic.

Every addition, explicit product and division of the traced paths reports its own
rounding error (exact where an error-free transformation applies, else a bound from the
model); here each is compared with the exact error, computed with ``fractions.Fraction``
(every float is an exact rational), on values across each type's whole range:
subnormal numbers, results near overflow and exact cases included.
"""

from fractions import Fraction

import numpy as np
import pytest

from attn_expressivity.attention.traced import _add_error, _div_error, _mul_error


def _values(rng, dtype, n):
    """Signed floats of ``dtype`` with exponents spread over the whole range, zeros, subnormals."""
    info = np.finfo(dtype)
    lo, hi = np.log2(float(info.smallest_subnormal)), np.log2(float(info.max))
    v = np.exp2(rng.uniform(lo, hi, n)) * rng.choice([-1.0, 1.0], n)
    v[: n // 20] = 0.0
    v[n // 20: n // 10] = float(info.smallest_subnormal) * rng.integers(1, 64, n // 10 - n // 20)
    with np.errstate(over="ignore"):
        out = v.astype(dtype)
    return out[np.isfinite(out)]


def _pair(seed, dtype, n=3000):
    """Two arrays of :func:`_values` of equal length, and the generator."""
    rng = np.random.default_rng(seed)
    a, b = _values(rng, dtype, n), _values(rng, dtype, n)
    k = min(len(a), len(b))
    return a[:k], b[:k], rng


def _exact(a) -> list[Fraction]:
    return [Fraction(float(v)) for v in np.ravel(a)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_add_error_is_the_exact_error_of_a_sum(dtype):
    a, b, rng = _pair(1, dtype)
    b[:200] = -a[:200] * np.asarray(rng.uniform(0.5, 2.0, 200), dtype=dtype)   # near cancellation
    with np.errstate(over="ignore"):
        s = a + b
    t, f = _add_error(a, b, s)
    for ai, bi, si, ti, fi in zip(_exact(a), _exact(b), s, t, f):
        if not np.isfinite(si):
            assert fi == np.inf
            continue
        assert ai + bi - Fraction(float(si)) == Fraction(float(ti)) and fi == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_mul_error_is_exact_or_a_bound(dtype):
    a, b, rng = _pair(2, dtype)
    k = len(a)
    b[:100] = np.asarray(2.0 ** rng.integers(-5, 5, 100), dtype=dtype)       # powers of two
    with np.errstate(over="ignore", under="ignore"):
        p = a * b
    u = float(np.finfo(dtype).eps) / 2
    eta = float(np.finfo(dtype).smallest_subnormal)
    q, f = _mul_error(a, b, p, u / (1 - u), eta)
    for ai, bi, pi, qi, fi in zip(_exact(a), _exact(b), p, q, f):
        if not np.isfinite(pi):
            assert fi == np.inf
            continue
        err = ai * bi - Fraction(float(pi))
        assert abs(err - Fraction(float(qi))) <= Fraction(float(fi))
        if fi == 0:
            assert err == Fraction(float(qi))
    # the model's bound only where no error-free transformation applies: float32 and float16
    # products are always exact in float64; float64 ones inside Dekker's range
    if dtype == np.float64:
        inside = (a == 0) | (b == 0) | ((np.abs(p) >= 2.0**-900) & (np.abs(p) <= 2.0**995)
                                        & (np.abs(a) <= 2.0**995) & (np.abs(b) <= 2.0**995))
    else:
        inside = np.isfinite(p)
    assert inside.sum() > k // 3 and (f[inside] == 0).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_div_error_bounds_the_error_of_a_quotient(dtype):
    a, b, _ = _pair(3, dtype)
    b = np.abs(b)
    b[b == 0] = 1
    b[:100] = 1                            # a row sum of exactly 1: exact
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        q = a / b
    u = float(np.finfo(dtype).eps) / 2
    eta = float(np.finfo(dtype).smallest_subnormal)
    bound = _div_error(a, b, q, u, eta)
    for ai, bi, qi, ei in zip(_exact(a), _exact(b), q, bound):
        if not np.isfinite(qi):
            continue
        assert abs(ai / bi - Fraction(float(qi))) <= Fraction(float(ei))
    assert (bound[:100] == 0).all()
