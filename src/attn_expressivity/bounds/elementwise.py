"""The sharp check: the error of a layer against its convolution, bounded element by element.

For every output element ``e`` of a :class:`~attn_expressivity.ConvAttention`
on an input ``x``, with ``â`` the layer's output as computed, ``C`` the exact
convolution and ``Â`` the layer in exact arithmetic from its computed weights
(:mod:`attn_expressivity.attention.traced`),

.. math::
    |\\hat a_e - C_e| \\le \\underbrace{|\\hat a_e - \\hat A_e|}_{\\text{rounding}}
      + \\underbrace{\\textstyle\\sum_h \\big(|P^h - T^h|\\,|x|\\big)_e |M_h|}_{\\text{leak}}
      + \\underbrace{\\textstyle\\sum_h |x_{t_h}|\\,|M_h - W_{\\Delta_h}|}_{\\text{factorisation}},

because ``Â_e − C_e = Σ_h ((P^h − T^h) x)_e M_h + Σ_h x_{t_h} (M_h − W_Δh)``
(``M_h = W_val^(h) W_out^(h)`` exactly, ``T^h`` the one-hot rows on the targets
``t_h = q + Δ_h``, the biases equal). Each term is computed element by element:

* **rounding**: the running error bound of the traced path;
* **leak**: ``|P^h − T^h|`` telescoped into ``D`` separable contractions
  (:mod:`attn_expressivity.bounds.tables`) applied to ``|x|`` and ``|M_h|``,
  in float64 and rounded up;
* **factorisation**: the exact residual ``|M_h − W_Δh|`` (zero for the identity
  split) applied to ``|x|`` at the targets.

The reference convolution is the compensated one
(:mod:`attn_expressivity.convolution.accurate`, ``|s + c − C| <= γ²``-small), so
the observed error ``|â − (s + c)|`` is measured without the rounding of a
working-precision reference; with inputs outside its safe range the plain
reference and its rounding bound ``γ_{m} conv(|x|, |W|)`` take its place. The
check passes an element when an upper bound on ``|â − (s + c)|`` plus the
reference's own error is within the bound: rigorous in both directions up to
the ``u²``-small width of that comparison.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ..attention.axes import AxisTable, band_width
from ..attention.bands import contract
from ..attention.traced import safety_factor, trace_positional, trace_separable
from ..convolution.accurate import conv_accurate
from ..convolution.reference import conv
from ..convolution.slices import kernel_slices
from ..errors import NonFiniteError
from ..theorem.heads import stored_heads
from .rounding import gamma, underflow_unit, unit_roundoff
from .tables import HeadAxes, head_axes, structural_issues, theory_budgets

__all__ = ["SharpResult", "abs_contract", "table_bytes", "channel_abs", "residual_bounds", "sharp_check"]

_U64 = 2.0**-53


class SharpResult(NamedTuple):
    """What :func:`sharp_check` measured and bounded; arrays have the output's shape."""

    output: np.ndarray          # the layer's output, as computed (traced path)
    error: np.ndarray           # |â − reference|, float64
    error_upper: np.ndarray     # an upper bound on |â − reference| (the comparison's own rounding)
    bound: np.ndarray           # rounding + leak + factorisation + the reference's own error
    rounding: np.ndarray
    leak: np.ndarray
    factorisation: np.ndarray
    reference: np.ndarray       # the reference's own error bound
    heads: list[HeadAxes]
    residual_excess: list[dict[str, Any]]
    accurate_reference: bool
    head_issues: list[dict[str, Any]]
    table_issues: list[dict[str, Any]]


def abs_contract(values: np.ndarray, tables: list[AxisTable]) -> np.ndarray:
    """Contract ``values`` of shape ``(B, *L, c)`` along every axis with ``tables``; ``(B, *m, c)``."""
    arr = values
    for i, table in enumerate(tables):
        shape = arr.shape
        pre, post = math.prod(shape[:i + 1]), math.prod(shape[i + 2:])
        arr = contract(arr.reshape(pre, shape[i + 1], post), table).reshape(
            shape[:i + 1] + (table.rows,) + shape[i + 2:])
    return arr


