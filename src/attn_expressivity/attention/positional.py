"""The dense positional path: every query-key weight, built from per-axis ``exp`` tables.

For a layer without content terms whose scores are sums of per-axis functions
(:mod:`attn_expressivity.attention.axes`), the weight of query ``q`` and key
``k`` is ``Π_i E_i[q_i, k_i]`` with ``E_i = exp(β T_i)`` and
``T_i = f_i − rowmax f_i <= 0``: in exact arithmetic ``exp(β(A_{q,k} − c_q))``
with ``c_q`` the row maximum of the scores (a per-query constant, which softmax
ignores), so the target's weight is exactly ``1``. Every one of the
``n_queries × n`` weights is formed (one broadcast product per chunk of
queries, the ``O(n²)`` part) while ``exp`` runs on the per-axis tables of the
chunk's query coordinates only (``O(m Σ_i L_i)`` memory, so a long signal
never needs an ``L × L`` table). The weights are not normalised in place: the
row sum comes out of the same matrix product as the weighted values (a column
of ones appended to them) and the ``(chunk, d_head)`` result is divided by it.
"""

from __future__ import annotations

import math

import numpy as np

from .._threads import map_workers, worker_count
from .axes import AxisTable, axis_table, band_width
from .weights import AttentionWeights

__all__ = ["attend_positional", "dense_rows", "head_tables", "head_weights", "query_chunks"]


def dense_rows(table: AxisTable, rows: np.ndarray | None = None) -> np.ndarray:
    """Rows of a banded table (all, or those indexed by ``rows``) as a dense ``(r, size)`` array."""
    n = table.rows if rows is None else len(rows)
    out = np.zeros((n, table.size), dtype=table.values.dtype)
    if table.shared:
        s, v = table.row(0)
        out[:, s:s + v.size] = v
        return out
    start = table.start if rows is None else table.start[rows]
    vals = table.values if rows is None else table.values[rows]
    cols = start[:, None] + np.arange(table.width)[None, :]
    out[np.arange(n)[:, None], cols] = vals
    return out


def query_chunks(queries: tuple[np.ndarray, ...], step: int):
    """Yield ``(start, coords)``: chunks of the raster-ordered query product set.

    ``coords`` is ``(D, m)``, the per-axis positions of the ``m <= step`` queries.
    """
    shape = tuple(len(q) for q in queries)
    total = math.prod(shape)
    for start in range(0, total, step):
        idx = np.unravel_index(np.arange(start, min(total, start + step)), shape)
        yield start, np.stack([q[i] for q, i in zip(queries, idx)])


