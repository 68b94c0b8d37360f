"""The a-priori bound on ``|layer(x) − conv(x)|``, per output channel, at the cost of a few maxima.

:func:`error_bound` bounds the difference between the layer of
:func:`attn_expressivity.conv_to_mhsa` as its fast path computes it
(:mod:`~attn_expressivity.attention.separable` or the dense positional path)
and the package's reference :func:`attn_expressivity.conv` in the same
floating-point type. It is the bound of the element-wise argument
(:mod:`attn_expressivity.bounds.elementwise`; ``docs/bounds.md`` states it as a
theorem) with every magnitude replaced by a maximum over the image, so it costs
``O(n d_in)`` for the per-channel maxima ``X_c = max_k |x_{k,c}|`` and
``O(H d_head (d_in + d_out))`` for ``A_h = X |W_val^(h)| |W_out^(h)|``, nothing of
the size of a convolution. For output channel ``o``:

* **rounding** of the path, stage by stage: a contraction with table ``P̂``
  multiplies magnitudes by at most its largest row sum ``σ`` and adds at most
  ``λ`` times the incoming magnitude, ``λ`` the largest row sum of the smaller of
  the two error tables of :func:`~attn_expressivity.attention.traced.error_tables`
  (``3 w η`` for underflow); a channel product of inner length ``m`` adds
  ``γ_m`` times the magnitude (plus ``γ_{d_head}`` when ``W_val W_out`` is formed
  first); the dense path's sum over keys uses the distinguished-term bound with
  the largest off-target sum of its weights, ``Π_i (1 + off_i) − 1``; the sums
  over heads add ``γ_{H+D}`` times what they sum; the bias one rounding;
* **leak**: ``Σ_h ℓ_h A_{h,o}`` with ``ℓ_h`` the largest row norm of
  ``|P^h − T^h|`` (:mod:`attn_expressivity.bounds.tables`): the head's computed
  weights against the convolution's one-hot rows;
* **factorisation**: ``Σ_h X |W_Δh − W_val^(h) W_out^(h)|``, zero for the exact
  identity split;
* **reference**: the reference convolution's own rounding, an inner product of
  length ``m_c = prod(K) d_in / groups + 1``: ``γ_{m_c} (Σ_taps X |W_tap| + |b|) + m_c η``,
  with ``u`` and ``η`` of the reference's type: the inputs' type by default, or
  float64 for a reference computed from the inputs promoted to float64 (exact),
  which :func:`attn_expressivity.verify` compares with, so that a float16
  instance with ``m_c u >= 1`` still has a verdict.

A check passes when ``|layer(x) − conv(x)|``, computed in float64 and rounded
up, is within the bound of its channel, every head is Lemma 2's up to the
rounding of its stored vector (:func:`attn_expressivity.theorem.heads.head_issues`),
its computed tables leak no more than the theory allows
(:func:`attn_expressivity.bounds.tables.table_issues`) and its factorisation
residual is within its allowance.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..attention.traced import safety_factor
from ..convolution.slices import kernel_slices
from ..errors import ParameterValueError
from ..theorem.construction import ConvAttention
from .elementwise import failing_heads, residual_bounds
from .rounding import gamma, underflow_unit, unit_roundoff
from .tables import HeadStats, head_stats, structural_issues

__all__ = ["error_bound"]

_U64 = 2.0**-53


def _axis_factors(stats) -> tuple[float, float, int]:
    """``(σ, λ, w)`` of one computed table: largest row sum, largest row sum of the smaller of
    :func:`~attn_expressivity.attention.traced.error_tables`' two tables, widest row
    (:func:`~attn_expressivity.bounds.tables.axis_stats`, in blocks)."""
    sigma, lam, w = stats.rounding[:3]
    return sigma, lam, w


def _separable_rounding(layer: ConvAttention, heads: list[HeadStats], amag: list[np.ndarray],
                        x_max: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Per output channel: the separable path's rounding (module docstring)."""
    mhsa = layer.mhsa
    u, eta = unit_roundoff(dtype), underflow_unit(dtype)
    d_in, dh, H = mhsa.d_in, mhsa.d_head, mhsa.n_heads
    a, b = mhsa.axis_coefficients()
    first = len({(float(a[h, 0]), float(b[h, 0])) for h in range(H)})
    m2 = max(first * d_in, d_in + dh)                                   # merged or two thin products
    total_mag = np.zeros(mhsa.d_out)
    total_err = np.zeros(mhsa.d_out)
    for ha, (w_val_abs, w_out_abs) in zip(heads, amag):
        s0, l0, w0 = _axis_factors(ha.tables[0])
        mag_in = s0 * x_max
        err_in = l0 * x_max + 3 * w0 * eta
        mag = (mag_in @ w_val_abs) @ w_out_abs * (1 + 4 * gamma(d_in + dh, _U64))
        err = (err_in @ w_val_abs) @ w_out_abs * (1 + 4 * gamma(d_in + dh, _U64))
        err += (_layer_gamma(m2, u, dtype, "channel products") + _layer_gamma(dh, u, dtype, "output products")) * mag + 2 * m2 * eta
        for table in ha.tables[1:]:
            s, lam, w = _axis_factors(table)
            err = s * err + lam * mag + 3 * w * eta
            mag = s * mag
        total_mag += mag
        total_err += err
    acc = _layer_gamma(H + len(heads[0].tables) + 1, u, dtype, "sums over heads") * (total_mag + total_err)
    bias = np.abs(mhsa.b_out.astype(np.float64, copy=False))
    return (total_err + acc + u * (total_mag + total_err + acc + bias) * (1 + u)) * safety_factor(_n_ops(mhsa))