def table_bytes(layer: Any, x: np.ndarray) -> int:
    """About how many bytes :func:`sharp_check`'s tables take: 16 float64 tables of queries × band width
    per distinct axis factor (``L × L`` for a row shared by every query, ``α = 0``, or a band as wide
    as the axis, a tiny ``α``); 0 for a layer without per-axis factors."""
    cfg, m = layer.config, layer.mhsa
    if m.has_content_terms:
        return 0
    a, b = m.axis_coefficients()
    nd = cfg.ndim
    spatial = tuple(x.shape[x.ndim - nd - 1:-1])
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(spatial, cfg.pad_width))
    outs = cfg.output_shape(spatial)
    dtype = np.result_type(x, m.w_val)
    keys = {(i, float(a[h, i]), float(b[h, i]), tuple(layer.shifts[h])) for h in range(m.n_heads) for i in range(nd)}
    return sum(128 * outs[i] * band_width(k1, k2, padded[i], m.beta, dtype) for i, k1, k2, _ in keys)


def _one_hot(targets: np.ndarray, size: int) -> AxisTable:
    return AxisTable(targets.astype(np.int64), np.ones((targets.size, 1)), size, False, targets.size)


def channel_abs(layer: Any, dtype: np.dtype) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Per head, ``(|M_h|`` bounded above in float64, ``M_h`` exactly when known``)``.

    ``M_h = W_val W_out`` is read exactly when one factor is an identity block
    (then it is a slice of the other); otherwise ``|W_val| |W_out|`` raised by
    ``γ_{d_head}`` bounds it entry by entry.
    """
    out = []
    for cm, (w_val, w_out) in zip(layer.mhsa.channel_maps(1, dtype), _factors(layer)):
        if cm.exact:
            m = cm.matrix.astype(np.float64, copy=False)
            out.append((np.abs(m), m))
        else:
            k = w_val.shape[1]
            mag = np.abs(w_val) @ np.abs(w_out) * (1 + 2 * gamma(k + 1, _U64))
            out.append((mag, None))
    return out


def _factors(layer: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    m = layer.mhsa
    dh = m.d_head
    return [(m.w_val[h].astype(np.float64, copy=False), m.w_out[h * dh:(h + 1) * dh].astype(np.float64, copy=False))
            for h in range(m.n_heads)]


def residual_bounds(layer: Any, dtype: np.dtype) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
    """Per head, an upper bound on ``|M_h − W_Δh|``, and the heads certainly above their allowance.

    With an exact ``M_h`` the residual is one float64 subtraction of two floats
    (relative error ``u``); otherwise ``M_h`` is formed in float64 and its
    rounding, ``γ_{d_head} |W_val| |W_out|``, is added (and subtracted for the
    lower bound that decides an excess). The allowance is the split's own
    (:attr:`~attn_expressivity.ConvAttention.allowances`) or, for blocks built
    elsewhere, :func:`~attn_expressivity.theorem.factorisation.factorisation_allowance`.
    """
    from ..theorem.factorisation import factorisation_allowance

    cfg = layer.config
    mats = kernel_slices(layer.kernel.astype(np.float64, copy=False), cfg.groups)[layer.kernel_indices]
    uppers, excess = [], []
    for h, ((w_val, w_out), cm) in enumerate(zip(_factors(layer), layer.mhsa.channel_maps(1, dtype))):
        if cm.exact:
            diff = cm.matrix.astype(np.float64, copy=False) - mats[h]
            if not diff.any():                           # the exact split: nothing to carry
                uppers.append(np.broadcast_to(0.0, diff.shape))
                continue
            diff = np.abs(diff)
            upper, lower = diff * (1 + _U64), diff * (1 - _U64)
        else:
            k = w_val.shape[1]
            slack = gamma(k + 1, _U64) * (np.abs(w_val) @ np.abs(w_out)) * (1 + 4 * _U64)
            diff = np.abs(w_val @ w_out - mats[h])
            upper, lower = diff * (1 + _U64) + slack, diff * (1 - _U64) - slack
        uppers.append(upper)
        if layer.allowances is not None:
            allowed = float(layer.allowances[h])
        else:
            allowed = factorisation_allowance(mats[h], layer.mhsa.w_val[h],
                                              layer.mhsa.w_out[h * layer.d_head:(h + 1) * layer.d_head],
                                              layer.rank_tol)
        worst = float(lower.max()) if lower.size else 0.0
        if worst > allowed:
            excess.append({"head": h, "shift": [int(c) for c in layer.shifts[h]],
                           "residual": float(upper.max()), "allowance": allowed})
    return uppers, excess


def failing_heads(layer: Any, heads: list[HeadAxes], dtype: np.dtype, path: str,
                  issues: list, leaks: list) -> dict[int, np.ndarray]:
    """Heads named by a structural issue, with the leak the theory allows them per output channel.

    Their measured leak is not charged to the bound: a head whose weights are not
    Lemma 2's is allowed only what the theory allows a Lemma 2 head (per axis
    :func:`~attn_expressivity.bounds.tables.axis_leak_bound`, 0 where it is
    infinite), times ``X |W_val| |W_out|``, so its deviation shows as an error
    above the bound.
    """
    named = {e["head"] for e in issues + leaks}
    if not named:
        return {}
    m = layer.mhsa
    stored = stored_heads(layer)
    budgets = theory_budgets(layer, heads, stored, dtype, path) if stored is not None else None
    out = {}
    for h in range(m.n_heads):
        if None not in named and h not in named:
            continue
        per_axis = [b if math.isfinite(b) else 0.0 for b in (budgets[h] if budgets else [0.0])]
        ell, grow = 0.0, 1.0
        for b in reversed(per_axis):
            ell += b * grow
            grow *= 1 + b
        out[h] = ell * safety_factor(3 * len(per_axis) + 2)
    return out


def _leak(layer: Any, x64: np.ndarray, heads: list[HeadAxes], mags: list,
          factors: list, capped: dict[int, float]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The leak ``Σ_h ((P^h − T^h) x) M_h``: its value to within a relative ``κ``, and ``Σ_h |P^h − T^h| |x| |M_h|``.

    Both by the telescoping identity, ``D`` separable contractions per head
    (:mod:`attn_expressivity.bounds.tables`); the absolute one is rounded up
    (times ``ρ`` on the dense path, plus its underflow floor), the signed one is
    the exact sum up to the rounding of the float64 tables and contractions,
    which ``κ`` times the absolute one covers (:func:`sharp_check`).
    """
    D = x64.ndim - 2
    ax = np.abs(x64)
    total_abs = total = None
    x_max = ax.reshape(-1, ax.shape[-1]).max(axis=0)
    for h, (ha, (mag, exact), (w_val, w_out)) in enumerate(zip(heads, mags, factors)):
        if not np.any(mag):
            continue
        if h in capped:                                # a head the theory does not cover
            contrib_abs = np.broadcast_to(capped[h] * (x_max @ mag), x64.shape[:1] + tuple(
                t.rows for t in ha.tables) + (mag.shape[1],))
            total_abs = contrib_abs if total_abs is None else total_abs + contrib_abs
            total = np.zeros_like(contrib_abs) if total is None else total
            continue
        part_abs = part = None
        for i in range(D):
            hot = [_one_hot(ha.targets[j], ha.tables[j].size) for j in range(i)]
            y_abs = abs_contract(ax, hot + [ha.dev[i]] + ha.prob[i + 1:])
            y = abs_contract(x64, hot + [ha.signed[i]] + ha.near[i + 1:])
            part_abs = y_abs if part_abs is None else part_abs + y_abs
            part = y if part is None else part + y
        contrib_abs = (part_abs @ mag) * ha.rho
        contrib = part @ exact if exact is not None else (part @ w_val) @ w_out
        if ha.floor:                                   # dense path: n (D − 1) η per row, all keys
            contrib_abs += ha.floor * (ax.reshape(-1, ax.shape[-1]).max(axis=0) @ mag)
        total_abs = contrib_abs if total_abs is None else total_abs + contrib_abs
        total = contrib if total is None else total + contrib
    return total, total_abs


