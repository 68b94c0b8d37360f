"""The execution paths with a running error bound (Higham, *Accuracy and Stability*, §3.3).

:func:`trace_separable` and :func:`trace_positional` compute the same function
as the separable and the dense positional path, with the same per-axis tables,
and return beside the output an array ``err`` with, element by element,

.. math::
    |\\mathrm{out} - \\hat A| \\le \\mathrm{err},

where ``Â`` is the layer evaluated in *exact* arithmetic from the *computed*
weights: the banded per-axis tables ``P̂_i`` (separable) or the products
``ŝ = fl(Π_i E_i)`` (dense), the stored ``W_val``, ``W_out`` and ``b_out``. How far
those weights are from the convolution's one-hot rows is the leak, bounded
apart (:mod:`attn_expressivity.bounds.elementwise`); what is bounded here is
the rounding of the contractions, channel products, sums, divisions and the
bias, under the IEEE 754 model with round to nearest,
``fl(a ∘ b) = (a ∘ b)(1 + δ) + η`` (``|δ| <= u``, ``|η|`` at most one subnormal for products
and quotients, ``η = 0`` for sums; ``δη = 0``). Each bound counts only the
terms that can be non-zero:

* **Band and key sums** (the contractions, the dense path's sum over keys):
  with ``j`` the row's largest weight, an inner product ``Σ_k p_k v_k`` computed
  in any order, with or without fused multiply-adds, errs by at most
  ``u |p_j v_j| [p_j ≠ 1] + (1 + γ_{3w+1}) Σ_{k≠j} p_k |v_k| + w η``: every
  addition on the path of term ``j`` errs by at most the magnitude of its
  other operand (the nearest float to ``a + b`` is no further from it than the
  float ``a``), every other operation by ``u`` times its result, and the
  product ``p_j v_j`` is exact when ``p_j = 1``. The standard
  ``γ_w Σ_k p_k |v_k| + w η`` (Higham, (3.5)) holds too; the smaller of the two is
  used, element by element. ``w`` is the number of non-zero weights of the row.
* **Channel products and sums over heads** run as explicit products summed
  pairwise (over the inner index, then over heads), so the running bound
  ``Σ u |fl(z_i M_i)| + η`` over the products and ``Σ u |node|`` over the
  additions of two non-zero operands holds with the computed values (no BLAS
  summation order is assumed); a pairwise tree's partial sums stay near the
  size of the terms, which keeps the bound close to the error.
* **Division** ``fl(a / b)`` of a numerator and a row sum that carry errors
  ``e_a``, ``e_b``: ``u |q| + (e_a + |q| e_b) / (b − e_b) + η``.
* **Propagation**: an input error ``e`` passes through a contraction as
  ``P̂ e`` and through a channel map as ``e |M|``.

The bound itself is computed in float64 from non-negative terms, each
rounded at most ``N`` times, and raised by ``(1 + 2^-40)`` plus ``N`` units of
float64's smallest subnormal, which covers that rounding. The traced paths
hold every intermediate array of the image at once: they are meant for the
instances a sharp verdict is wanted on (:func:`attn_expressivity.verify`
chooses them below a size threshold).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterValueError
from .axes import AxisTable, axis_table
from .bands import contract
from .positional import head_tables, head_weights, query_chunks
from .weights import AttentionWeights

__all__ = ["error_tables", "trace_positional", "trace_separable"]

_SAFETY = 1.0 + 2.0**-40


def _model(dtype: np.dtype) -> tuple[float, float]:
    """``(u, η)``: unit roundoff and a bound on the underflow error of a product (one subnormal)."""
    info = np.finfo(dtype)
    return float(info.eps) / 2, float(info.smallest_subnormal)


def _spread(dtype: np.dtype) -> float:
    """Factor on the off-diagonal terms of the distinguished-term bound.

    1 for float32 and float64, whose matrix products run in the working type
    (BLAS; fused multiply-adds allowed). numpy's float16 matrix products are
    its own loops, which may accumulate in a wider type and round once at the
    end: the wider accumulation errs as above and the final rounding, to the
    float nearest a value within the off-diagonal sum of the float ``p_j v_j``,
    by at most that much again, hence 2.
    """
    return 2.0 if np.dtype(dtype) == np.float16 else 1.0


def _gamma(m: int, u: float) -> float:
    """Higham's ``γ_m``; infinite when ``m u >= 1/2`` (no useful bound of that form exists)."""
    return m * u / (1 - m * u) if m * u < 0.5 else math.inf


