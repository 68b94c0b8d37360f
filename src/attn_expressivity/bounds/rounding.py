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

__all__ = ["gamma", "unit_roundoff"]


def unit_roundoff(dtype: object) -> float:
    """Unit roundoff ``u = eps / 2`` of a floating dtype (``2**-53`` for float64).

    Examples
    --------
    >>> unit_roundoff(np.float64) == 2.0**-53, unit_roundoff(np.float32) == 2.0**-24
    (True, True)
    """
    return float(np.finfo(np.dtype(dtype)).eps) / 2.0


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
