import math

import numpy as np
import pytest

from attn_expressivity import (
    ParameterTypeError,
    ParameterValueError,
    alpha_for_tolerance,
    leak_bound,
)
from attn_expressivity.bounds import (
    ALPHA_RESOLUTION,
    dtype_alpha_table,
    format_dtype_table,
    scale_factor,
    scale_from_bound,
)

ALPHAS = [0.1, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 60.0]


def true_interior_leak(alpha, ndim, radius=60):
    """Exact off-target mass of the centre query of a (2·radius+1)^ndim image.

    The keys are the whole image, the target the centre: the off-target mass is
    1 − 1/s^D with s = Σ_{|n| <= radius} e^{−α n²}. Each exponential is
    enclosed with mpmath's interval arithmetic at 200 bits, so the returned
    interval contains the true leak of this finite image — an independent
    computation (direct finite sum, no theta function, no tail bound).
    """
    from mpmath import iv

    old = iv.prec
    iv.prec = 200
    try:
        a = iv.mpf(alpha)
        s_minus_1 = 2 * sum((iv.exp(-a * (n * n)) for n in range(1, radius + 1)), iv.mpf(0))
        s = 1 + s_minus_1
        leak = (s**ndim - 1) / s**ndim
        return float(leak.a), float(leak.b)          # endpoints, rounded to nearest
    finally:
        iv.prec = old


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("alpha", ALPHAS)
def test_leak_bound_above_true_and_tight(alpha, ndim):
    lo, hi = true_interior_leak(alpha, ndim)
    b = leak_bound(alpha, ndim)
    # the true leak of the finite image is below the bound (it is an infinite-lattice
    # sum), and within 1 % of it: the image (121 pixels a side) is "large"
    assert b >= hi
    assert b <= lo * 1.01


@pytest.mark.parametrize("alpha", [40.0, 100.0, 700.0])
def test_leak_bound_no_collapse_for_large_alpha(alpha, backend):
    from attn_expressivity.balls.theta import certified_leak_bound

    b = leak_bound(alpha, 2, backend=backend)
    # 1 − θ₃^{−2} >= 4 e^{−α}: the n = ±1 terms alone
    assert b >= 4 * math.exp(-alpha) > 0
    enc = certified_leak_bound(alpha, 2, backend=backend)
    assert 0 < enc.lower <= enc.upper == b
    assert enc.upper - enc.lower <= 4 * math.ulp(enc.upper)


def test_leak_bound_limits():
    assert leak_bound(0.0, 2) == 1.0 and leak_bound(math.inf, 2) == 0.0
    assert 0 < leak_bound(1e-12, 2) <= 1.0
    assert 0 < leak_bound(800.0, 1) <= 5e-324          # below the float range, still above 0


def test_small_alpha_branch_is_continuous():
    # α = 1/2 switches from Jacobi's transformation to the direct series
    a, b = leak_bound(0.5 - 1e-12, 2), leak_bound(0.5, 2)
    assert 0 <= a - b <= 1e-10


def test_backends_agree(backend):
    from attn_expressivity.balls.theta import certified_leak_bound

    for alpha in (0.2, 3.0, 33.0):
        e1 = certified_leak_bound(alpha, 3, backend=backend)
        e2 = certified_leak_bound(alpha, 3, backend="mpmath", prec=300)
        assert e1.lower <= e2.upper and e2.lower <= e1.upper     # both contain the exact value


def _certified_ok(alpha, ndim, scale, tol):
    """2 L(α) scale <= tol, decided independently with mpmath intervals at 300 bits."""
    from attn_expressivity.balls.theta import leak_term_within

    return leak_term_within(alpha, ndim, scale, tol, backend="mpmath", prec=300)


