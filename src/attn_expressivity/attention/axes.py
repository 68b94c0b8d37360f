"""Per-axis score tables of separable heads, banded.

A head is *separable* when its score is a sum of per-axis functions of the
offset, ``A_{q,k} = Σ_i f_i(k_i − q_i)`` with ``f_i(t) = a_i t² + b_i t``
(:meth:`attn_expressivity.MultiHeadSelfAttention.axis_coefficients`). Both the
separable path and the dense positional path build their weights from the
per-axis tables of this module: for a query ``q`` along an axis of ``L`` keys,
the row ``exp(β (f(k − q) − max_k' f(k' − q)))`` over the keys ``k < L``.

**Banded.** Factors whose exponent is below :func:`~attn_expressivity.attention.softmax.exp_floor`
(``-79`` in float64) are flushed to zero, so a row is non-zero only where
``β (f(t) − max f) >= floor``. For a concave ``f`` (``a < 0``: a Gaussian bump,
as Lemma 2 builds) that set is an interval around the vertex ``−b / 2a`` of
half-width about ``sqrt(−floor / (β|a|))`` (1.5 keys at ``α = 37``), so an
:class:`AxisTable` stores, per query, the first key of a window of ``w``
consecutive keys and the ``w`` weights there: ``O(m w)`` memory for ``m``
queries instead of ``O(m L)``. Every entry outside the window is one the full
row would flush (the window is checked: its outermost entries must be
flushed unless they sit at the end of the axis, and it is widened until they
are). For ``a = 0`` (or ``β = 0``) the row does not depend on the query and is
stored once (``shared``); for ``a > 0`` (a bowl) the window is the whole axis.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..errors import NonFiniteError
from .softmax import exp_floor

__all__ = ["AxisTable", "axis_scores", "axis_table", "axis_table_blocks", "band_width"]

_OVERFLOW = ("attention scores overflowed the floating-point range; scale the score "
             "weights down and use `beta` for the inverse temperature")


class AxisTable(NamedTuple):
    """One axis' weights for a set of queries, as a band.

    Row ``i`` (query ``queries[i]``) has weight ``values[i, j]`` on key
    ``start[i] + j`` for ``j < w`` and zero on every other key;
    ``0 <= start[i] <= size − w``. With ``shared``, ``values`` and ``start``
    have one row that holds for every query.
    """

    start: np.ndarray        # (m,) or (1,) int64
    values: np.ndarray       # (m, w) or (1, w)
    size: int                # keys along the axis
    shared: bool
    rows: int                # m, the number of queries

    @property
    def width(self) -> int:
        return self.values.shape[1]

    def row(self, i: int) -> tuple[int, np.ndarray]:
        """``(start, weights)`` of row ``i``."""
        j = 0 if self.shared else i
        return int(self.start[j]), self.values[j]

    def dense(self, m: int) -> np.ndarray:
        """The table as an ``(m, size)`` matrix (tests and small problems only)."""
        out = np.zeros((m, self.size), dtype=self.values.dtype)
        for i in range(m):
            s, v = self.row(i)
            out[i, s:s + v.size] = v
        return out


def axis_scores(a: float, b: float, t: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``f(t) = a t² + b t`` in ``dtype``, each entry ``fl(fl(a t²) + fl(b t))`` with ``t²`` exact.

    Raises
    ------
    NonFiniteError
        When an entry overflows.

    Examples
    --------
    >>> axis_scores(-1.0, 2.0, np.arange(-2, 3), np.dtype(np.float64)).tolist()
    [-8.0, -3.0, 0.0, 1.0, 0.0]
    """
    t = np.asarray(t).astype(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        g = dtype.type(a) * (t * t) + dtype.type(b) * t
    if not np.isfinite(g).all():
        raise NonFiniteError(_OVERFLOW)
    return g


def _radius(a: float, b: float, beta: float, floor: float, lo: np.ndarray, hi: np.ndarray,
            slack: float) -> tuple[np.ndarray, np.ndarray]:
    """Windows ``[first, last]`` of offsets ``t`` with ``β (f(t) − max f) >= floor − slack``.

    For ``a < 0`` the level set of the concave quadratic over the integers of
    ``[lo, hi]``, computed in float64 and widened by one key on each side; the
    caller checks the result against the computed scores.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        vertex = -b / (2.0 * a)
        top = np.clip(np.rint(vertex), lo, hi)                      # argmax over the row's offsets
        # f(t) = a (t − v)² + f(v): f(t) >= f(top) − c/β  <=>  (t − v)² <= (top − v)² + c/(β|a|)
        extra = 0.0 if beta == math.inf else (-floor + slack) / (beta * -a)
        reach = np.sqrt((top - vertex) ** 2 + extra)
    reach = np.where(np.isfinite(reach), reach, np.inf)
    first = np.maximum(lo, np.floor(np.maximum(vertex - reach, -2.0**62)))
    last = np.minimum(hi, np.ceil(np.minimum(vertex + reach, 2.0**62)))
    first = np.minimum(first, top)
    last = np.maximum(last, top)
    return first.astype(np.int64), last.astype(np.int64)


def band_width(a: float, b: float, size: int, beta: float, dtype: np.dtype) -> int:
    """The width of :func:`axis_table`'s window for every query of an axis of ``size`` keys.

    Cheap (float64 arithmetic on the two ends of the axis and the vertex);
    used to plan chunks before any table is built.
    """
    if beta == 0.0 or a >= 0.0:
        return size
    q = np.array([0, size - 1, min(max(0, int(np.clip(np.rint(-b / (2 * a)), 0, size - 1))), size - 1)])
    first, last = _radius(a, b, beta, exp_floor(dtype), -q, size - 1 - q, 1.0)
    return int(min(size, (last - first).max() + 3))


def axis_table(a: float, b: float, size: int, queries: np.ndarray, dtype: np.dtype, beta: float,
               *, normalise: bool = True) -> AxisTable:
    """The banded weights of one axis factor ``f(t) = a t² + b t`` for the given queries.

    Row ``q`` is ``E[q, k] = exp(β (f(k − q) − max_k' f(k' − q)))`` over keys
    ``k < size`` (each row's maximum is exactly 1; ``β = ∞`` gives the indicator
    of the argmax set and ``β = 0`` ones), with factors whose exponent is below
    :func:`~attn_expressivity.attention.softmax.exp_floor` flushed to 0. With ``normalise`` the rows are divided by their sums (the
    one-dimensional softmax ``P[q, k]``), and weights below the smallest normal
    number are flushed to zero.

    Parameters
    ----------
    a, b : float
        The factor's coefficients.
    size : int
        Keys along the axis.
    queries : ndarray of int, shape ``(m,)``
        Query positions, ``0 <= q < size``.
    dtype : numpy.dtype
        The computation's dtype (scores, ``exp`` and the division run in it).
    beta : float
        Inverse temperature in ``[0, ∞]``.
    normalise : bool, optional

    Returns
    -------
    AxisTable

    Raises
    ------
    NonFiniteError
        A score inside a window overflows.

    Examples
    --------
    >>> t = axis_table(-37.0, 74.0, 6, np.arange(6), np.dtype(np.float64), 1.0)
    >>> t.width, t.start.tolist()                 # a bump on k = q + 1: keys q, q + 1, q + 2
    (3, [0, 1, 2, 3, 3, 3])
    >>> bool(np.allclose(t.dense(6), np.eye(6, k=1) + np.eye(6, k=0) * (np.arange(6) == 5)[:, None]))
    True
    """
    queries = np.asarray(queries, dtype=np.int64)
    floor = exp_floor(dtype)
    if beta == 0.0 or a == 0.0:
        return _shared_table(a, b, size, dtype, beta, normalise, floor)._replace(rows=queries.size)
    if a > 0.0:
        first = np.zeros_like(queries)
        width = size
    else:
        first_t, last_t = _radius(a, b, beta, floor, -queries, size - 1 - queries, 1.0)
        pad = 0
        while True:                     # widen until every outer entry is flushed (or at an end)
            lo_t = np.maximum(first_t - pad, -queries)
            hi_t = np.minimum(last_t + pad, size - 1 - queries)
            width = int(min(size, (hi_t - lo_t).max() + 1))
            first = np.clip(queries + lo_t, 0, size - width)
            table = _fill(a, b, size, queries, first, width, dtype, beta, floor)
            if width == size or _window_holds(table, first, width, size, beta):
                break
            pad = 2 * pad + 1
        return _finish(table, first, size, dtype, normalise)
    table = _fill(a, b, size, queries, first, width, dtype, beta, floor)
    return _finish(table, first, size, dtype, normalise)


def _fill(a: float, b: float, size: int, queries: np.ndarray, first: np.ndarray, width: int,
          dtype: np.dtype, beta: float, floor: float) -> np.ndarray:
    """Unnormalised weights of the windows ``[first, first + width)``; shape ``(m, width)``."""
    t = first[:, None] + np.arange(width)[None, :] - queries[:, None]   # offsets k − q
    g = axis_scores(a, b, t, dtype)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        g = g - g.max(axis=1, keepdims=True)                         # <= 0, row max 0
        if beta == math.inf:
            return (g == 0).astype(dtype)
        if beta != 1.0:
            g *= dtype.type(beta)
        e = np.exp(np.maximum(g, dtype.type(floor)))
        e[g < floor] = 0.0
    return e


def _window_holds(table: np.ndarray, first: np.ndarray, width: int, size: int, beta: float) -> bool:
    """Whether every window's outer entries are flushed (or sit at the ends of the axis)."""
    left_open = first > 0
    right_open = first + width < size
    return not (np.any(left_open & (table[:, 0] != 0)) or np.any(right_open & (table[:, -1] != 0)))


