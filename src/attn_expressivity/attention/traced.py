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

* **Exact local errors.** Every addition of the path that is not inside a
  matrix product computes its own rounding error exactly (Knuth's TwoSum),
  every explicit product too (Dekker's TwoProduct in float64 within its range,
  the float64 product for float32 and float16 factors), and every division
  its exact remainder: ``_add_error``, ``_mul_error``, ``_div_error``.
  Where no error-free transformation applies (an overflow, a product near
  the ends of the range) the model's ``u |result| + η`` is used instead.
* **Signed accumulation.** Errors of operations whose result reaches the
  output through sums and fixed linear maps only (the channel products and
  their pairwise sums, the sums over heads and groups, the contractions after
  them, a division by a row sum of exactly 1, the bias) reach it with a known
  coefficient, so their *signed* sum is carried: each array of the path
  carries a triple ``(c, a, e)``, ``c`` the signed sum of those errors carried
  through the same linear maps in float64, ``a`` the same with absolute
  values, ``e`` a bound on the rest; ``|exact − computed| <= |c| + γ_{2N} a + e``
  (``_collapse``; ``γ_{2N}`` at float64's unit roundoff covers the
  rounding of ``c`` itself). Cancellation between the errors is then counted,
  not bounded away.
* **Matrix products in any order** (the contractions with the banded
  tables, the dense path's sum of the other keys): with ``j`` the row's largest
  weight, an inner product ``Σ_k p_k v_k`` computed in any order, with or
  without fused multiply-adds, errs by at most
  ``u |p_j v_j| [p_j ≠ 1] + (1 + γ_{3w+1}) Σ_{k≠j} p_k |v_k| + w η``: every
  addition on the path of term ``j`` errs by at most the magnitude of its
  other operand (the nearest float to ``a + b`` is no further from it than the
  float ``a``), every other operation by ``u`` times its result, and the
  product ``p_j v_j`` is exact when ``p_j = 1``. The standard
  ``γ_w Σ_k p_k |v_k| + w η`` (Higham, (3.5)) holds too; the smaller of the two is
  used, element by element. ``w`` is the number of non-zero weights of the row.
  The dense path forms ``fl(ŝ_j v_j) + fl(Σ_{k≠j} ŝ_k v_k)`` so that only the
  small terms go through the matrix product.
* **Division** ``fl(a / b)`` of a numerator and a row sum that carry errors
  ``E_a``, ``E_b``: ``|a/b − q| + (E_a + |a/b| E_b) / (b − E_b)``.
* **Propagation**: an input error bound ``e`` passes through a contraction as
  ``|P̂| e`` and through a channel map as ``e |M|``.

The bound itself is computed in float64 from non-negative terms, each
rounded at most ``N`` times, and raised by :func:`safety_factor` ``(N)``
``= fl(1 + 2γ_{N+2})`` plus ``N`` units of float64's smallest subnormal, which
covers that rounding and the raising's own, however large ``N`` (the inner
lengths are not limited). The traced paths
form their channel products (``rows × k × c`` entries, with a dozen
temporaries) in blocks within the layer's ``memory_budget`` and the dense
path's weights in query chunks within it, but keep the error triples of every
partial sum, ``O(n)`` arrays per head group: they are meant for the instances a
sharp verdict is wanted on (:func:`attn_expressivity.verify` chooses them
below a size threshold).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterValueError
from .axes import AxisTable, axis_table
from .bands import contract
from .positional import head_tables, head_weights, query_chunks
from .weights import AttentionWeights

__all__ = ["error_tables", "safety_factor", "trace_positional", "trace_separable"]


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
    lemma, standard = error_values(table.values, w, u, spread)
    return table._replace(values=lemma), table._replace(values=standard), w


def error_values(values: np.ndarray, w: int, u: float, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The arrays of :func:`error_tables` for a table's rows ``values``, with ``w`` given.

    ``w`` is the largest number of non-zero weights in a row (of these rows, or
    of a whole table of which they are a block). Raises ParameterValueError
    where neither table is finite (``w u >= 1/2``).
    """
    vals = np.abs(values.astype(np.float64))
    j = np.argmax(vals, axis=1)
    rows = np.arange(vals.shape[0])
    with np.errstate(invalid="ignore"):
        lemma = vals * (spread * (1.0 + _gamma(3 * w + 1, u)))
        standard = vals * _gamma(max(w, 1), u)
    top = vals[rows, j]
    lemma[rows, j] = np.where(values[rows, j] == 1, 0.0, u * top)
    lemma[vals == 0] = 0.0
    standard[vals == 0] = 0.0
    if not (np.isfinite(lemma).all() or np.isfinite(standard).all()):
        raise _no_bound(values.dtype, w)
    return lemma, standard


def _traced_contract(v: np.ndarray, err: tuple, table: AxisTable,
                     u: float, eta: float) -> tuple[np.ndarray, tuple]:
    """``(fl(P̂ v), triple)`` for ``v`` and the arrays of ``err`` of shape ``(pre, L, post)``.

    The contraction's own rounding (a bound: the matrix product runs in any
    order) joins the bound part; the incoming triple ``(c, a, e)`` is carried
    through the exact linear map: ``c`` as ``P̂ c`` computed in float64 (its
    rounding, ``γ_w |P̂| |c|`` and underflows, joins the bound part), ``a`` and
    ``e`` as ``|P̂| a`` and ``|P̂| e``.
    """
    out = contract(v, table)
    lemma, standard, w = error_tables(table, u, _spread(v.dtype))
    av = np.abs(v).astype(np.float64)
    own = np.minimum(contract(av, lemma), contract(av, standard)) + 3 * w * eta
    c, a, e = err
    if not (np.any(c) or np.any(a) or np.any(e)):
        return out, (np.zeros(own.shape), np.zeros(own.shape), own)
    absolute = table._replace(values=np.abs(table.values.astype(np.float64)))
    c2 = contract(c, table._replace(values=table.values.astype(np.float64)))
    e2 = own + contract(e, absolute) + _gamma64(max(w, 1)) * contract(np.abs(c), absolute) + 3 * w * 5e-324
    return out, (c2, contract(a, absolute), e2)


def _add_error(a: np.ndarray, b: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(t, f)``: ``a + b − s = t`` exactly for ``s = fl(a + b)``, as float64; ``f = ∞`` where ``s`` overflowed.

    Knuth's TwoSum: with round to nearest in any binary format, ``z = s − a``
    and ``t = (a − (s − z)) + (b − z)`` are computed without error and
    ``a + b = s + t`` exactly, whenever ``a + b`` does not overflow (no
    underflow can spoil it: a sum or difference that is subnormal is exact).
    numpy's float16 operations round the float32 result, which is correctly
    rounded because ``24 >= 2 · 11 + 2`` (double rounding is then innocuous),
    so the same holds there.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        z = s - a
        t = ((a - (s - z)) + (b - z)).astype(np.float64)
    ok = np.isfinite(t) & np.isfinite(s)
    return np.where(ok, t, 0.0), np.where(ok, 0.0, np.inf)


#: float64 magnitudes within which Dekker's TwoProduct is exact (see :func:`_mul_error`).
_DEKKER = (2.0**-900, 2.0**995)


def _mul_error(a: np.ndarray, b: np.ndarray, p: np.ndarray, u: float,
               eta: float) -> tuple[np.ndarray, np.ndarray]:
    """``(q, f)`` with ``|a·b − p − q| <= f`` for ``p = fl(a·b)``: ``q`` the exact error where it can be computed.

    * float32 and float16: ``a·b`` is exact in float64 (at most 48 significant
      bits, exponents far inside float64's range) and ``p`` is its rounding, so
      ``a·b − p`` is computed exactly in float64 (``p`` within a factor 2 of
      ``a·b``, Sterbenz; or ``p`` subnormal or 0, when the difference has at most
      48 significant bits too).
    * float64: Dekker's TwoProduct with Veltkamp's splitting by ``2^27 + 1``
      gives ``a·b = p + q`` exactly when the splitting does not overflow
      (``|a|, |b| <= 2^995``, ``|p| <= 2^995``) and ``e_a + e_b >= e_min + p − 1``
      for the exponents of the last bits (Boldo, *Pitfalls of a full
      floating-point proof*, 2006), which ``|p| >= 2^-900`` implies. Elsewhere
      ``q = 0`` and ``f`` is the model's ``u |p| + η`` (``η`` alone where ``p = 0``
      after an underflow); a product with 0 is exact.
    """
    if p.dtype != np.float64:
        with np.errstate(over="ignore", invalid="ignore"):
            e = a.astype(np.float64) * b.astype(np.float64) - p.astype(np.float64)
        ok = np.isfinite(e) & np.isfinite(p)
        return np.where(ok, e, 0.0), np.where(ok, 0.0, np.inf)
    q, safe = _dekker(a, b, p)
    zero = (a == 0) | (b == 0)
    exact = safe | zero
    if exact.all():
        return np.where(zero, 0.0, q), np.zeros(p.shape)
    model = np.where(np.isfinite(p), u * np.abs(p) + eta, np.inf)
    return np.where(safe & ~zero, q, 0.0), np.where(exact, 0.0, model)


def _dekker(a: np.ndarray, b: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(q, safe)``: float64 ``a·b = p + q`` exactly where ``safe`` (:func:`_mul_error`)."""
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        ca = 134217729.0 * a                                           # 2^27 + 1
        a_hi = ca - (ca - a)
        a_lo = a - a_hi
        cb = 134217729.0 * b
        b_hi = cb - (cb - b)
        b_lo = b - b_hi
        q = a_lo * b_lo - (((p - a_hi * b_hi) - a_lo * b_hi) - a_hi * b_lo)
    lo, hi = _DEKKER
    mag = np.abs(p)
    safe = (np.abs(a) <= hi) & (np.abs(b) <= hi) & (mag <= hi) & (mag >= lo) & np.isfinite(q)
    return q, np.broadcast_to(safe, p.shape)


def _gamma64(n: int) -> float:
    return _gamma(n, 2.0**-53)


def safety_factor(n_ops: int) -> float:
    """``fl(1 + 2 γ_{n_ops+2})`` at float64's ``u``: raises a float64 value ``ŷ`` above the exact ``y``.

    When ``ŷ`` was computed from non-negative terms with at most ``n_ops``
    roundings on any path (normal range), ``ŷ >= (1 − u)^{n_ops} y``. The factor
    is at least ``1 + γ_{n_ops+2}`` (``2γ >= 6u`` survives the rounding of
    ``1 + 2γ``) and the product ``fl(ŷ · factor)`` loses one more ``(1 − u)``, so
    ``fl(ŷ · factor) >= y (1 − u)^{n_ops+1} / (1 − (n_ops + 2) u) >= y``.
    Underflows are covered apart (one subnormal per rounding).

    Examples
    --------
    >>> safety_factor(10) > 1 + 12 * 2.0**-53, safety_factor(10**6) > 1 + 10**6 * 2.0**-53
    (True, True)
    """
    return 1.0 + 2.0 * _gamma64(int(n_ops) + 2)


def _local(t: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The error triple of one operation: exact signed error ``t``, its size, and the bound ``f`` of the rest."""
    return t, np.abs(t), f


def _plus(x: tuple, y: tuple) -> tuple:
    return x[0] + y[0], x[1] + y[1], x[2] + y[2]


def _collapse(err: tuple, n_ops: int) -> np.ndarray:
    """``|c| + γ_{2 n_ops}(2^-53) a + e``: a bound on the error an error triple stands for.

    An error triple ``(c, a, e)`` stands for ``exact − computed = C + R`` with
    ``C`` the sum of the exact local errors of the operations whose errors
    reach the value with coefficient 1 (sums, and the products summed by
    them), ``|R| <= e`` the rest; ``c`` is ``C`` summed in float64 (at most
    ``2 n_ops`` additions per element), so ``|C − c| <= γ_{2 n_ops} a`` with
    ``a`` the sum of the local errors' sizes.
    """
    c, a, e = err
    return np.abs(c) + _gamma64(2 * n_ops) * a + e


def _tree(v: np.ndarray, err: tuple) -> tuple[np.ndarray, tuple]:
    """Pairwise sum of ``v`` along axis 1; each addition's exact error joins the triple."""
    while v.shape[1] > 1:
        k = v.shape[1] // 2
        a, b = v[:, :k], v[:, k:2 * k]
        s = a + b                                                      # one rounding each
        joined = _plus(_plus(tuple(x[:, :k] for x in err), tuple(x[:, k:2 * k] for x in err)),
                       _local(*_add_error(a, b, s)))
        if v.shape[1] % 2:
            s = np.concatenate([s, v[:, -1:]], axis=1)
            joined = tuple(np.concatenate([j, x[:, -1:]], axis=1) for j, x in zip(joined, err))
        v, err = s, joined
    return v[:, 0], tuple(x[:, 0] for x in err)


#: Arrays of the products' shape ``(rows, k, c)`` (8 bytes an entry) that :func:`_product_block`
#: holds at once, at most: the products, their exact errors and the temporaries of Dekker's
#: TwoProduct, the triples and TwoSum's temporaries of the first level of the pairwise sum.
_PRODUCT_SCRATCH = 16


def _product_sum(z: np.ndarray, ez, m: np.ndarray, u: float, eta: float,
                 budget: int) -> tuple[np.ndarray, tuple]:
    """:func:`_product_block` on blocks of rows and columns whose scratch fits ``budget`` bytes.

    Every output element is summed over the same inner index in the same order
    whatever the blocks, so the value and its error triple are those of one
    block; only the memory changes (``_PRODUCT_SCRATCH`` arrays of
    ``rows × k × c`` entries would be held at once).
    """
    rows, k = z.shape
    c = m.shape[1]
    per_entry = 8 * _PRODUCT_SCRATCH * max(k, 1)
    cols = max(1, min(c, budget // per_entry))
    step = max(1, budget // (per_entry * cols))
    if step >= rows and cols >= c:
        return _product_block(z, ez, m, u, eta)
    value = np.empty((rows, c), dtype=np.result_type(z, m))
    out = tuple(np.empty((rows, c)) for _ in range(3))
    for r0 in range(0, rows, step):
        sl = slice(r0, r0 + step)
        ez_rows = tuple(x[sl] for x in ez) if isinstance(ez, tuple) else ez[sl]
        for c0 in range(0, c, cols):
            cl = slice(c0, c0 + cols)
            v, triple = _product_block(z[sl], ez_rows, m[:, cl], u, eta)
            value[sl, cl] = v
            for part, piece in zip(out, triple):
                part[sl, cl] = piece
    return value, out


def _product_block(z: np.ndarray, ez, m: np.ndarray, u: float,
                   eta: float) -> tuple[np.ndarray, tuple]:
    """``z M`` summed pairwise over the inner index, and its error triple (``z``: ``(rows, k)``, ``M``: ``(k, c)``).

    Each product's rounding error (:func:`_mul_error`: exact where an
    error-free transformation applies, ``0`` for a product with 0 or, inside
    the range, with a power of two such as the identity blocks of an exact
    split) and each addition's reach the sum with coefficient 1, so they join
    its signed part; the input's error ``e_z`` (a bound) is carried as ``e_z |M|``.
    """
    zb, mb = z[:, :, None], m[None, :, :]                              # split once, broadcast after
    p = zb * mb                                                        # (rows, k, c)
    value, (c, a, e) = _tree(p, _local(*_mul_error(zb, mb, p, u, eta)))
    am = np.abs(m).astype(np.float64)
    if isinstance(ez, tuple):          # a triple: its signed part through M, computed in float64
        cz, az, ez = ez
        c = c + cz @ m.astype(np.float64)
        a = a + az @ am
        e = e + _gamma64(m.shape[0]) * (np.abs(cz) @ am) + m.shape[0] * 5e-324
    if np.any(ez):
        e = e + ez @ am
    return value, (c, a, e)


class _Pairwise:
    """Sums arrays pairwise as they come (a binary counter of partial sums), with their error triples."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, np.ndarray, tuple]] = []

    def add(self, v: np.ndarray, err: tuple) -> None:
        level = 0
        while self.stack and self.stack[-1][0] == level:
            _, a, ea = self.stack.pop()
            v, err = self._merge(a, ea, v, err)
            level += 1
        self.stack.append((level, v, err))

    @staticmethod
    def _merge(a: np.ndarray, ea: tuple, b: np.ndarray, eb: tuple) -> tuple[np.ndarray, tuple]:
        s = a + b
        return s, _plus(_plus(ea, eb), _local(*_add_error(a, b, s)))

    def total(self) -> tuple[np.ndarray, tuple]:
        _, v, e = self.stack.pop()
        while self.stack:
            _, a, ea = self.stack.pop()
            v, e = self._merge(a, ea, v, e)
        return v, e


def _channel(cm, z: np.ndarray, ez: np.ndarray, u: float, eta: float,
             n_ops: int, budget: int) -> tuple[np.ndarray, tuple]:
    """``z W_val W_out`` as the head's channel map says, with its error triple."""
    if cm.matrix is not None:
        value, (c, a, e) = _product_sum(z, ez, cm.matrix, u, eta, budget)
        if not cm.exact:          # M = fl(W_val W_out): its own rounding, |z| |M − W_val W_out|
            w_val, w_out = cm.formed
            k = w_val.shape[1]
            phi = _gamma(k, u) * (np.abs(w_val).astype(np.float64) @ np.abs(w_out).astype(np.float64)) + k * eta
            e = e + np.abs(z).astype(np.float64) @ phi
        return value, (c, a, e)
    w_val, w_out = cm.factors
    inner, e_inner = _product_sum(z, ez, w_val, u, eta, budget)
    return _product_sum(inner, _collapse(e_inner, n_ops), w_out, u, eta, budget)


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
    width = max(t.width for t in tables.values())
    ops = H * (layer.d_in + layer.d_head + 4) + 6 * D * (width + 2) + 16   # float64 roundings per element
    zs = {}
    for key in dict.fromkeys(k[0] for k in keys):                      # stage 1: axis 0 on x
        z, ez = _traced_contract(flat, (zero, zero, zero), tables[(0, key)], u, eta)
        zs[key] = (z.reshape(rows, d_in), _collapse(ez, ops).reshape(rows, d_in))
    maps = _maps(layer, rows, dtype)
    ur = u / (1 - u)                   # |fl(a ∘ b) − a ∘ b| <= u |a ∘ b| <= u/(1 − u) |fl(a ∘ b)|
    groups: dict[tuple, _Pairwise] = {}
    for h in range(H):                                                 # stage 2: channel maps
        g = tuple(keys[h][1:])
        groups.setdefault(g, _Pairwise()).add(*_channel(maps[h], *zs[keys[h][0]], ur, eta, ops,
                                                        layer.memory_budget))
    shape = (B, m0) + spatial[1:] + (d_out,)
    partial = {}
    for g, acc in groups.items():
        v, err = acc.total()
        partial[g] = (v.reshape(shape), tuple(x.reshape(shape) for x in err))
    for i in range(1, D):                                              # stage 3: axes 1 … D−1
        merged: dict[tuple, _Pairwise] = {}
        for key, (v, err) in partial.items():
            table = tables[(i, key[0])]
            pre, post = math.prod(v.shape[:i + 1]), math.prod(v.shape[i + 2:])
            y, ey = _traced_contract(v.reshape(pre, v.shape[i + 1], post),
                                     tuple(x.reshape(pre, v.shape[i + 1], post) for x in err), table, u, eta)
            new_shape = v.shape[:i + 1] + (table.rows,) + v.shape[i + 2:]
            merged.setdefault(key[1:], _Pairwise()).add(y.reshape(new_shape),
                                                        tuple(x.reshape(new_shape) for x in ey))
        partial = {k: acc.total() for k, acc in merged.items()}
    out, err = partial[()]
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


def _finish(out: np.ndarray, err: tuple, bias: np.ndarray, u: float,
            n_ops: int) -> tuple[np.ndarray, np.ndarray]:
    """Add the bias (its exact rounding error joins the triple) and make the error a rigorous bound.

    The bound part and the sizes were summed in float64 from non-negative
    terms with at most ``n_ops`` roundings per element: each loses at most a
    relative ``2^-53`` or, below the normal range, half a subnormal, which
    :func:`safety_factor` and ``n_ops`` subnormals cover (the signed part's own
    rounding is :func:`_collapse`'s ``γ`` term).
    """
    total = out + bias
    err = _plus(err, _local(*_add_error(out, np.broadcast_to(bias, out.shape), total)))
    return total, _collapse(err, n_ops) * safety_factor(n_ops) + n_ops * 5e-324


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
    heads = _Pairwise()
    ops = layer.n_heads * (layer.d_in + layer.d_head + 3 * n + 12) + 16  # float64 roundings per element
    for h in range(layer.n_heads):
        w_val = layer.w_val[h].astype(dtype)
        flat = x.reshape(B * n, -1)
        val, e_val = _product_sum(flat, np.zeros(flat.shape), w_val, ur, eta, layer.memory_budget)
        e_val = _collapse(e_val, ops)
        v = np.empty((n, B * dh + 1), dtype=dtype)
        v[:, :-1] = val.reshape(B, n, dh).transpose(1, 0, 2).reshape(n, B * dh)
        v[:, -1] = 1.0
        ev = np.zeros((n, B * dh + 1))
        ev[:, :-1] = e_val.reshape(B, n, dh).transpose(1, 0, 2).reshape(n, B * dh)
        w_out = layer.w_out[h * dh:(h + 1) * dh].astype(dtype)
        out_h = np.empty((n_q, B, d_out), dtype=dtype)
        err_h = tuple(np.empty((n_q, B, d_out)) for _ in range(3))
        tables = head_tables(layer, spatial, queries, axis, dtype, h)
        # a chunk's weights s, |s|, the off-target copy and their temporaries: about 8 arrays of
        # n × m float64 numbers within the budget
        for start, coords in query_chunks(queries, max(1, layer.memory_budget // (64 * max(n, 1)))):
            m = coords.shape[1]
            s = head_weights(layer, spatial, coords, axis, dtype, h, tables, queries)   # (n, m)
            mixed, e_mixed = _key_sum(s, v, ev, u, eta, ops)
            o, eo = _product_sum(mixed.reshape(m * B, dh), tuple(x.reshape(m * B, dh) for x in e_mixed),
                                 w_out, ur, eta, layer.memory_budget)
            out_h[start:start + m] = o.reshape(m, B, d_out)
            for part, piece in zip(err_h, eo):
                part[start:start + m] = piece.reshape(m, B, d_out)
        heads.add(out_h, err_h)
    total, total_err = heads.total()
    out, err = _finish(total, total_err, layer.b_out.astype(dtype), u, ops)
    return out.transpose(1, 0, 2), err.transpose(1, 0, 2)


def _key_sum(s: np.ndarray, v: np.ndarray, ev: np.ndarray, u: float,
             eta: float, n_ops: int) -> tuple[np.ndarray, tuple]:
    """``fl(fl(sᵀ v) / fl(sᵀ 1))`` per query, and its error: shapes ``(m, B d_head)``.

    The sum over keys is computed as ``fl(fl(s_j v_j) + fl(Σ_{k≠j} s_k v_k))``
    with ``j`` the query's largest weight: the rest by a matrix product in any
    order (``γ_{w−1} Σ_{k≠j} |s_k v_k| + 3 (w − 1) η``, Higham (3.5)), the
    dominant product and the last addition with their exact errors
    (:func:`_mul_error`, :func:`_add_error`).
    """
    a_s = np.abs(s).astype(np.float64)
    av = np.abs(v).astype(np.float64)
    j = np.argmax(a_s, axis=0)                                          # the dominant key per query
    cols = np.arange(s.shape[1])
    s_top = s[j, cols][:, None]
    off = s.copy()
    off[j, cols] = 0
    w = int((off != 0).sum(axis=0).max()) if off.size else 0
    g = _gamma(max(w, 1), u)
    if math.isinf(g):
        raise _no_bound(s.dtype, w + 1)
    rest = off.T @ v                                                    # (m, B d_head + 1)
    top = s_top * v[j]
    acc = top + rest
    e_rest = g * (np.abs(off).astype(np.float64).T @ av) + 3 * w * eta
    q, f_top = _mul_error(np.broadcast_to(s_top, top.shape), v[j], top, u / (1 - u), eta)
    t, f_add = _add_error(top, rest, acc)
    c_acc, a_acc = q + t, np.abs(q) + np.abs(t)                    # exact: q, t; their sum: one addition
    e_acc = f_top + f_add + e_rest + a_s.T @ ev
    num, den = acc[:, :-1], acc[:, -1:]
    mixed = num / den
    e_num = _collapse((c_acc[:, :-1], a_acc[:, :-1], e_acc[:, :-1]), n_ops)
    e_den = _collapse((c_acc[:, -1:], a_acc[:, -1:], e_acc[:, -1:]), n_ops)
    # |A/B − q| <= |a/b − q| + (E_a + |a/b| E_b) / (b − E_b), |a/b| <= |q| + |a/b − q|;
    # |a/b − q| is the division's own error (_div_error: exact where it can be computed)
    local = _div_error(num, np.broadcast_to(den, num.shape), mixed, u, eta)
    ratio = np.abs(mixed).astype(np.float64) + local
    bound = local + (e_num + ratio * e_den) / (den.astype(np.float64) - e_den)
    # a row sum of exactly 1: q = a, and A/B − a = E_a − a E_b − (E_a − a E_b) E_b / (1 + E_b)
    # with E = C + R for numerator and row sum: the signed parts give C_a − a C_b (a float64
    # product and a subtraction more, within the triple's budget), the rest is bounded
    one = np.broadcast_to(den == 1, num.shape)
    a_num = np.abs(num).astype(np.float64)
    signed = c_acc[:, :-1] - num.astype(np.float64) * c_acc[:, -1:]
    sizes = a_acc[:, :-1] + a_num * a_acc[:, -1:]
    rest_one = e_acc[:, :-1] + a_num * e_acc[:, -1:] + (e_num + a_num * e_den) * e_den / (1 - e_den)
    zero = np.zeros(num.shape)
    return mixed, (np.where(one, signed, zero), np.where(one, sizes, zero), np.where(one, rest_one, bound))


def _div_error(a: np.ndarray, b: np.ndarray, q: np.ndarray, u: float, eta: float) -> np.ndarray:
    """A bound on ``|a/b − q|`` for ``q = fl(a/b)``, ``b > 0``: ``|r| / b`` with the exact remainder ``r``.

    ``r = a − q b`` is a floating-point number when no underflow occurs
    (Higham, §2.3 / Bohlender et al.), and computed exactly: in float32 and
    float16 as ``a − q·b`` in float64 (``q·b`` has at most 48 significant bits
    and ``r`` lies between the last bits of ``a`` and of ``q·b``); in float64 as
    ``(a − p) − e`` with ``q·b = p + e`` from Dekker's TwoProduct (``a − p`` is
    exact by Sterbenz's lemma, ``p`` within a factor 2 of ``a``). ``|r| / b`` is
    then rounded upwards (``(1 + 2^-51)``). Where the conditions are not met (a
    quotient outside ``[2^-900, 2^900]`` in magnitude, or ``a = 0``), the model's
    ``u |q|/(1 − u) + η`` (0 where ``b = 1`` or ``a = 0``: those quotients are exact).
    """
    b64 = b.astype(np.float64)
    model = np.where((b == 1) | (a == 0), 0.0, u / (1 - u) * np.abs(q).astype(np.float64) + eta)
    if q.dtype != np.float64:
        r = a.astype(np.float64) - q.astype(np.float64) * b64
        mag = np.abs(q).astype(np.float64)
        tiny = float(np.finfo(q.dtype).tiny) * 2.0**24
        safe = (mag >= tiny) & np.isfinite(r)
    else:
        with np.errstate(over="ignore", invalid="ignore", under="ignore"):
            p = q * b
            e, safe = _dekker(q, b, p)
            r = (a - p) - e
        safe = safe & (np.abs(q) >= 2.0**-900) & (np.abs(q) <= 2.0**900)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        exact = np.abs(r) / b64 * (1 + 2.0**-51)
    return np.where(safe & np.isfinite(exact), exact, model)
