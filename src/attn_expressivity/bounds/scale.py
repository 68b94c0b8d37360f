"""The data factor ``S`` of the leak term, bounded from above.

``S = Σ_h max_k ‖x_k W_Δh‖_∞`` multiplies twice the leak in the output-error
bound; with :func:`attn_expressivity.alpha_for_tolerance` it gives the ``α`` a
tolerance needs. :func:`scale_factor` bounds it for a given input,
:func:`scale_from_bound` for every input with ``‖x‖_∞ <= x_max``; both are
rounded up, never below the exact value.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from .._validation import as_float_array, as_real
from ..convolution.config import check_image, make_config
from ..convolution.slices import kernel_slices
from ..errors import ParameterValueError
from .rounding import gamma

__all__ = ["scale_factor", "scale_from_bound"]


def _round_up(exact: Fraction) -> float:
    """The smallest float ``>= exact``."""
    value = float(exact)
    return math.nextafter(value, math.inf) if Fraction(value) < exact else value


def _sum_up(values: Any) -> float:
    """``Σ values`` (floats), summed exactly and rounded up."""
    return _round_up(sum((Fraction(float(v)) for v in values), Fraction(0)))


def scale_factor(weight: np.ndarray, x: np.ndarray, *, groups: int = 1) -> float:
    """Upper bound on ``S = Σ_h max_k ‖x_k W_Δh‖_∞`` for a kernel and an input.

    ``k`` runs over the pixels of ``x`` (padding adds zeros or copies of
    pixels, so it does not change the maxima) and ``h`` over the kernel
    positions. ``S`` is the data factor of the leak term ``2 L S``; with
    :func:`alpha_for_tolerance` it gives the ``α`` a tolerance needs for this
    input. Computed in float64 and raised by Higham's standard-model bound
    (``|fl(x W) − x W| <= γ_{d_in} |x||W|`` plus underflow, for any summation
    order, FMA included), then summed exactly and rounded up, so the
    value is never below the exact ``S``.

    Parameters
    ----------
    weight : ndarray, shape ``(*kernel_size, d_in // groups, d_out)``
    x : ndarray, shape ``(*batch, *spatial, d_in)``
    groups : int, optional

    Returns
    -------
    float

    Raises
    ------
    ShapeError, ParameterTypeError, ParameterValueError, NonFiniteError
        As for :func:`attn_expressivity.conv`.

    Examples
    --------
    >>> w = np.zeros((3, 3, 1, 1)); w[1, 1] = 2.0          # a 3x3 kernel with one tap
    >>> scale_factor(w, np.full((4, 4, 1), -1.5)) >= 3.0
    True
    """
    weight = as_float_array(weight, "weight")
    x = as_float_array(x, "x")
    cfg = make_config(weight.shape, groups=groups)
    check_image(x, cfg)
    mats = kernel_slices(weight.astype(np.float64), cfg.groups)           # (H, d_in, d_out)
    tokens = x.reshape(-1, cfg.d_in).astype(np.float64)                   # (n, d_in), exact
    u, eta = 2.0**-53, 2.0**-1074
    g = gamma(cfg.d_in, u)
    d_eta = cfg.d_in * eta
    abs_tokens = np.abs(tokens)
    per_head = []
    for mat in mats:                                                      # one head at a time:
        with np.errstate(under="ignore"):                                 # O(n d_out) memory
            val = np.abs(tokens @ mat)                                    # (n, d_out)
            mag = abs_tokens @ np.abs(mat)                                # (n, d_out)
            # |x W| <= |fl(x W)| + γ|x||W| + dη and |x||W| <= fl(|x||W|)/(1 − γ) + dη
            up = val + g * (mag / (1.0 - g) + d_eta) + d_eta              # 5 roundings, all >= 0
        per_head.append(float(up.max()) * (1.0 + 8 * u))                  # covers those roundings
    return _sum_up(math.nextafter(m, math.inf) for m in per_head)


def scale_from_bound(weight: np.ndarray, x_max: float, *, groups: int = 1) -> float:
    """Upper bound on ``S`` for every input with ``‖x‖_∞ <= x_max``.

    ``‖x_k W_Δ‖_∞ = max_c |Σ_i x_{k,i} W_Δ[i, c]| <= x_max · max_c Σ_i |W_Δ[i, c]|``,
    so ``S <= x_max · Σ_h max_c ‖W_Δh[:, c]‖_1``, evaluated in exact rational
    arithmetic and rounded up once, so the value is never below the exact one.

    Parameters
    ----------
    weight : ndarray, shape ``(*kernel_size, d_in // groups, d_out)``
    x_max : float
        Finite, ``>= 0``.
    groups : int, optional

    Returns
    -------
    float

    Raises
    ------
    ParameterValueError
        Negative, infinite or NaN ``x_max``; bad ``groups``.
    ParameterTypeError, ShapeError, NonFiniteError
        As for :func:`attn_expressivity.conv_to_mhsa`.

    Examples
    --------
    >>> scale_from_bound(np.ones((3, 3, 2, 4)), 0.5)      # 9 heads, column sums 2
    9.0
    """
    weight = as_float_array(weight, "weight")
    x_max = as_real(x_max, "x_max")
    if not (x_max >= 0) or math.isinf(x_max):
        raise ParameterValueError(f"`x_max` must be a finite number >= 0, got {x_max!r}")
    cfg = make_config(weight.shape, groups=groups)
    mats = np.abs(kernel_slices(weight.astype(np.float64), cfg.groups))  # (H, d_in, d_out)
    total = Fraction(0)
    for m in mats:
        total += max(sum((Fraction(w) for w in m[:, c].tolist()), Fraction(0))
                     for c in range(m.shape[1]))
    return _round_up(Fraction(x_max) * total)


# --------------------------------------------------------------------------- α per float type
