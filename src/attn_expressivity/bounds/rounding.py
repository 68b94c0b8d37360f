"""Floating-point rounding: unit roundoff and Higham's ``γ_m``.

The standard model of floating-point arithmetic (IEEE 754, round to nearest;
Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §2.2):
``fl(a op b) = (a op b)(1 + δ)`` with ``|δ| <= u``, the unit roundoff. An
``m``-term inner product or sum computed in any order is within
``γ_m = m u / (1 − m u)`` of the exact one relative to the sum of absolute
values (§3.1). These are the float-only building blocks of the a-priori
bound; nothing here uses ball arithmetic.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterValueError

__all__ = ["EXP_ULPS", "gamma", "underflow_unit", "unit_roundoff"]

#: The accuracy assumed of ``numpy.exp`` in float16, float32 and float64: a relative
#: error of at most ``EXP_ULPS · u``. numpy's float64 and float32 ``exp`` are
#: documented at a few units in the last place at most and float16 goes through
#: float32; ``tests/bounds/test_rounding.py`` measures the error on this platform
#: against mpmath on a dense sample of ``[⌈ln tiny⌉, 0]`` and fails when the
#: assumption does not hold.
EXP_ULPS = 4


def unit_roundoff(dtype: object) -> float:
    """Unit roundoff ``u = eps / 2`` of a floating dtype (``2**-53`` for float64).

    Examples
    --------
    >>> unit_roundoff(np.float64) == 2.0**-53, unit_roundoff(np.float32) == 2.0**-24
    (True, True)
    """
    return float(np.finfo(np.dtype(dtype)).eps) / 2.0


def underflow_unit(dtype: object) -> float:
    """``η``: the smallest subnormal number, a bound on the error of a rounded product below the normal range.

    In the model with underflow (Higham, §2.1), ``fl(a × b) = (a × b)(1 + δ) + η``
    with ``|η|`` at most half the smallest subnormal and ``δη = 0``; sums and
    differences are exact when their result is subnormal. Half of float64's
    smallest subnormal is not a float64 number, so the whole one is used.

    Examples
    --------
    >>> underflow_unit(np.float64) == 2.0**-1074, underflow_unit(np.float32) == 2.0**-149
    (True, True)
    """
    return float(np.finfo(np.dtype(dtype)).smallest_subnormal)


def gamma(m: int, u: float) -> float:
    """Higham's ``γ_m = m u / (1 − m u)``: the relative error bound of an ``m``-term sum.

    Raises
    ------
    ParameterValueError
        When ``m u >= 1`` (no bound exists).
    """
    mu = m * u
    if mu >= 1:
        raise ParameterValueError(f"rounding bound undefined: m*u = {mu} >= 1 (m = {m}, u = {u})")
    return mu / (1.0 - mu)