def _finish(table: np.ndarray, first: np.ndarray, size: int, dtype: np.dtype,
            normalise: bool) -> AxisTable:
    if normalise:
        table /= table.sum(axis=1, keepdims=True)
        table[table < np.finfo(dtype).tiny] = 0.0
    # compact the band to the non-zero keys of each row (the window had a safety margin;
    # every key outside it is flushed, so moving a row's window keeps its weights)
    nz = table != 0
    m, w = table.shape
    if m and nz.any():
        lead = np.argmax(nz, axis=1)
        last = w - 1 - np.argmax(nz[:, ::-1], axis=1)
        width = int((last - lead).max()) + 1
        if width < w:
            start = np.clip(first + lead, 0, size - width)
            cols = (start - first)[:, None] + np.arange(width)[None, :]       # within [0, w)
            table = np.take_along_axis(table, np.clip(cols, 0, w - 1), axis=1) * ((cols >= 0) & (cols < w))
            first = start
    return AxisTable(first.astype(np.int64), np.ascontiguousarray(table, dtype=dtype), size, False,
                     table.shape[0])


def _shared_table(a: float, b: float, size: int, dtype: np.dtype, beta: float, normalise: bool,
                  floor: float) -> AxisTable:
    """``a = 0`` or ``β = 0``: ``f(k − q) − max = b (k − k*)`` does not depend on ``q``."""
    if beta == 0.0 or b == 0.0:
        row = np.ones((1, size), dtype=dtype)
    else:
        g = axis_scores(0.0, b, np.arange(size), dtype)[None, :]
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            g = g - g.max()
            if beta == math.inf:
                row = (g == 0).astype(dtype)
            else:
                if beta != 1.0:
                    g *= dtype.type(beta)
                row = np.exp(np.maximum(g, dtype.type(floor)))
                row[g < floor] = 0.0
    keep = np.flatnonzero(row[0])
    lo, hi = int(keep[0]), int(keep[-1]) + 1
    done = _finish(np.ascontiguousarray(row[:, lo:hi]), np.array([lo]), size, dtype, normalise)
    return done._replace(shared=True)


