"""Per-axis score tables of separable heads.

A head is *separable* when its score is a sum of per-axis functions of the
offset, ``A_{q,k} = Σ_i f_i(k_i − q_i)`` with ``f_i(t) = a_i t² + b_i t``
(:meth:`attn_expressivity.MultiHeadSelfAttention.axis_coefficients`). Both the
separable path and the dense positional path build their weights from the
``L × L`` tables of this module, one per axis and distinct ``(a, b)``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import NonFiniteError
from .softmax import exp_floor, stable_softmax

__all__ = ["axis_exp_table", "axis_scores", "axis_weights"]

_OVERFLOW = ("attention scores overflowed the floating-point range; scale the score "
             "weights down and use `beta` for the inverse temperature")


def axis_scores(a: float, b: float, size: int, dtype: np.dtype) -> np.ndarray:
    """``T[q, k] = f(k − q) = a (k − q)² + b (k − q)`` for ``q, k < size``; shape ``(size, size)``.

    Each entry is ``fl(fl(a t²) + fl(b t))`` with ``t²`` exact: a length-2
    inner product. The result is a read-only view of one ``2 size − 1`` vector.

    Raises
    ------
    NonFiniteError
        When an entry overflows.

    Examples
    --------
    >>> axis_scores(-1.0, 2.0, 3, np.dtype(np.float64)).tolist()
    [[0.0, 1.0, 0.0], [-3.0, 0.0, 1.0], [-8.0, -3.0, 0.0]]
    """
    t = np.arange(-(size - 1), size).astype(dtype)                      # offsets k − q
    with np.errstate(over="ignore", invalid="ignore"):
        g = dtype.type(a) * (t * t) + dtype.type(b) * t                 # (2 size − 1,)
    if not np.isfinite(g).all():
        raise NonFiniteError(_OVERFLOW)
    # row q is g[size − 1 − q : 2 size − 1 − q], i.e. window size − 1 − q
    return sliding_window_view(g, size)[::-1]


def axis_weights(a: float, b: float, size: int, dtype: np.dtype, beta: float) -> np.ndarray:
    """One axis' softmax matrix ``P[q, k] = softmax_k(β f(k − q))``, shape ``(size, size)``.

    Entries below the smallest normal number are flushed to zero (products
    with subnormal numbers are slow); :func:`attn_expressivity.bounds.error.error_bound`
    accounts for it.
    """
    p = stable_softmax(np.array(axis_scores(a, b, size, dtype)), beta)
    p[p < np.finfo(dtype).tiny] = 0.0
    return p.astype(dtype, copy=False)


def axis_exp_table(a: float, b: float, size: int, dtype: np.dtype, beta: float) -> np.ndarray:
    """``E[q, k] = exp(β (f(k − q) − max_k' f(k' − q)))``, unnormalised; shape ``(size, size)``.

    Every entry is ``<= 1`` and each row's maximum is exactly 1. ``β = ∞``
    gives the indicator of each row's argmax set and ``β = 0`` ones. Factors
    whose exponent is below :func:`~attn_expressivity.attention.softmax.exp_floor`
    are flushed to 0 (each moves by less than ``e · tiny``), so ``exp`` never
    returns a subnormal number.
    """
    t = axis_scores(a, b, size, dtype)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        t = t - t.max(axis=1, keepdims=True)                            # T <= 0, row max 0
        if beta == math.inf:
            return (t == 0).astype(dtype)                               # the argmax set of each row
        if beta == 0.0:
            return np.ones_like(t)
        if beta != 1.0:
            t *= beta
        floor = exp_floor(dtype)
        e = np.exp(np.maximum(t, floor))
        e[t < floor] = 0.0
    return e