def attend_positional(layer: AttentionWeights, x: np.ndarray, spatial: tuple[int, ...],
                      queries: tuple[np.ndarray, ...], axis: tuple[np.ndarray, np.ndarray],
                      dtype: np.dtype) -> np.ndarray:
    """``x`` of shape ``(B, n, d_in)``; returns ``(B, n_queries, d_out)`` (module docstring).

    Heads run on up to :func:`~attn_expressivity._threads.worker_count`
    threads; each has its own scratch and accumulator within its share of the
    memory budget: a quarter for the head's banded tables (rebuilt per chunk
    when they do not fit), the rest for a chunk's weights and one temporary.
    """
    H, n = layer.n_heads, x.shape[1]
    n_q = math.prod(len(q) for q in queries)
    workers = max(1, min(H, worker_count()))
    share = layer.memory_budget // workers                      # each worker's part of the budget
    step = max(1, min(n_q, (3 * share // 4) // (2 * 8 * n)))     # the weights and one temporary

    def run(heads: range) -> np.ndarray:
        out = np.zeros((n_q, x.shape[0], layer.d_out), dtype=dtype)
        for h in heads:
            _one_head(layer, x, spatial, queries, axis, dtype, h, step, out, share // 4)
        return out

    parts = map_workers(run, [range(w, H, workers) for w in range(workers)], workers)
    out = parts[0]
    for part in parts[1:]:
        out += part
    out += layer.b_out.astype(dtype, copy=False)
    return out.transpose(1, 0, 2)


def head_tables(layer: AttentionWeights, spatial: tuple[int, ...], queries: tuple[np.ndarray, ...],
                axis: tuple[np.ndarray, np.ndarray], dtype: np.dtype, h: int,
                limit: int | None = None) -> list[AxisTable | None]:
    """Head ``h``'s banded ``exp`` tables for every query of each axis, where they fit ``limit``
    bytes (default a quarter of the memory budget; None where they do not: those rows are
    built chunk by chunk)."""
    a, b = axis
    limit = layer.memory_budget // 4 if limit is None else limit
    out = []
    for i, size in enumerate(spatial):
        width = band_width(float(a[h, i]), float(b[h, i]), size, layer.beta, dtype)
        if len(queries[i]) * width * 8 <= limit:
            out.append(axis_table(float(a[h, i]), float(b[h, i]), size, queries[i], dtype, layer.beta,
                                  normalise=False))
        else:
            out.append(None)
    return out


def head_weights(layer: AttentionWeights, spatial: tuple[int, ...], coords: np.ndarray,
                 axis: tuple[np.ndarray, np.ndarray], dtype: np.dtype, h: int,
                 tables: list[AxisTable | None] | None = None,
                 queries: tuple[np.ndarray, ...] | None = None) -> np.ndarray:
    """Head ``h``'s unnormalised weights ``Π_i E_i[q_i, k_i]``, key-major: shape ``(n, m)``.

    ``tables`` (:func:`head_tables`, for the positions ``queries``) are sliced
    where given; the other axes' rows are built for the chunk's coordinates.
    """
    a, b = axis
    D, m = len(spatial), coords.shape[1]
    cols = []
    for i, size in enumerate(spatial):
        uniq, inv = np.unique(coords[i], return_inverse=True)
        if tables is not None and tables[i] is not None:
            rows = dense_rows(tables[i], np.searchsorted(queries[i], uniq))
        else:
            rows = dense_rows(axis_table(float(a[h, i]), float(b[h, i]), size, uniq, dtype, layer.beta,
                                         normalise=False))                    # (len(uniq), L_i)
        if D == 1:                      # the table's rows are the weights: no second copy
            return rows.T if np.array_equal(uniq, coords[0]) else rows.T[:, inv]
        cols.append(rows.T[:, inv].reshape((1,) * i + (size,) + (1,) * (D - 1 - i) + (m,)))
    s = np.empty(spatial + (m,), dtype=dtype)
    with np.errstate(under="ignore"):
        np.multiply(cols[0], cols[1], out=s)
        for c in cols[2:]:
            s *= c
    return s.reshape(-1, m)


def _one_head(layer: AttentionWeights, x: np.ndarray, spatial: tuple[int, ...],
              queries: tuple[np.ndarray, ...], axis: tuple[np.ndarray, np.ndarray], dtype: np.dtype,
              h: int, step: int, out: np.ndarray, table_bytes: int) -> None:
    """Add head ``h``'s output to ``out`` of shape ``(n_queries, B, d_out)``, ``step`` queries at a time."""
    B, n = x.shape[0], x.shape[1]
    dh = layer.d_head
    vals = np.empty((n, B * dh + 1), dtype=dtype)
    vals[:, :-1] = np.matmul(x, layer.w_val[h].astype(dtype, copy=False)).transpose(1, 0, 2).reshape(n, B * dh)
    vals[:, -1] = 1.0                                                   # row sums ride along
    w_out = layer.w_out[h * dh:(h + 1) * dh].astype(dtype, copy=False)
    tables = head_tables(layer, spatial, queries, axis, dtype, h, table_bytes)
    for start, coords in query_chunks(queries, step):
        m = coords.shape[1]
        s = head_weights(layer, spatial, coords, axis, dtype, h, tables, queries)   # (n, m) weights
        acc = s.T @ vals                                                # (m, B d_head + 1)
        mixed = acc[:, :-1] / acc[:, -1:]                               # convex combinations
        out[start:start + m] += mixed.reshape(m, B, dh) @ w_out         # (m, B, d_out)
