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

from .axes import AxisTable, axis_table
from .threads import map_workers, worker_count
from .weights import AttentionWeights

__all__ = ["attend_positional", "dense_rows", "query_chunks"]


def dense_rows(table: AxisTable) -> np.ndarray:
    """The rows of a banded table as a dense ``(rows, size)`` array."""
    out = np.zeros((table.rows, table.size), dtype=table.values.dtype)
    if table.shared:
        s, v = table.row(0)
        out[:, s:s + v.size] = v
        return out
    cols = table.start[:, None] + np.arange(table.width)[None, :]
    out[np.arange(table.rows)[:, None], cols] = table.values
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

    Heads run on up to :func:`~attn_expressivity.attention.threads.worker_count`
    threads; each has its own scratch and accumulator, so the chunk of queries
    is the memory budget's divided by the number of threads.
    """
    H, n = layer.n_heads, x.shape[1]
    n_q = math.prod(len(q) for q in queries)
    workers = max(1, min(H, worker_count()))
    step = max(1, min(n_q, layer.memory_budget // (workers * 2 * 8 * n)))

    def run(heads: range) -> np.ndarray:
        out = np.zeros((n_q, x.shape[0], layer.d_out), dtype=dtype)
        for h in heads:
            _one_head(layer, x, spatial, queries, axis, dtype, h, step, out)
        return out

    parts = map_workers(run, [range(w, H, workers) for w in range(workers)], workers)
    out = parts[0]
    for part in parts[1:]:
        out += part
    out += layer.b_out.astype(dtype, copy=False)
    return out.transpose(1, 0, 2)


def head_weights(layer: AttentionWeights, spatial: tuple[int, ...], coords: np.ndarray,
                 axis: tuple[np.ndarray, np.ndarray], dtype: np.dtype, h: int) -> np.ndarray:
    """Head ``h``'s unnormalised weights ``Π_i E_i[q_i, k_i]``, key-major: shape ``(n, m)``."""
    a, b = axis
    D, m = len(spatial), coords.shape[1]
    if D == 1:                          # the table's rows are the weights: no second copy
        return dense_rows(axis_table(float(a[h, 0]), float(b[h, 0]), spatial[0], coords[0], dtype,
                                     layer.beta, normalise=False)).T
    cols = []
    for i, size in enumerate(spatial):
        uniq, inv = np.unique(coords[i], return_inverse=True)
        table = dense_rows(axis_table(float(a[h, i]), float(b[h, i]), size, uniq, dtype, layer.beta,
                                      normalise=False))                       # (len(uniq), L_i)
        cols.append(table.T[:, inv].reshape((1,) * i + (size,) + (1,) * (D - 1 - i) + (m,)))
    s = np.empty(spatial + (m,), dtype=dtype)
    with np.errstate(under="ignore"):
        np.multiply(cols[0], cols[1], out=s)
        for c in cols[2:]:
            s *= c
    return s.reshape(-1, m)


def _one_head(layer: AttentionWeights, x: np.ndarray, spatial: tuple[int, ...],
              queries: tuple[np.ndarray, ...], axis: tuple[np.ndarray, np.ndarray], dtype: np.dtype,
              h: int, step: int, out: np.ndarray) -> None:
    """Add head ``h``'s output to ``out`` of shape ``(n_queries, B, d_out)``, ``step`` queries at a time."""
    B, n = x.shape[0], x.shape[1]
    dh = layer.d_head
    vals = np.empty((n, B * dh + 1), dtype=dtype)
    vals[:, :-1] = np.matmul(x, layer.w_val[h].astype(dtype, copy=False)).transpose(1, 0, 2).reshape(n, B * dh)
    vals[:, -1] = 1.0                                                   # row sums ride along
    w_out = layer.w_out[h * dh:(h + 1) * dh].astype(dtype, copy=False)
    for start, coords in query_chunks(queries, step):
        m = coords.shape[1]
        s = head_weights(layer, spatial, coords, axis, dtype, h)       # (n, m) weights
        acc = s.T @ vals                                                # (m, B d_head + 1)
        mixed = acc[:, :-1] / acc[:, -1:]                               # convex combinations
        out[start:start + m] += mixed.reshape(m, B, dh) @ w_out         # (m, B, d_out)