def _kappa_terms(heads: list[HeadAxes], widest: int, mhsa: Any) -> int:
    """Roundings along the float64 evaluation of the signed leak, for ``γ``."""
    nd = len(heads[0].tables) if heads else 1
    return nd * (widest + 2) + mhsa.d_in + mhsa.d_head + mhsa.n_heads + nd + 8


def sharp_check(layer: Any, x: np.ndarray, *, path: str) -> SharpResult:
    """Run ``layer`` on ``x`` with its running error bound and bound ``|â − C|`` element by element.

    Parameters
    ----------
    layer : ConvAttention
    x : ndarray, shape ``(*batch, *spatial, d_in)``
    path : {"separable", "dense"}
        Resolved already (:meth:`~attn_expressivity.MultiHeadSelfAttention.select_path`).

    Returns
    -------
    SharpResult
    """
    cfg, mhsa = layer.config, layer.mhsa
    nd = cfg.ndim
    xp = layer.pad(x)
    padded = tuple(xp.shape[xp.ndim - nd - 1:-1])
    batch = xp.shape[: xp.ndim - nd - 1]
    dtype = np.result_type(x, mhsa.w_val, mhsa.w_out, mhsa.v, mhsa.w_key_hat)
    queries = mhsa.query_positions(padded, layer.crop(padded))
    flat = xp.reshape((-1,) + padded + (cfg.d_in,)).astype(dtype)
    # overflow in the products is reported below, on the output, as the layer reports it
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        if path == "separable":
            out, rounding = trace_separable(mhsa, flat, queries, dtype)
        else:
            axis = mhsa.axis_coefficients()
            out, rounding = trace_positional(mhsa, flat.reshape(flat.shape[0], -1, cfg.d_in), padded,
                                             queries, axis, dtype)
    out_shape = batch + tuple(len(q) for q in queries) + (cfg.d_out,)
    out, rounding = out.reshape(out_shape), rounding.reshape(out_shape)
    if not np.isfinite(out).all():
        raise NonFiniteError(
            f"the attention output overflowed the {np.dtype(dtype).name} range (max |x| = "
            f"{float(np.abs(x).max()):.3e}); rescale the input or the value weights")
    heads = head_axes(layer, padded, queries, dtype, path)
    issues, leaks = structural_issues(layer, heads, dtype, path)
    capped = failing_heads(layer, heads, dtype, path, issues, leaks)
    mags = channel_abs(layer, dtype)
    x64 = flat.astype(np.float64, copy=False)
    ax = np.abs(x64)
    signed, magnitude = _leak(layer, x64, heads, mags, _factors(layer), capped)
    if signed is None:
        leak = np.zeros(out_shape)
    else:
        # the signed sum's float64 rounding: D contractions, the telescoping sum, a channel
        # product, the sum over heads, the tables' own relative u and, on the dense path,
        # the products' ρ and the row sums (2 γ_D of the off-target mass)
        widest = max(t.width for ha in heads for t in ha.signed)
        n_leak = _kappa_terms(heads, widest, mhsa)
        kappa = gamma(n_leak, _U64) + 4 * gamma(nd + 1, unit_roundoff(dtype)) * (path == "dense")
        leak = (np.abs(signed) + kappa * magnitude).reshape(out_shape) * safety_factor(n_leak + 4)
    residuals, excess = residual_bounds(layer, dtype)
    fact = np.zeros(out_shape)
    for ha, res in zip(heads, residuals):
        if np.any(res):
            tabs = [_one_hot(ha.targets[j], padded[j]) for j in range(nd)]
            fact += (abs_contract(ax, tabs) @ res).reshape(out_shape)
    fact *= safety_factor(cfg.d_in + mhsa.n_heads + 2)      # a product of length d_in, a sum over heads
    error, upper, reference, accurate = _compare(layer, x, out)
    bound = rounding + leak + fact + reference
    return SharpResult(out, error, upper, bound, rounding, leak, fact, reference, heads, excess, accurate,
                       issues, leaks)


