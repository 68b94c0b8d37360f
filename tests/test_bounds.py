import math

import numpy as np
import pytest

from attn_expressivity import (
    ParameterTypeError,
    ParameterValueError,
    alpha_for_tolerance,
    leak_bound,
)


def true_interior_leak(alpha, ndim, radius=60):
    """Off-target mass of an interior query of a (2·radius+1)^ndim image, summed exactly."""
    n = np.arange(-radius, radius + 1)
    one_d = np.exp(-alpha * n.astype(float) ** 2)
    # 1 - 1/s^D without cancellation: (s^D - 1)/s^D with s - 1 summed directly
    s_minus_1 = 2 * one_d[radius + 1:].sum()
    return -math.expm1(-ndim * math.log1p(s_minus_1))


@pytest.mark.parametrize("ndim", [1, 2, 3])
@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 60.0])
def test_leak_bound_above_true_and_tight(alpha, ndim):
    true = true_interior_leak(alpha, ndim)
    b = leak_bound(alpha, ndim)
    assert b >= true
    assert b <= true * 1.01


def test_leak_bound_no_cancellation_and_limits():
    assert leak_bound(40.0, 2) > 0 and leak_bound(700.0, 2) > 0
    assert leak_bound(800.0, 1) == 0.0 or leak_bound(800.0, 1) >= 2 * math.exp(-800)
    assert leak_bound(0.0, 2) == 1.0 and leak_bound(math.inf, 2) == 0.0
    assert 0 < leak_bound(1e-12, 2) <= 1.0


def test_small_alpha_branch_is_continuous():
    a, b = leak_bound(0.5 - 1e-12, 2), leak_bound(0.5, 2)
    assert abs(a - b) <= 1e-10


def test_alpha_for_tolerance_monotone_and_minimal():
    tols = [1e-2, 1e-4, 1e-8, 1e-12, 1e-16]
    alphas = [alpha_for_tolerance(t, 2) for t in tols]
    assert alphas == sorted(alphas)
    for t, a in zip(tols, alphas):
        assert 2 * leak_bound(a, 2) <= t < 2 * leak_bound(a * (1 - 1e-8), 2)
    assert alpha_for_tolerance(3.0, 2) == 0.0


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: leak_bound(-0.1, 2), ParameterValueError, r"`alpha`.*-0.1"),
        (lambda: leak_bound(1.0, 0), ParameterValueError, r"`ndim` must be >= 1, got 0"),
        (lambda: leak_bound(1.0, 2.0), ParameterTypeError, r"`ndim` must be an integer, got float"),
        (lambda: alpha_for_tolerance(0.0, 2), ParameterValueError, r"`tol` must be a finite number > 0, got 0.0"),
        (lambda: alpha_for_tolerance(-1e-3, 2), ParameterValueError, r"`tol`"),
        (lambda: alpha_for_tolerance(1e-3, 2, scale=-1), ParameterValueError, r"`scale`"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