def axis_table_blocks(a: float, b: float, size: int, queries: np.ndarray, dtype: np.dtype, beta: float,
                      *, normalise: bool = True, budget: int = 2**26):
    """:func:`axis_table` in blocks of rows: yields ``(lo, hi, table)`` for the queries ``lo:hi``.

    Each block holds the rows ``lo:hi`` of ``axis_table(a, b, size, queries, ...)``
    exactly, with the same starts and width: the windows, their widening and
    the compaction are planned over every query first (``O(m)`` integers), and
    only one block of ``(rows, width)`` weights, about ``budget / 8`` entries
    with its temporaries, is held at a time. A shared table (``a = 0`` or
    ``β = 0``) is one block of one row.
    """
    queries = np.asarray(queries, dtype=np.int64)
    m = queries.size
    if beta == 0.0 or a == 0.0 or not m:
        yield 0, m, axis_table(a, b, size, queries, dtype, beta, normalise=normalise)
        return
    floor = exp_floor(dtype)

    def blocks(width: int):
        step = max(1, budget // (16 * 8 * max(width, 1)))
        return [(lo, min(m, lo + step)) for lo in range(0, m, step)]

    if a > 0.0:
        first, width = np.zeros_like(queries), size
    else:
        first_t, last_t = _radius(a, b, beta, floor, -queries, size - 1 - queries, 1.0)
        pad = 0
        while True:                     # axis_table's widening, checked block by block
            lo_t = np.maximum(first_t - pad, -queries)
            hi_t = np.minimum(last_t + pad, size - 1 - queries)
            width = int(min(size, (hi_t - lo_t).max() + 1))
            first = np.clip(queries + lo_t, 0, size - width)
            if width == size or all(
                    _window_holds(_fill(a, b, size, queries[lo:hi], first[lo:hi], width, dtype, beta, floor),
                                  first[lo:hi], width, size, beta) for lo, hi in blocks(width)):
                break
            pad = 2 * pad + 1

    def filled(lo: int, hi: int) -> np.ndarray:
        table = _fill(a, b, size, queries[lo:hi], first[lo:hi], width, dtype, beta, floor)
        if normalise:
            table /= table.sum(axis=1, keepdims=True)
            table[table < np.finfo(dtype).tiny] = 0.0
        return table

    # the compaction of _finish, planned over every row
    lead = np.zeros(m, dtype=np.int64)
    last = np.full(m, width - 1, dtype=np.int64)
    any_nz = False
    for lo, hi in blocks(width):
        nz = filled(lo, hi) != 0
        lead[lo:hi] = np.argmax(nz, axis=1)
        last[lo:hi] = width - 1 - np.argmax(nz[:, ::-1], axis=1)
        any_nz = any_nz or bool(nz.any())
    kept = int((last - lead).max()) + 1 if any_nz else width
    start = np.clip(first + lead, 0, size - kept) if kept < width else first
    for lo, hi in blocks(width):
        table = filled(lo, hi)
        if kept < width:
            cols = (start[lo:hi] - first[lo:hi])[:, None] + np.arange(kept)[None, :]
            table = np.take_along_axis(table, np.clip(cols, 0, width - 1), axis=1) * ((cols >= 0) & (cols < width))
        yield lo, hi, AxisTable(start[lo:hi].astype(np.int64), np.ascontiguousarray(table, dtype=dtype), size,
                                False, hi - lo)
