"""The separable path: ``D`` successive one-dimensional attentions per head.

For a head whose score is ``Σ_i f_i(k_i − q_i)`` and a rectangular key set
``K = K_1 × … × K_D`` (the whole, possibly padded, image),

.. math::
    \\mathrm{softmax}_k(\\beta A_{q,k})
      = \\frac{\\prod_i e^{\\beta f_i(k_i - q_i)}}
             {\\sum_{k' \\in K} \\prod_i e^{\\beta f_i(k'_i - q_i)}}
      = \\prod_i \\frac{e^{\\beta f_i(k_i - q_i)}}{\\sum_{k'_i \\in K_i} e^{\\beta f_i(k'_i - q_i)}}
      = \\prod_i P^{(i)}_{q_i, k_i},

because a sum over a product set of a product of per-axis factors is the
product of the per-axis sums. So the attention matrix is the Kronecker product
``P^(1) ⊗ … ⊗ P^(D)`` of ``D`` one-dimensional softmax matrices
(``L_i × L_i``, ``L_i`` the side along axis ``i``), and a head is applied as
``D`` successive one-dimensional attentions, one contraction per axis:
``O(n Σ_i L_i)`` per head instead of ``O(n²)``. For ``β = ∞`` the argmax set of
``Σ_i f_i`` over a product set is the product of the per-axis argmax sets, and
the uniform distribution on a product is the product of the uniform
distributions, so the identity holds in the limit too. Each ``P^(i)`` subtracts
its own row maximum before ``exp`` (any per-query constant leaves a softmax
unchanged).
"""

from __future__ import annotations

import math

import numpy as np

from .axes import axis_weights
from .weights import AttentionWeights

__all__ = ["attend_separable"]

Factor = tuple[float, float, int]


def attend_separable(layer: AttentionWeights, x: np.ndarray, spatial: tuple[int, ...],
                     dtype: np.dtype) -> np.ndarray:
    """``x`` of shape ``(B, *spatial, d_in)``; returns ``(B, n, d_out)``.

    Head ``h`` is ``P^(1) ⊗ … ⊗ P^(D)`` applied to ``x W^(h)`` with
    ``W^(h) = W_val^(h) W_out^(h)``: one contraction of length ``L_i`` per
    axis (module docstring). The channel map ``W^(h)`` acts on the last axis
    and the ``P^(i)`` on spatial axes, so they commute, and heads that share
    factors share work: the last spatial axis is contracted once per distinct
    factor (on ``x``), each head's channel map is applied and the results are
    summed over heads that share the factors of the remaining axes, and those
    axes are then contracted once per group. For a convolution's ``K^D``
    heads this is ``K + K^(D−1) + … + K`` contractions instead of ``D K^D``.
    Grouping keeps one ``(B, n, d_out)`` array per group; when that would
    exceed ``max(memory_budget, 8 arrays)`` the heads run one at a time.
    """
    a, b = layer.axis_coefficients()
    H, D = layer.n_heads, len(spatial)
    B, n = x.shape[0], math.prod(spatial)
    cache: dict[Factor, np.ndarray] = {}

    def factor(h: int, i: int) -> Factor:
        key = (float(a[h, i]), float(b[h, i]), spatial[i])
        if key not in cache:
            cache[key] = axis_weights(*key, dtype, layer.beta)
        return key

    def contract(arr: np.ndarray, i: int, key: Factor) -> np.ndarray:
        # Σ_{k_i} P^(i)[q_i, k_i] arr[..., k_i, ...]: a length-L_i convex combination
        pre = B * math.prod(spatial[:i])
        post = math.prod(spatial[i + 1:]) * arr.shape[-1]
        return np.matmul(cache[key], arr.reshape(pre, spatial[i], post)).reshape(arr.shape)

    keys = [[factor(h, i) for i in range(D)] for h in range(H)]
    prefixes = {tuple(k[:-1]) for k in keys}
    array_bytes = B * n * max(layer.d_in, layer.d_out) * np.dtype(dtype).itemsize
    x = x.reshape((B,) + spatial + (layer.d_in,))
    if (len(prefixes) + 1) * array_bytes > max(layer.memory_budget, 8 * array_bytes):
        out = np.zeros((B,) + spatial + (layer.d_out,), dtype=dtype)
        for h in range(H):
            y = _channels(layer, contract(x, D - 1, keys[h][-1]), h)
            for i in range(D - 2, -1, -1):
                y = contract(y, i, keys[h][i])
            out += y
        return out.reshape(B, n, layer.d_out) + layer.b_out
    return _grouped(layer, x, keys, contract).reshape(B, n, layer.d_out) + layer.b_out


def _channels(layer: AttentionWeights, z: np.ndarray, h: int) -> np.ndarray:
    """``z W_val^(h) W_out^(h)``, in the cheaper of the two association orders."""
    dh, d_in, d_out = layer.d_head, layer.d_in, layer.d_out
    w_out = layer.w_out[h * dh:(h + 1) * dh]
    if dh * (d_in + d_out) <= d_in * d_out:
        return (z @ layer.w_val[h]) @ w_out
    return z @ (layer.w_val[h] @ w_out)


def _grouped(layer: AttentionWeights, x: np.ndarray, keys: list[list[Factor]],
             contract) -> np.ndarray:
    """All heads, sharing the contractions of heads with equal factors; ``(B, *spatial, d_out)``."""
    D = len(keys[0])
    by_last: dict[Factor, list[int]] = {}
    for h in range(layer.n_heads):
        by_last.setdefault(keys[h][-1], []).append(h)
    partial: dict[tuple, np.ndarray] = {}          # keyed by the factors of axes 0 … D−2
    for key, heads in by_last.items():
        z = contract(x, D - 1, key)                                     # (B, *spatial, d_in)
        for h in heads:
            prefix = tuple(keys[h][:-1])
            if prefix in partial:
                partial[prefix] += _channels(layer, z, h)
            else:
                partial[prefix] = _channels(layer, z, h)                # (B, *spatial, d_out)
    for i in range(D - 2, -1, -1):
        merged: dict[tuple, np.ndarray] = {}
        for prefix, arr in partial.items():
            y = contract(arr, i, prefix[i])
            if prefix[:i] in merged:
                merged[prefix[:i]] += y
            else:
                merged[prefix[:i]] = y
        partial = merged
    return partial[()]
