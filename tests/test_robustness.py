"""Numerical robustness: extreme α and extreme input magnitudes.

No NaN, no floating-point warning escaping (setup.cfg turns RuntimeWarning into
an error under pytest) and the a-priori bound still holds, or a clear error says
why the check cannot be evaluated.
"""

import math

import numpy as np
import pytest

from attn_expressivity import NonFiniteError, alpha_for_tolerance, conv_to_mhsa, leak_bound, verify
from attn_expressivity.convolution.instances import random_instance

ALPHAS = [0.0, 1e-12, 1.0, 40.0, 1e8, math.inf]
MAGNITUDES = [1.0, 1e150, 1e-150]


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("magnitude", MAGNITUDES)
@pytest.mark.parametrize("where", ["x", "weight"])
def test_extreme_alpha_and_magnitude(alpha, magnitude, where):
    w, x, b = random_instance(kernel_size=(3, 2), in_channels=2, out_channels=3, image_size=(6, 5),
                              seed=11)
    if where == "x":
        x = x * magnitude
    else:
        w, b = w * magnitude, b * magnitude
    report = verify(w, x, b, alpha=alpha)
    values = [report.max_abs_error, report.bound, report.leak_term, report.rounding_term,
              report.factorisation_term, report.leak, report.scale]
    assert all(math.isfinite(v) for v in values), values
    assert report.holds and report.max_abs_error <= report.bound
    out = conv_to_mhsa(w, b, alpha=alpha)(x)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("alpha", ALPHAS)
def test_leak_bound_is_finite_and_monotone_at_the_extremes(alpha):
    for ndim in (1, 2, 3):
        value = leak_bound(alpha, ndim)
        assert 0.0 <= value <= 1.0
        if 0 < alpha < math.inf:
            assert leak_bound(alpha * 2, ndim) <= value


@pytest.mark.parametrize("alpha", [1e17, 1e50, 1e250])
def test_huge_finite_alpha_is_still_bounded(alpha):
    """Beyond ~1e16 the score-rounding factor e^{αC} of the bound overflows a float."""
    w, x, b = random_instance(kernel_size=3, in_channels=2, out_channels=2, image_size=5, seed=2)
    try:
        report = verify(w, x, b, alpha=alpha)
    except NonFiniteError as exc:          # the scores themselves overflow: said plainly
        assert "overflowed" in str(exc)
        return
    assert math.isfinite(report.bound) and report.holds


@pytest.mark.parametrize("tol", [1e-300, 5e-324, 1.0, 1e300])
def test_alpha_for_extreme_tolerances(tol):
    from attn_expressivity.balls.theta import leak_term_within

    a = alpha_for_tolerance(tol, 2)
    # a finite α always exists for a finite tol > 0 (L(α) -> 0), and it is found
    assert 0 <= a < math.inf and leak_term_within(a, 2, 1.0, tol)
    # leak_bound, a float, never goes below the smallest subnormal, so its own check
    # can only confirm tolerances from twice that on
    if tol >= 2 * 5e-324:
        assert 2 * leak_bound(a, 2) <= tol


def test_max_finite_input_says_why_it_cannot_be_evaluated():
    """Inputs near the float64 maximum overflow in the products: a NonFiniteError that
    says so, not a RuntimeWarning and inf results."""
    w, x, b = random_instance(kernel_size=3, in_channels=2, out_channels=2, image_size=5, seed=3)
    big = x / np.abs(x).max() * 1e308                  # finite, max |x| = 1e308
    with pytest.raises(NonFiniteError, match=r"overflowed the float64 range"):
        verify(w, big, b, alpha=20.0)
    layer = conv_to_mhsa(w, b, alpha=20.0)
    with pytest.raises(NonFiniteError, match=r"attention output overflowed the float64 range"):
        layer(big)