@pytest.mark.parametrize("scale", [1.0, 37.5])
def test_alpha_for_tolerance_certified_monotone_minimal(backend, scale):
    tols = [1e-1, 1e-4, 1e-8, 2.0**-53, 1e-300]
    alphas = [alpha_for_tolerance(t, 2, scale=scale, backend=backend) for t in tols]
    assert alphas == sorted(alphas)
    for t, a in zip(tols, alphas):
        assert _certified_ok(a, 2, scale, t)                               # certified
        below = a * (1 - ALPHA_RESOLUTION)
        assert 2 * leak_bound(below, 2) * scale > t                         # not wasteful
        assert not _certified_ok(below, 2, scale, t)
    assert alpha_for_tolerance(3.0, 2) == 0.0
    assert alpha_for_tolerance(1e-3, 2, scale=0.0) == 0.0


def test_scale_factor_is_an_upper_bound():
    from fractions import Fraction

    from attn_expressivity.convolution.slices import kernel_slices

    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 2, 3, 4))
    x = rng.standard_normal((5, 7, 3))
    s = scale_factor(w, x)
    mats = kernel_slices(w)
    exact = Fraction(0)
    for m in mats:                                  # exact rational arithmetic
        exact += max(abs(sum(Fraction(float(xi)) * Fraction(float(m[i, c])) for i, xi in enumerate(tok)))
                     for tok in x.reshape(-1, 3) for c in range(4))
    assert Fraction(s) >= exact
    assert s <= float(exact) * (1 + 1e-13)                                # and tight
    bound = scale_from_bound(w, float(np.abs(x).max()))
    assert bound >= s


def test_dtype_table_small():
    rows = dtype_alpha_table(dtypes=("float16", "float64"), image_size=5, alpha_step=0.5,
                             alpha_max=45.0)
    by = {r["dtype"]: r for r in rows}
    for r in rows:
        assert r["alpha_measured"] is not None and r["floor"] < 8 * r["u"]
        # measured error at the analytic α is within the bound's promise: 2L <= u
        assert r["alpha_measured"] <= r["alpha_analytic"]
    assert by["float16"]["alpha_analytic"] < by["float64"]["alpha_analytic"]
    assert "| float16 |" in format_dtype_table(rows)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: leak_bound(-0.1, 2), ParameterValueError, r"`alpha`.*-0.1"),
        (lambda: leak_bound(1.0, 0), ParameterValueError, r"`ndim` must be >= 1, got 0"),
        (lambda: leak_bound(1.0, 2.0), ParameterTypeError, r"`ndim` must be an integer, got float"),
        (lambda: leak_bound(1.0, 2, backend="arb"), ParameterValueError,
         r"`backend` must be one of \('flint', 'mpmath'\) or None, got 'arb'"),
        (lambda: alpha_for_tolerance(0.0, 2), ParameterValueError, r"`tol` must be a finite number > 0, got 0.0"),
        (lambda: alpha_for_tolerance(-1e-3, 2), ParameterValueError, r"`tol`"),
        (lambda: alpha_for_tolerance("1e-3", 2), ParameterTypeError, r"`tol` must be a real number, got str"),
        (lambda: alpha_for_tolerance(1e-3, 2, scale=-1), ParameterValueError, r"`scale`"),
        (lambda: scale_from_bound(np.ones((3, 3, 1, 1)), -1.0), ParameterValueError, r"`x_max`"),
        (lambda: dtype_alpha_table(dtypes=("float8",)), ParameterValueError, r"`dtypes`.*'float8'"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_extreme_alphas_terminate_and_enclose(backend):
    from attn_expressivity.balls.theta import certified_leak_bound

    # the enclosures of e^{-rate n²} contain 0 for huge rates: the series must still stop
    for alpha in (5e-324, 1e-300, 1e300, 1.7e308):
        enc = certified_leak_bound(alpha, 2, backend=backend)
        assert 0.0 <= enc.lower <= enc.upper <= 1.0
    assert certified_leak_bound(1e-300, 2, backend=backend).upper == 1.0
    assert certified_leak_bound(1e300, 2, backend=backend).upper > 0.0