def _no_bound(dtype: np.dtype, w: int) -> ParameterValueError:
    return ParameterValueError(
        f"no rounding bound exists for a sum of {w} non-zero terms in {np.dtype(dtype).name} "
        f"(u = {float(np.finfo(dtype).eps) / 2:.3g}: w·u >= 1/2); use a wider float type, a "
        f"smaller image, a larger alpha (fewer weights above the flush threshold) or "
        f"path='separable'")


def error_tables(table: AxisTable, u: float, spread: float = 1.0) -> tuple[AxisTable, AxisTable, int]:
    """Two non-negative tables ``Λ`` with ``Λ |v| + 3 w η`` bounding each row's rounding (module docstring).

    Returns ``(lemma, standard, w)``: the distinguished-term table
    (``u p_j [p_j ≠ 1]`` at the row's largest weight, ``spread (1 + γ_{3w+1}) p_k``
    elsewhere), the standard one (``γ_w p_k``), and ``w``, the largest number
    of non-zero weights in a row. Both are float64.
    """
    vals = np.abs(table.values.astype(np.float64))
    w = int((vals != 0).sum(axis=1).max()) if vals.size else 0
    j = np.argmax(vals, axis=1)
    rows = np.arange(vals.shape[0])
    with np.errstate(invalid="ignore"):
        lemma = vals * (spread * (1.0 + _gamma(3 * w + 1, u)))
        standard = vals * _gamma(max(w, 1), u)
    top = vals[rows, j]
    lemma[rows, j] = np.where(table.values[rows, j] == 1, 0.0, u * top)
    lemma[vals == 0] = 0.0
    standard[vals == 0] = 0.0
    if not (np.isfinite(lemma).all() or np.isfinite(standard).all()):
        raise _no_bound(table.values.dtype, w)
    return table._replace(values=lemma), table._replace(values=standard), w


def _traced_contract(v: np.ndarray, e: np.ndarray, table: AxisTable,
                     u: float, eta: float) -> tuple[np.ndarray, np.ndarray]:
    """``(fl(P̂ v), bound)`` for ``v``, ``e`` of shape ``(pre, L, post)``."""
    out = contract(v, table)
    lemma, standard, w = error_tables(table, u, _spread(v.dtype))
    av = np.abs(v).astype(np.float64)
    err = np.minimum(contract(av, lemma), contract(av, standard)) + 3 * w * eta
    absolute = table._replace(values=np.abs(table.values.astype(np.float64)))
    if np.any(e):
        err += contract(e, absolute)
    return out, err


