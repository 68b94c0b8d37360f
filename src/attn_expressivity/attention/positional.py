"""The dense positional path: every ``n × n`` weight, built from per-axis ``exp`` tables.

For a layer without content terms whose scores are sums of per-axis functions
(:mod:`attn_expressivity.attention.axes`), the weight of query ``q`` and key
``k`` is ``Π_i E_i[q_i, k_i]`` with ``E_i = exp(β T_i)`` and
``T_i = f_i − rowmax f_i <= 0``: in exact arithmetic ``exp(β(A_{q,k} − c_q))``
with ``c_q`` the row maximum of the scores (a per-query constant, which softmax
ignores), so the target's weight is exactly ``1``. Every one of the ``n × n``
weights is formed (one broadcast product per chunk of queries, the ``O(n²)``
part) while ``exp`` runs on the small per-axis tables only. The weights are
not normalised in place: the row sum comes out of the same matrix product as
the weighted values (a column of ones appended to them) and the
``(chunk, d_head)`` result is divided by it.
"""

from __future__ import annotations

import os

import numpy as np

from .axes import axis_exp_table
from .weights import AttentionWeights

__all__ = ["THREADS", "attend_positional"]

#: Threads the dense positional path spreads its heads over.
THREADS = os.cpu_count() or 1


def attend_positional(layer: AttentionWeights, x: np.ndarray, spatial: tuple[int, ...],
                      axis: tuple[np.ndarray, np.ndarray], dtype: np.dtype) -> np.ndarray:
    """``x`` of shape ``(B, n, d_in)``; returns ``(B, n, d_out)`` (module docstring).

    Heads run on up to :data:`THREADS` threads (numpy's elementwise kernels
    release the GIL); each thread has its own scratch and accumulator, so the
    chunk of queries is the memory budget's divided by the number of threads.
    """
    H = layer.n_heads
    coords = np.indices(spatial).reshape(len(spatial), -1)              # (D, n) query coordinates
    workers = max(1, min(H, THREADS))
    step = max(1, layer.chunk_size(x.shape[1], positional=True) // workers)

    def run(heads: range) -> np.ndarray:
        out = np.zeros((x.shape[1], x.shape[0], layer.d_out), dtype=dtype)
        buffer = np.empty(x.shape[1] * step, dtype=dtype)              # reused by every chunk
        for h in heads:
            _one_head(layer, x, spatial, coords, axis, dtype, h, step, buffer, out)
        return out

    def run_quietly(heads: range) -> np.ndarray:
        # the caller's errstate does not reach worker threads; overflow is checked
        # on the output by MultiHeadSelfAttention.__call__
        with np.errstate(over="ignore", invalid="ignore"):
            return run(heads)

    if workers == 1:
        out = run(range(H))
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(run_quietly, [range(w, H, workers) for w in range(workers)]))
        out = parts[0]
        for part in parts[1:]:
            out += part
    out += layer.b_out
    return out.transpose(1, 0, 2)


def _one_head(layer: AttentionWeights, x: np.ndarray, spatial: tuple[int, ...],
              coords: np.ndarray, axis: tuple[np.ndarray, np.ndarray], dtype: np.dtype, h: int, step: int,
              buffer: np.ndarray, out: np.ndarray) -> None:
    """Add head ``h``'s output to ``out`` of shape ``(n, B, d_out)``, ``step`` queries at a time."""
    a, b = axis
    B, n = x.shape[0], x.shape[1]
    dh, D = layer.d_head, len(spatial)
    # key-major tables: (L_i keys, L_i queries)
    tables = [axis_exp_table(float(a[h, i]), float(b[h, i]), size, dtype, layer.beta).T
              for i, size in enumerate(spatial)]
    vals = np.empty((n, B * dh + 1), dtype=dtype)
    vals[:, :-1] = np.matmul(x, layer.w_val[h]).transpose(1, 0, 2).reshape(n, B * dh)
    vals[:, -1] = 1.0                                                   # row sums ride along
    w_out = layer.w_out[h * dh:(h + 1) * dh]
    for start in range(0, n, step):
        stop = min(n, start + step)
        m = stop - start
        # weights are laid out key-major, s[k_1, …, k_D, q] = Π_i E_i[q_i, k_i], so the
        # broadcast product runs along the long query axis                  # (*spatial, m)
        cols = [t[:, coords[i, start:stop]].reshape((1,) * i + (size,) + (1,) * (D - 1 - i) + (m,))
                for i, (t, size) in enumerate(zip(tables, spatial))]
        s = buffer[: n * m].reshape(spatial + (m,))
        with np.errstate(under="ignore"):
            if D == 1:
                s[...] = cols[0]
            else:
                np.multiply(cols[0], cols[1], out=s)
                for c in cols[2:]:
                    s *= c
        s = s.reshape(n, m)                                             # (n, m) weights
        acc = s.T @ vals                                                # (m, B d_head + 1)
        mixed = acc[:, :-1] / acc[:, -1:]                               # convex combinations
        out[start:stop] += mixed.reshape(m, B, dh) @ w_out              # (m, B, d_out)