def _dense_rounding(layer: ConvAttention, heads: list[HeadStats], amag: list[np.ndarray],
                    x_max: np.ndarray, dtype: np.dtype, n: int) -> np.ndarray:
    """Per output channel: the dense positional path's rounding (module docstring)."""
    mhsa = layer.mhsa
    u, eta = unit_roundoff(dtype), underflow_unit(dtype)
    spread = 2.0 if dtype == np.float16 else 1.0
    d_in, dh, H = mhsa.d_in, mhsa.d_head, mhsa.n_heads
    total_mag = np.zeros(mhsa.d_out)
    total_err = np.zeros(mhsa.d_out)
    for ha, (w_val_abs, w_out_abs) in zip(heads, amag):
        mag_v = x_max @ w_val_abs * (1 + 2 * gamma(d_in, _U64))
        err_v = _layer_gamma(d_in, u, dtype, "value products") * mag_v + d_in * eta
        # the weights ŝ = fl(Π E_i) of a query sum to at most Π_i z_i (row sums) and, apart
        # from the key where every factor is its row's largest, to Π_i z_i − Π_i top_i <=
        # Σ_i o_i Π_{j<i} z_j, o_i the row sum without its largest entry (no cancellation)
        exact_top = all(t.rounding[3] for t in ha.tables)
        off_max, z_prod = 0.0, 1.0
        for t in ha.tables:                 # z_i, o_i: axis_stats' largest row sums, rounded up
            z_i, o_i = t.rounding[4], t.rounding[5]
            off_max += o_i * z_prod
            z_prod *= z_i
        off_max = off_max * (1 + u) ** len(ha.tables) * (1 + 8 * _U64) + n * eta
        s_max = (z_prod * (1 + u) ** len(ha.tables) + n * eta) * (1 + 8 * _U64)
        w = n
        lemma = spread * (1 + _gamma_or_inf(3 * w + 1, u)) * off_max if exact_top else math.inf
        key = min(lemma, _gamma_or_inf(w, u) * s_max)
        e_num = key * mag_v + s_max * err_v + 3 * w * eta
        e_den = key + 3 * w * eta
        if not e_den < 0.5:
            raise ParameterValueError(
                f"no rounding bound of the dense path exists for {np.dtype(dtype).name} over {n} keys "
                f"(the row sums' error bound {e_den:.3g} is not below 1/2); use a wider float type, "
                f"a smaller image or path='separable'")
        mag_m = mag_v * (1 + 4 * e_den) * (1 + u)
        e_m = u * mag_m + eta + (e_num + mag_m * e_den) / (1 - e_den)
        mag = mag_m @ w_out_abs * (1 + 2 * gamma(dh, _U64))
        err = e_m @ w_out_abs * (1 + 2 * gamma(dh, _U64)) + _layer_gamma(dh, u, dtype, "output products") * mag + 2 * dh * eta
        total_mag += mag
        total_err += err
    acc = _layer_gamma(H + 1, u, dtype, "sums over heads") * (total_mag + total_err)
    bias = np.abs(mhsa.b_out.astype(np.float64, copy=False))
    return (total_err + acc + u * (total_mag + total_err + acc + bias) * (1 + u)) * safety_factor(_n_ops(mhsa))