def _tree(v: np.ndarray, e: np.ndarray, u: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise sum of ``v`` along axis 1, with the running bound ``Σ u |node|`` over its additions."""
    while v.shape[1] > 1:
        k = v.shape[1] // 2
        a, b = v[:, :k], v[:, k:2 * k]
        s = a + b                                                      # one rounding each
        moved = (a != 0) & (b != 0)                                    # x + 0 is exact
        err = e[:, :k] + e[:, k:2 * k] + u * np.abs(s) * moved
        if v.shape[1] % 2:
            s = np.concatenate([s, v[:, -1:]], axis=1)
            err = np.concatenate([err, e[:, -1:]], axis=1)
        v, e = s, err
    return v[:, 0], e[:, 0]


def _product_sum(z: np.ndarray, ez: np.ndarray, m: np.ndarray, u: float,
                 eta: float) -> tuple[np.ndarray, np.ndarray]:
    """``z M`` summed pairwise over the inner index, and its error (``z``: ``(rows, k)``, ``M``: ``(k, c)``).

    Each product is one rounding (``u |fl(z_i M_io)| + η`` where neither factor is
    0, only ``η`` where ``M_io`` is a power of two); the pairwise tree adds
    ``u |node|`` per addition of two non-zero operands; the input's error is
    carried as ``e_z |M|``.
    """
    p = z[:, :, None] * m[None, :, :]                                  # (rows, k, c)
    live = (z[:, :, None] != 0) & (m[None, :, :] != 0)
    # a product with ±2^k is exact unless it leaves the normal range (then only η):
    # the identity blocks of an exact split multiply by 1
    mant = np.frexp(np.abs(m))[0]
    inexact = (mant != 0.5)[None, :, :]
    e = (u * np.abs(p) * inexact + eta) * live
    value, err = _tree(p, e, u)
    if np.any(ez):
        err = err + ez @ np.abs(m).astype(np.float64)
    return value, err


class _Pairwise:
    """Sums arrays pairwise as they come (a binary counter of partial sums), with the running bound."""

    def __init__(self, u: float) -> None:
        self.stack: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.u = u

    def add(self, v: np.ndarray, e: np.ndarray) -> None:
        level = 0
        while self.stack and self.stack[-1][0] == level:
            _, a, ea = self.stack.pop()
            v, e = self._merge(a, ea, v, e)
            level += 1
        self.stack.append((level, v, e))

    def _merge(self, a: np.ndarray, ea: np.ndarray, b: np.ndarray,
               eb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = a + b
        return s, ea + eb + self.u * np.abs(s) * ((a != 0) & (b != 0))

    def total(self) -> tuple[np.ndarray, np.ndarray]:
        _, v, e = self.stack.pop()
        while self.stack:
            _, a, ea = self.stack.pop()
            v, e = self._merge(a, ea, v, e)
        return v, e


def _channel(cm, z: np.ndarray, ez: np.ndarray, u: float, eta: float) -> tuple[np.ndarray, np.ndarray]:
    """``z W_val W_out`` as the head's channel map says, with its error."""
    if cm.matrix is not None:
        value, err = _product_sum(z, ez, cm.matrix, u, eta)
        if not cm.exact:          # M = fl(W_val W_out): its own rounding, |z| |M − W_val W_out|
            w_val, w_out = cm.formed
            k = w_val.shape[1]
            phi = _gamma(k, u) * (np.abs(w_val).astype(np.float64) @ np.abs(w_out).astype(np.float64)) + k * eta
            err = err + np.abs(z).astype(np.float64) @ phi
        return value, err
    w_val, w_out = cm.factors
    inner, e_inner = _product_sum(z, ez, w_val, u, eta)
    return _product_sum(inner, e_inner, w_out, u, eta)


def trace_separable(layer: AttentionWeights, x: np.ndarray, queries: tuple[np.ndarray, ...],
                    dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """The separable path on ``x`` of shape ``(B, *spatial, d_in)``, and its running error bound.

    Returns ``(out, err)``, both ``(B, *out_shape, d_out)``; ``err`` is float64
    (module docstring).
    """
    u, eta = _model(dtype)
    a, b = layer.axis_coefficients()
    B, spatial = x.shape[0], x.shape[1:-1]
    D, H, d_in, d_out = len(spatial), layer.n_heads, layer.d_in, layer.d_out
    keys = [[(float(a[h, i]), float(b[h, i])) for i in range(D)] for h in range(H)]
    tables = {(i, k[i]): None for k in keys for i in range(D)}
    for (i, key) in tables:
        tables[(i, key)] = axis_table(*key, spatial[i], queries[i], dtype, layer.beta)
    lanes = math.prod(spatial[1:]) * d_in
    flat = x.reshape(B, spatial[0], lanes)
    zero = np.zeros((B, spatial[0], lanes))
    m0 = len(queries[0])
    rows = B * m0 * math.prod(spatial[1:])
    zs = {}
    for key in dict.fromkeys(k[0] for k in keys):                      # stage 1: axis 0 on x
        z, ez = _traced_contract(flat, zero, tables[(0, key)], u, eta)
        zs[key] = (z.reshape(rows, d_in), ez.reshape(rows, d_in))
    maps = _maps(layer, rows, dtype)
    ur = u / (1 - u)                   # |fl(a ∘ b) − a ∘ b| <= u |a ∘ b| <= u/(1 − u) |fl(a ∘ b)|
    groups: dict[tuple, _Pairwise] = {}
    for h in range(H):                                                 # stage 2: channel maps
        g = tuple(keys[h][1:])
        groups.setdefault(g, _Pairwise(ur)).add(*_channel(maps[h], *zs[keys[h][0]], ur, eta))
    shape = (B, m0) + spatial[1:] + (d_out,)
    partial = {g: tuple(a.reshape(shape) for a in acc.total()) for g, acc in groups.items()}
    for i in range(1, D):                                              # stage 3: axes 1 … D−1
        merged: dict[tuple, _Pairwise] = {}
        for key, (v, e) in partial.items():
            table = tables[(i, key[0])]
            pre, post = math.prod(v.shape[:i + 1]), math.prod(v.shape[i + 2:])
            y, ey = _traced_contract(v.reshape(pre, v.shape[i + 1], post),
                                     e.reshape(pre, v.shape[i + 1], post), table, u, eta)
            new_shape = v.shape[:i + 1] + (table.rows,) + v.shape[i + 2:]
            merged.setdefault(key[1:], _Pairwise(ur)).add(y.reshape(new_shape), ey.reshape(new_shape))
        partial = {k: acc.total() for k, acc in merged.items()}
    out, err = partial[()]
    width = max(t.width for t in tables.values())
    ops = H * (layer.d_in + layer.d_head + 4) + 6 * D * (width + 2) + 16   # float64 roundings per element
    return _finish(out, err, layer.b_out.astype(dtype), u, ops)


def _maps(layer: AttentionWeights, rows: int, dtype: np.dtype) -> list:
    """The layer's channel maps, each with the factors a formed matrix came from."""
    maps = []
    dh = layer.d_head
    for h, cm in enumerate(layer.channel_maps(rows, dtype)):
        formed = (layer.w_val[h].astype(dtype), layer.w_out[h * dh:(h + 1) * dh].astype(dtype))
        maps.append(_TracedMap(cm.matrix, cm.factors, cm.exact, formed))
    return maps


class _TracedMap:
    __slots__ = ("matrix", "factors", "exact", "formed")

    def __init__(self, matrix, factors, exact, formed) -> None:
        self.matrix, self.factors, self.exact, self.formed = matrix, factors, exact, formed


def _finish(out: np.ndarray, err: np.ndarray, bias: np.ndarray, u: float,
            n_ops: int) -> tuple[np.ndarray, np.ndarray]:
    """Add the bias (one rounding where it is not zero) and make ``err`` a rigorous bound.

    ``err`` was summed in float64 from non-negative terms with at most
    ``n_ops`` roundings per element: each loses at most a relative ``2^-53`` or,
    below the normal range, half a subnormal, which ``(1 + 2^-40)`` and
    ``n_ops`` subnormals cover.
    """
    out = out + bias
    err = err + u / (1 - u) * np.abs(out) * (bias != 0)
    return out, err * _SAFETY + n_ops * 5e-324


def trace_positional(layer: AttentionWeights, x: np.ndarray, spatial: tuple[int, ...],
                     queries: tuple[np.ndarray, ...], axis: tuple[np.ndarray, np.ndarray],
                     dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """The dense positional path on ``x`` of shape ``(B, n, d_in)``, and its running error bound.

    Returns ``(out, err)``, both ``(B, n_queries, d_out)`` (module docstring).
    """
    u, eta = _model(dtype)
    ur = u / (1 - u)
    B, n = x.shape[0], x.shape[1]
    dh, d_out = layer.d_head, layer.d_out
    n_q = math.prod(len(q) for q in queries)
    heads = _Pairwise(ur)
    for h in range(layer.n_heads):
        w_val = layer.w_val[h].astype(dtype)
        flat = x.reshape(B * n, -1)
        val, e_val = _product_sum(flat, np.zeros(flat.shape), w_val, ur, eta)
        v = np.empty((n, B * dh + 1), dtype=dtype)
        v[:, :-1] = val.reshape(B, n, dh).transpose(1, 0, 2).reshape(n, B * dh)
        v[:, -1] = 1.0
        ev = np.zeros((n, B * dh + 1))
        ev[:, :-1] = e_val.reshape(B, n, dh).transpose(1, 0, 2).reshape(n, B * dh)
        w_out = layer.w_out[h * dh:(h + 1) * dh].astype(dtype)
        out_h = np.empty((n_q, B, d_out), dtype=dtype)
        err_h = np.empty((n_q, B, d_out))
        tables = head_tables(layer, spatial, queries, axis, dtype, h)
        for start, coords in query_chunks(queries, max(1, 2**22 // max(n, 1))):
            m = coords.shape[1]
            s = head_weights(layer, spatial, coords, axis, dtype, h, tables, queries)   # (n, m)
            mixed, e_mixed = _key_sum(s, v, ev, u, eta, _spread(dtype))
            o, eo = _product_sum(mixed.reshape(m * B, dh), e_mixed.reshape(m * B, dh), w_out, ur, eta)
            out_h[start:start + m] = o.reshape(m, B, d_out)
            err_h[start:start + m] = eo.reshape(m, B, d_out)
        heads.add(out_h, err_h)
    total, total_err = heads.total()
    ops = layer.n_heads * (layer.d_in + layer.d_head + 3 * n + 12) + 16
    out, err = _finish(total, total_err, layer.b_out.astype(dtype), u, ops)
    return out.transpose(1, 0, 2), err.transpose(1, 0, 2)


def _key_sum(s: np.ndarray, v: np.ndarray, ev: np.ndarray, u: float, eta: float,
             spread: float) -> tuple[np.ndarray, np.ndarray]:
    """``fl(fl(sᵀ v) / fl(sᵀ 1))`` per query, and its error: shapes ``(m, B d_head)``."""
    acc = s.T @ v                                                       # (m, B d_head + 1)
    a_s = np.abs(s).astype(np.float64)
    av = np.abs(v).astype(np.float64)
    j = np.argmax(a_s, axis=0)                                          # the dominant key per query
    cols = np.arange(s.shape[1])
    off = a_s.copy()
    off[j, cols] = 0.0
    w = int((s != 0).sum(axis=0).max())
    top = a_s[j, cols][:, None] * av[j] * (s[j, cols] != 1)[:, None]    # u |s_j v_j| unless s_j = 1
    if math.isinf(_gamma(3 * w + 1, u)) and math.isinf(_gamma(max(w, 1), u)):
        raise _no_bound(s.dtype, w)
    with np.errstate(invalid="ignore"):
        lemma = u * top + spread * (1.0 + _gamma(3 * w + 1, u)) * (off.T @ av)
        standard = _gamma(max(w, 1), u) * (a_s.T @ av)
    lemma = np.where(np.isnan(lemma), np.inf, lemma)
    standard = np.where(np.isnan(standard), np.inf, standard)
    e_acc = np.minimum(lemma, standard) + 3 * w * eta + a_s.T @ ev
    num, den = acc[:, :-1], acc[:, -1:]
    mixed = num / den
    e_num, e_den = e_acc[:, :-1], e_acc[:, -1:]
    # |q − A/B| <= u |a/b| + η + (e_a + |a/b| e_b) / (b − e_b), |a/b| <= (|q| + η) / (1 − u);
    # a division by a computed row sum of exactly 1 is exact (no u |q|, no η)
    inexact = den != 1
    ratio = (np.abs(mixed).astype(np.float64) + eta * inexact) / (1 - u * inexact)
    e_mixed = (u * ratio + eta) * inexact + (e_num + ratio * e_den) / (den.astype(np.float64) - e_den)
    return mixed, e_mixed
