"""The floating-point model the bounds assume, checked on this platform.

docs/bounds.md states the model: IEEE 754 arithmetic with round to nearest, and
``numpy.exp`` accurate to ``EXP_ULPS`` units of the unit roundoff in float16,
float32 and float64 over the range the paths use, ``[⌈ln tiny⌉, 0]`` (below it
the paths flush to zero). The first is numpy's promise; the second is measured
here against mpmath at 100 bits on a dense grid and random points of that range,
so a platform whose ``exp`` is less accurate fails this test instead of
weakening the bounds silently.
"""

import numpy as np
import pytest

from attn_expressivity.attention.softmax import exp_floor
from attn_expressivity.bounds.rounding import EXP_ULPS, gamma, underflow_unit, unit_roundoff


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_exp_accuracy_assumption_holds_here(dtype):
    import mpmath

    floor = exp_floor(np.dtype(dtype))
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(floor, 0.0, 6001), rng.uniform(floor, 0.0, 6000),
                        -np.logspace(-300 if dtype == np.float64 else -30, 0, 400), [0.0, floor]])
    x = x.astype(dtype)
    x = x[(x >= floor) & (x <= 0)]
    y = np.exp(x).astype(np.float64)
    mpmath.mp.prec = 100
    worst = 0.0
    for xi, yi in zip(x.astype(np.float64).tolist(), y.tolist()):
        e = mpmath.exp(mpmath.mpf(xi))
        worst = max(worst, float(abs(mpmath.mpf(yi) - e) / e))
    u = unit_roundoff(dtype)
    assert worst <= EXP_ULPS * u, (worst / u, "units of u")
    assert np.exp(np.zeros(1, dtype))[0] == 1                    # the target's weight is exact


def test_model_constants():
    assert unit_roundoff(np.float16) == 2.0**-11 and underflow_unit(np.float16) == 2.0**-24
    assert gamma(3, 2.0**-53) == 3 * 2.0**-53 / (1 - 3 * 2.0**-53)
    # round to nearest: half-way cases go to even, the sum of two floats within half an ulp
    assert np.float64(1.0) + np.float64(2.0**-53) == 1.0 and 1.0 + 2.0**-52 > 1.0
    # gradual underflow: sums of subnormals are exact
    tiny = np.float64(5e-324)
    assert tiny + tiny == 1e-323
