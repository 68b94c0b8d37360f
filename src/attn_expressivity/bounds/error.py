"""The a-priori bound on ``|layer(x) − conv(x)|`` for a constructed layer and an input.

:func:`error_bound` bounds the largest elementwise difference between the
layer of :func:`attn_expressivity.conv_to_mhsa` (run on a given path) and the
reference :func:`attn_expressivity.conv` with three terms (all in the
computation's dtype, unit roundoff ``u``, ``γ_m = mu/(1 − mu)``):

1. **Leak** ``2 · L̃ · S`` with ``S = Σ_h max_k ‖x_k W_val^(h) W_out^(h)‖_∞``
   over the padded image (see :mod:`attn_expressivity.bounds.leak`). ``L̃`` is
   :func:`leak_bound` at ``α(1 − τ)`` times ``e^{αC}``, with
   ``τ = 4γ_{d_p+2} + u`` and ``C = 8γ_{d_p+2} max_h ‖Δ_h‖²``. Both paths
   compute the score per axis: ``f_i(t) = −α t² + 2αΔ_i t`` (``t = δ_i``) as
   ``fl(fl(a t²) + fl(b t))`` with ``t²`` exact and ``b = fl(2αΔ_i)`` rounded
   once, so its error is at most ``γ_3 α(t² + 2|Δ_i||t|) ≤ γ_3 α(4z_i² + 5Δ_i²)``
   with ``z = δ − Δ`` (``t² ≤ 2z_i² + 2Δ_i²``); each axis' row maximum
   ``m_i ≥ f̂_i(Δ_i)`` is subtracted (relative error ``u``). Comparing key
   ``k`` with the target (``z = 0``, error at most ``3γ_3αΔ_i²``), the gap
   ``m_i − f̂_i(Δ_i)`` is at most ``8γ_3αΔ_i²``, and so

   * *separable path* (per-axis softmax): the exponent of key ``k`` relative
     to the target is at most ``−α(1 − 4γ_3 − u) z_i² + 8γ_3(1 + u)αΔ_i²`` per
     axis, so each axis keeps target mass ``≥ (1 + e^{αC_i}(θ₃(e^{−α(1−τ)}) − 1))^{−1}``
     and the product over axes leaks at most
     ``1 − (1 + e^{αC}T)^{−D} ≤ e^{αC}(1 − (1 + T)^{−D})`` (``T = θ₃ − 1``; the
     function ``1 − (1 + x)^{−D}`` is concave and vanishes at 0);
   * *dense path* (weights ``Π_i exp(f̂_i − m_i)``, the per-axis exponents
     of the separable path multiplied together): the exponent of key ``k``
     relative to the target is at most ``−α(1 − 4γ_3 − u)‖z‖² + 8γ_3(1 + u)α‖Δ‖²``.

   Both exponents are bounded by ``−α(1 − τ)‖z‖² + αC``,
   so the computed off-target weights are at most those of ``α(1 − τ)``
   times ``e^{αC}``, whatever the row maximum is; off-target over target mass
   ``e^{αC}X/(1 + e^{αC}X) ≤ e^{αC}X/(1 + X)`` then gives ``L̃``.
2. **Rounding** (Higham, *Accuracy and Stability of Numerical Algorithms*,
   2nd ed., §3.1, standard model, with ``exp`` allowed a relative error of
   ``4u``): the attention output is a chain of inner products — ``x W_val``
   (length ``d_in``), the convex combination over the keys, ``W_out`` and the
   sum over heads (length ``n_heads · d_head``) and the bias — bounded by
   ``γ_m · S_abs`` with ``S_abs = Σ_h max_k ‖|x_k||W_val^(h)||W_out^(h)|‖_∞ + ‖b‖_∞``.
   The convex combination depends on the path that ran:

   * *dense*: ``Σ_k w_k v_k / Σ_k w_k`` over the ``n`` keys, numerator and
     denominator inner products of length ``n``, each weight a product of ``D``
     per-axis ``exp`` values (relative error ``(1 + 4u)^D (1 + u)^{D−1}``,
     within ``γ_{5D}``), and the division:
     ``m = m_d = 2n + d_in + n_heads·d_head + 5D + 10``;
   * *separable*: ``D`` successive contractions of length ``L_i`` (the side
     along axis ``i``) with the normalised per-axis weights, each weight
     perturbed relatively by ``γ_{L_i+8}`` (exp, sum, division):
     ``m = m_s = Σ_i (2L_i + 8) + d_in + n_heads·d_head + 10``. (The separable
     path applies each head's channel map as ``(z W_val) W_out`` or
     ``z (W_val W_out)`` and sums heads that share factors before the outer
     contractions: lengths ``d_in + d_head + n_heads ≤ d_in + n_heads·d_head + 1``,
     within ``m_s``.)

   Per-axis factors below ``e^{⌈ln tiny⌉}`` (dense) or weights below ``tiny``
   (separable) are flushed to 0, since ``exp`` and the products are slow on
   subnormal numbers; each weight moves by less than ``e·tiny`` before
   normalisation (dense; the target's weight is ``exp(0) = 1``) or below
   ``tiny`` after it (separable), adding at most ``6 n · tiny · S_abs``.
   The reference convolution's own rounding is at most ``γ_{m_c} · C_abs`` with
   ``m_c = prod(K)·d_in/groups + 1`` and ``C_abs = max ‖conv(|x|, |W|)‖_∞ + ‖b‖_∞``.
3. **Factorisation**: ``Σ_h max_k ‖x_k‖_1 · max|W_Δh − W_val^(h) W_out^(h)|``,
   the residual of the rank-revealing split (zero in exact arithmetic when the
   rank tolerance drops nothing). Because a layer with wrong value/output blocks
   would otherwise just get a wider bound, each head's residual must also stay
   within :func:`attn_expressivity.theorem.factorisation.factorisation_allowance` (the
   rank tolerance plus the SVD's rounding); heads above it are listed in
   ``factorisation_excess`` and make ``holds`` false.

"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..convolution.reference import conv
from ..convolution.slices import kernel_slices
from ..errors import ParameterValueError
from ..theorem.construction import ConvAttention
from ..theorem.factorisation import factorisation_allowance
from .leak import leak_bound
from .rounding import gamma, unit_roundoff

__all__ = ["error_bound"]

_U64 = 2.0**-53


def error_bound(layer: ConvAttention, x: np.ndarray, *, path: str = "auto") -> dict[str, Any]:
    """The a-priori bound on ``|layer(x, path=path) − conv(x)|`` (module docstring).

    Parameters
    ----------
    layer : ConvAttention
    x : ndarray, shape ``(*batch, *spatial, d_in)``
    path : {"auto", "dense", "separable"}, optional
        The attention path whose rounding is bounded, resolved as
        :meth:`attn_expressivity.MultiHeadSelfAttention.select_path` does.

    Returns
    -------
    dict
        ``bound``, ``leak_term``, ``rounding_term``, ``factorisation_term``,
        ``factorisation_excess`` (heads whose residual exceeds its allowance),
        ``leak`` (the per-head leak used), ``scale`` (``S``) and ``path``.

    Raises
    ------
    ParameterValueError, NotSeparableError
        As for :meth:`attn_expressivity.MultiHeadSelfAttention.select_path`;
        ``ParameterValueError`` also when the rounding bound does not exist
        (``m·u >= 1/2``, e.g. float16 on a few hundred keys).
    """
    cfg, mhsa = layer.config, layer.mhsa
    path = mhsa.select_path(path)
    xp = layer.pad(x)
    padded = xp.shape[xp.ndim - cfg.ndim - 1:-1]
    dtype = np.result_type(x, mhsa.w_val)
    u = unit_roundoff(dtype)
    data = _data_terms(layer, x, xp)
    leak = _computed_leak(layer, u)
    # the leak term is computed from a rounded S: add the rounding of S itself
    leak_term = 2.0 * leak * (data["scale"] + gamma(cfg.d_in + mhsa.d_head + 2, u) * data["scale_abs"])
    rounding = _rounding_term(layer, path, padded, dtype, data)
    total = (leak_term + rounding + data["resid"]) * (1 + 4 * _U64)
    return {"bound": total, "leak_term": leak_term, "rounding_term": rounding,
            "factorisation_term": data["resid"], "factorisation_excess": data["excess"],
            "leak": leak, "scale": data["scale"], "path": path}


def _data_terms(layer: ConvAttention, x: np.ndarray, xp: np.ndarray) -> dict[str, Any]:
    """``S``, ``S_abs``, the factorisation term, its excess heads and ``C_abs`` (module docstring)."""
    cfg, mhsa = layer.config, layer.mhsa
    tokens = xp.reshape(-1, cfg.d_in)
    H, dh = mhsa.n_heads, mhsa.d_head
    w_out = mhsa.w_out.reshape(H, dh, cfg.d_out)
    abs_tokens = np.abs(tokens)
    scale = scale_abs = resid = 0.0
    excess: list[dict[str, Any]] = []
    l1 = float(abs_tokens.sum(axis=1).max())
    # head h carries the slice of kernel index kernel_indices[h]
    mats = kernel_slices(layer.kernel.astype(np.float64), cfg.groups)[layer.kernel_indices]
    for h in range(H):
        w_h = mhsa.w_val[h].astype(np.float64) @ w_out[h].astype(np.float64)     # (d_in, d_out)
        scale += float(np.abs(tokens @ w_h).max())
        w_abs = np.abs(mhsa.w_val[h]).astype(np.float64) @ np.abs(w_out[h]).astype(np.float64)
        scale_abs += float((abs_tokens @ w_abs).max())
        r_h = float(np.abs(mats[h] - w_h).max())
        resid += l1 * r_h
        allowed = factorisation_allowance(mats[h], mhsa.w_val[h], w_out[h], layer.rank_tol)
        if not r_h <= allowed:
            excess.append({"head": h, "shift": [int(c) for c in layer.shifts[h]],
                           "residual": r_h, "allowance": allowed})
    b_abs = 0.0 if layer.bias is None else float(np.abs(layer.bias).max())
    c_abs = float(conv(np.abs(x), np.abs(layer.kernel), stride=cfg.stride, padding=cfg.padding,
                       dilation=cfg.dilation, groups=cfg.groups,
                       padding_mode=cfg.padding_mode).max()) + b_abs
    return {"scale": scale, "scale_abs": scale_abs + b_abs, "resid": resid, "excess": excess,
            "c_abs": c_abs}


def _computed_leak(layer: ConvAttention, u: float) -> float:
    """``L̃``: the leak of the scores as computed, rounding of the scores included."""
    g_score = gamma(layer.mhsa.d_p + 2, u)
    tau = 4 * g_score + u
    max_shift_sq = float((layer.shifts.astype(np.float64) ** 2).sum(axis=1).max())
    alpha, nd = layer.alpha, layer.config.ndim
    if math.isinf(alpha):
        return 0.0
    a_eff, grow = alpha * (1 - tau), alpha * 8 * g_score * max_shift_sq
    if grow < 700.0:
        return min(1.0, leak_bound(a_eff, nd) * math.exp(grow))
    # e^{αC} overflows a float (α beyond ~1e16): take logarithms, with
    # leak_bound(a) <= 2.11·D·e^{-a} for a >= 1 (θ₃(x) − 1 <= 2x/(1 − x³) as
    # n² >= 3n − 2, and 1 − θ^{-D} <= D(θ − 1)); never rounded below 2^-1074.
    return max(math.exp(min(0.0, math.log(2.11 * nd) - a_eff + grow)), 5e-324)


def _rounding_term(layer: ConvAttention, path: str, padded: tuple[int, ...], dtype: np.dtype,
                   data: dict[str, Any]) -> float:
    """The rounding of the attention path and of the reference convolution (module docstring)."""
    cfg, mhsa = layer.config, layer.mhsa
    u = unit_roundoff(dtype)
    H, dh, nd = mhsa.n_heads, mhsa.d_head, cfg.ndim
    n_keys = math.prod(padded)
    if path == "separable":                 # D contractions of length L_i
        m_a = sum(2 * side + 8 for side in padded) + cfg.d_in + H * dh + 10
    else:                                   # one convex combination over the n keys
        m_a = 2 * n_keys + cfg.d_in + H * dh + 5 * nd + 10
    m_c = math.prod(cfg.kernel_size) * (cfg.d_in // cfg.groups) + 1
    flush = 6.0 * n_keys * float(np.finfo(dtype).tiny) * data["scale_abs"]   # weights flushed below tiny
    if m_a * u >= 0.5 or m_c * u >= 0.5:
        raise ParameterValueError(
            f"the a-priori rounding bound needs m·u < 1/2 and {np.dtype(dtype).name} has "
            f"u = {u:.3g}: the {path} path's chain of length m = {m_a} over {n_keys} keys gives "
            f"m·u = {m_a * u:.3g}; use a wider float type, a smaller image"
            + (" or path='separable'" if path == "dense" and mhsa.is_separable else "")
        )
    return gamma(m_a, u) * data["scale_abs"] + gamma(m_c, u) * data["c_abs"] + flush
