"""Contractions of an array along one axis with a banded per-axis table.

``contract(arr, table)`` computes ``out[p, i, c] = Σ_k T[i, k] arr[p, k, c]``
for an :class:`~attn_expressivity.attention.axes.AxisTable` ``T`` whose row ``i``
is non-zero only on ``w`` consecutive keys. Consecutive rows are grouped into
blocks; a block of ``b`` rows touches the keys ``[min start, max start + w)``,
so it is one dense ``(b, span)`` matrix product with the slice of ``arr`` on
those keys (``span ≈ b · step + w`` for queries ``step`` keys apart). The zero
entries of a block add nothing to a product (``0 · a = 0`` and ``s + 0 = s``
exactly), so each output is an inner product over the non-zero weights of its
row only, whatever order the BLAS library sums in. When the columns are few
(a long 1-D signal with a channel or two), the ``w`` band offsets are gathered
and accumulated instead, one array operation each.
"""

from __future__ import annotations

import numpy as np

from .axes import AxisTable

__all__ = ["block_rows", "contract"]


def block_rows(width: int, step: float) -> int:
    """Rows per block: about ``1.25 w / step``, so a block's span is about twice its band.

    A dense block of ``b`` rows costs ``b · span`` multiply-adds per column for
    ``b · w`` useful ones (``span ≈ b · step + w``); longer blocks waste more,
    shorter ones call the BLAS library more often. Measured on 224 × 230 keys,
    ``w = 13``: 8 to 16 rows per block were fastest, 128 took 2.5 times longer.
    """
    return int(max(4, min(64, round(1.25 * width / max(step, 1.0)))))


def contract(arr: np.ndarray, table: AxisTable, out: np.ndarray | None = None, *,
             add: bool = False) -> np.ndarray:
    """``Σ_k T[i, k] arr[p, k, c]`` for ``arr`` of shape ``(pre, L, post)``; returns ``(pre, m, post)``.

    ``m`` is the number of rows of ``table`` (its queries). ``out``, when given,
    receives the result: shape ``(pre, m, post)`` or ``(pre, m, *rest)`` with
    ``prod(rest) = post``, any strides (a column block of a wider array); with
    ``add`` the result is added to it.

    Examples
    --------
    >>> from attn_expressivity.attention.axes import axis_table
    >>> t = axis_table(-50.0, 100.0, 5, np.arange(5), np.dtype(np.float64), 1.0)
    >>> x = np.arange(5.0).reshape(1, 5, 1)
    >>> np.round(contract(x, t)[0, :, 0], 12).tolist()          # k = q + 1, the last key stays
    [1.0, 2.0, 3.0, 4.0, 4.0]
    """
    pre, size, post = arr.shape              # arr may be a strided view (rows of a merged product)
    m = table.rows
    if out is None:
        out = np.empty((pre, m, post), dtype=np.result_type(arr, table.values))
        add = False
    if table.shared:                      # every row the same: one product, broadcast
        start, row = table.row(0)
        res = np.matmul(row, arr[:, start:start + row.size, :])[:, None, :]
        _store(out, slice(None), np.broadcast_to(res, (pre, m, post)), add)
        return out
    w = table.width
    start = table.start
    if pre * post <= 32 and w <= 64:      # narrow columns: w gathers beat many tiny products
        acc = np.zeros((pre, m, post), dtype=out.dtype)
        for j in range(w):
            acc += table.values[:, j][None, :, None] * arr[:, start + j, :]
        _store(out, slice(None), acc, add)
        return out
    step = (float(start[-1] - start[0]) / (m - 1)) if m > 1 else 1.0
    nb = block_rows(w, step)
    for b0 in range(0, m, nb):
        b1 = min(m, b0 + nb)
        lo = int(start[b0:b1].min())
        hi = int(start[b0:b1].max()) + w
        block = np.zeros((b1 - b0, hi - lo), dtype=table.values.dtype)
        cols = (start[b0:b1] - lo)[:, None] + np.arange(w)[None, :]
        block[np.arange(b1 - b0)[:, None], cols] = table.values[b0:b1]
        if pre == 1:
            res = (block @ arr[0, lo:hi])[None]
        else:
            res = np.matmul(block, arr[:, lo:hi])
        _store(out, slice(b0, b1), res, add)
    return out


def _store(out: np.ndarray, rows: slice, res: np.ndarray, add: bool) -> None:
    """``out[:, rows] = res`` (or ``+=``), ``res`` of shape ``(pre, b, post)`` reshaped to the target's."""
    target = out[:, rows]
    res = res.reshape(target.shape)
    if add:
        target += res
    else:
        target[...] = res