def _n_ops(mhsa: Any) -> int:
    """Float64 roundings on any path of a per-channel bound: the products of length ``d_in`` and
    ``d_head`` not raised by their own ``γ``, the sums over heads, a few per axis and stage."""
    return mhsa.d_in + mhsa.d_head + mhsa.n_heads + 8 * mhsa.ndim + 64


def _layer_gamma(m: int, u: float, dtype: np.dtype, what: str) -> float:
    """``γ_m`` of one of the layer's own stages; a refusal that says what to change where none exists."""
    if m * u >= 1:
        raise ParameterValueError(
            f"no rounding bound of the layer's {what} exists in {np.dtype(dtype).name}: inner length "
            f"m = {m}, m·u = {m * u:.4g} >= 1; use a wider float type for the weights and the input, "
            f"fewer channels, or the element-by-element check (sharp=True), which follows the "
            f"roundings that occurred")
    return gamma(m, u)


def _gamma_or_inf(m: int, u: float) -> float:
    return gamma(m, u) if m * u < 1 else math.inf


def error_bound(layer: ConvAttention, x: np.ndarray, *, path: str = "auto",
                reference_dtype: Any = None) -> dict[str, Any]:
    """The a-priori bound on ``|layer(x, path=path) − conv(x)|`` per output channel (module docstring).

    Parameters
    ----------
    layer : ConvAttention
        Without content terms and with the quadratic encoding (as built by
        :func:`~attn_expressivity.conv_to_mhsa`, possibly with edited weights).
    x : ndarray, shape ``(*batch, *spatial, d_in)``
    path : {"auto", "dense", "separable"}, optional
        The attention path whose rounding is bounded, resolved as
        :meth:`attn_expressivity.MultiHeadSelfAttention.select_path` does.
    reference_dtype : dtype, optional
        The type the reference convolution is computed in: None (default) the
        result type of ``x``, the kernel and the bias, as :func:`attn_expressivity.conv`
        computes it on them; ``numpy.float64`` for the reference on the inputs
        promoted to float64.

    Returns
    -------
    dict
        ``bound`` (the largest channel's), ``per_channel`` (``(d_out,)``),
        ``terms_per_channel`` (each term's ``(d_out,)`` array),
        ``rounding_term``, ``leak_term``, ``factorisation_term``,
        ``reference_term`` (largest over the channels), ``leak`` (the largest
        row norm of ``|P^h − T^h|``), ``scale`` (``Σ_h max_o A_{h,o}``),
        ``factorisation_excess``, ``head_issues``, ``table_issues`` and ``path``.

    Raises
    ------
    ParameterValueError, NotSeparableError
        As for :meth:`attn_expressivity.MultiHeadSelfAttention.select_path`;
        ``ParameterValueError`` also when no rounding bound of the form
        ``γ_m`` exists in the layer's or the reference's type (``m u >= 1``:
        float16 with many input channels), the message saying what to change.
    UnsupportedConfigurationError
        A layer with content terms or scores that do not split over the axes.

    Examples
    --------
    >>> from attn_expressivity import conv, conv_to_mhsa
    >>> rng = np.random.default_rng(0)
    >>> w, x = rng.standard_normal((3, 3, 2, 2)), rng.standard_normal((6, 5, 2))
    >>> layer = conv_to_mhsa(w, alpha=30.0)
    >>> terms = error_bound(layer, x)
    >>> bool(np.abs(layer(x) - conv(x, w)).max() <= terms["bound"]), terms["path"]
    (True, 'separable')
    """
    cfg, mhsa = layer.config, layer.mhsa
    path = mhsa.select_path(path)
    xp = layer.pad(x)
    nd = cfg.ndim
    padded = tuple(xp.shape[xp.ndim - nd - 1:-1])
    dtype = np.result_type(x, mhsa.w_val, mhsa.w_out, mhsa.v, mhsa.w_key_hat)
    queries = mhsa.query_positions(padded, layer.crop(padded))
    heads = head_stats(layer, padded, queries, dtype, path)
    issues, leaks = structural_issues(layer, heads, dtype, path)
    x_max = np.abs(xp.reshape(-1, cfg.d_in)).max(axis=0).astype(np.float64, copy=False) if xp.size else np.zeros(cfg.d_in)
    dh = mhsa.d_head
    amag = []
    for h, cm in enumerate(mhsa.channel_maps(1, dtype)):
        if cm.exact:                        # an identity block: |W_val| |W_out| = |M|, one factor
            amag.append((np.eye(cfg.d_in), np.abs(cm.matrix.astype(np.float64, copy=False))))
        else:
            amag.append((np.abs(mhsa.w_val[h].astype(np.float64, copy=False)),
                         np.abs(mhsa.w_out[h * dh:(h + 1) * dh].astype(np.float64, copy=False))))
    a_h = [(x_max @ wv) @ wo * (1 + 4 * gamma(cfg.d_in + dh, _U64)) for wv, wo in amag]
    n = math.prod(padded)
    if path == "separable":
        rounding = _separable_rounding(layer, heads, amag, x_max, dtype)
    else:
        rounding = _dense_rounding(layer, heads, amag, x_max, dtype, n)
    capped = failing_heads(layer, heads, dtype, path, issues, leaks)
    leak_rows = []
    leak = np.zeros(cfg.d_out)
    for h, (ha, a) in enumerate(zip(heads, a_h)):
        ell = 0.0
        for i in range(nd):
            tail = math.prod(t.rowsum for t in ha.tables[i + 1:]) if i + 1 < nd else 1.0
            ell += ha.tables[i].dev_mass * tail
        ell = ell * ha.rho * (1 + 4 * nd * _U64) + ha.floor
        if h in capped:                        # not Lemma 2's head: only the theory's leak
            ell = capped[h]
        leak_rows.append(ell)
        leak += ell * a
    residuals, excess = residual_bounds(layer, dtype)
    fact = sum((x_max @ r for r in residuals if np.any(r)), np.zeros(cfg.d_out))
    if reference_dtype is None:
        reference_dtype = np.result_type(x, layer.kernel, *([] if layer.bias is None else [layer.bias]))
    reference = _reference_rounding(layer, x_max, np.dtype(reference_dtype))
    per_channel = (rounding + leak + fact + reference) * safety_factor(_n_ops(mhsa))
    return {"bound": float(per_channel.max()) if per_channel.size else 0.0, "per_channel": per_channel,
            "terms_per_channel": {"rounding": rounding, "leak": leak, "factorisation": fact,
                                  "reference": reference},
            "rounding_term": float(rounding.max()), "leak_term": float(leak.max()),
            "factorisation_term": float(fact.max()), "reference_term": float(reference.max()),
            "leak": max(leak_rows, default=0.0), "scale": float(sum(a.max() for a in a_h)),
            "factorisation_excess": excess, "head_issues": issues, "table_issues": leaks, "path": path}


def _reference_rounding(layer: ConvAttention, x_max: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``γ_{m_c} (Σ_taps X |W_tap| + |b|) + 2 m_c η`` per output channel, in the reference's type."""
    cfg = layer.config
    u, eta = unit_roundoff(dtype), underflow_unit(dtype)
    mats = np.abs(kernel_slices(layer.kernel.astype(np.float64, copy=False), cfg.groups))      # (taps, d_in, d_out)
    mag = np.einsum("c,tco->o", x_max, mats) * (1 + 2 * gamma(mats.shape[0] * cfg.d_in, _U64))
    if layer.bias is not None:
        mag = mag + np.abs(layer.bias.astype(np.float64, copy=False))
    m = math.prod(cfg.kernel_size) * (cfg.d_in // cfg.groups) + 1
    if m * u >= 1:
        raise ParameterValueError(
            f"no rounding bound of the {np.dtype(dtype).name} reference convolution exists: its inner "
            f"products have m = {m} terms and m·u = {m * u:.4g} >= 1; compare with a reference "
            f"computed in float64 (error_bound(..., reference_dtype=numpy.float64), as verify does)")
    return gamma(m, u) * mag * (1 + 2 * _U64) + 2 * m * eta