def _compare(layer: Any, x: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """``(|â − ref|, an upper bound on it, the reference's own error bound, accurate)``.

    The check passes an element when the upper bound on ``|â − ref|`` is within
    rounding + leak + factorisation + the reference's error: if ``|â − C|`` is
    within the first three, that always holds, so a failure is certain.
    """
    cfg = layer.config
    opts = dict(stride=cfg.stride, padding=cfg.padding, dilation=cfg.dilation, groups=cfg.groups,
                padding_mode=cfg.padding_mode)
    a = out.astype(np.float64, copy=False)
    acc = conv_accurate(x, layer.kernel, layer.bias, **opts)
    if acc is not None:
        s, c, ref_err = acc
        d = a - s                                                    # TwoSum(â, −s): d + e = â − s
        z = d - a
        e = (a - (d - z)) + (-s - z)
        diff = d + (e - c)
        error = np.abs(diff)
        upper = error * (1 + 2 * _U64) + _U64 * (np.abs(e) + np.abs(c)) * 2 + 5e-324
        return error, upper, ref_err, True
    x64 = x.astype(np.float64, copy=False)
    w64 = layer.kernel.astype(np.float64, copy=False)
    b64 = None if layer.bias is None else layer.bias.astype(np.float64, copy=False)
    ref = conv(x64, w64, b64, **opts)
    mag = conv(np.abs(x64), np.abs(w64), None if b64 is None else np.abs(b64), **opts)
    m = math.prod(cfg.kernel_size) * (cfg.d_in // cfg.groups) + 1
    u, eta = _U64, underflow_unit(np.float64)
    ref_err = (gamma(m, u) * mag * (1 + 2 * gamma(m, u)) + 2 * m * eta) * safety_factor(8)
    error = np.abs(a - ref)
    return error, error * (1 + 2 * u) + 5e-324, ref_err, False
