"""Per-head statistics of the attention weights over every query of a grid (and every input).

For head ``h``, query ``q`` and the softmax weights ``p_k`` over the keys ``k``:

* the **mean attention distance** ``Σ_k p_k ‖k − q‖`` in pixels (ViT's attention
  distance, ConViT's non-locality);
* the **entropy** ``−Σ_k p_k log p_k`` in nats (``log n`` for uniform attention);
* the **centroid** ``Σ_k p_k (k − q)``;
* the **mass on the nearest integer offset** ``t_h = round(Δ_h)``: ``p_{q + t_h}``,
  over the queries whose ``q + t_h`` lies inside the grid;
* the **mass inside a window** ``max_i |k_i − q_i| <= w`` when a window is asked for.

Each is averaged over the queries (and inputs, for content-dependent heads); the
mass also has its minimum. Rows are processed in chunks of queries so the
scratch memory stays within the budget whatever the grid size. **Ties** (a
maximum shared by several keys) are read from the positional weights of a query
in the middle of the grid: keys whose weight is within a relative ``tie_rtol``
of the largest.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..attention.softmax import stable_softmax
from .readers import Reading

__all__ = ["attention_maps", "head_statistics"]

#: A tie lists at most this many of its keys (uniform attention ties every key).
_MAX_TIE_KEYS = 32


def _rows_per_chunk(reading: Reading, n: int, d_extra: int, budget: int) -> int:
    per_query = 8 * n * (reading.n_heads * (6 + d_extra) + reading.ndim + 2)
    return max(1, min(n, budget // per_query))


def _scores(reading: Reading, q_idx: np.ndarray, positions: np.ndarray,
            tokens: np.ndarray | None) -> np.ndarray:
    q_pos = positions[q_idx]
    s = np.array(reading.positional(q_pos, positions), dtype=np.float64)  # (H, nq, n)
    if reading.content is not None and tokens is not None:
        s += reading.content(tokens, q_idx, q_pos, positions)
    return s


def attention_maps(reading: Reading, grid: tuple[int, ...], query: tuple[int, ...],
                   tokens: np.ndarray | None = None) -> np.ndarray:
    """Every head's weights for one query, ``(H, *grid)`` (tokens ``(n, d_in)`` for content heads)."""
    positions = np.indices(grid).reshape(len(grid), -1).T
    q_idx = np.array([int(np.ravel_multi_index(query, grid))])
    p = stable_softmax(_scores(reading, q_idx, positions, tokens), reading.beta)
    return p[:, 0, :].reshape((reading.n_heads,) + tuple(grid))


def head_statistics(reading: Reading, grid: tuple[int, ...], tokens: np.ndarray | None,
                    centres: np.ndarray, *, window: int | None, budget: int,
                    tie_rtol: float) -> dict[str, Any]:
    """The statistics of the module docstring, as arrays over the heads.

    Parameters
    ----------
    reading : Reading
    grid : tuple of int
        Spatial shape; the tokens are its pixels in raster order.
    tokens : ndarray, shape ``(n_inputs, n, d_in)``, or None
        Inputs, for content-dependent heads (ignored for positional ones).
    centres : ndarray, shape ``(n_heads, D)``
        The centres whose nearest integer offsets the mass is measured on (NaN: none).
    window : int or None
    budget : int
        Bytes of scratch memory per chunk of queries.
    tie_rtol : float

    Returns
    -------
    dict of ndarray
        ``mean_distance``, ``entropy``, ``centroid`` ``(H, D)``, ``mass``,
        ``mass_min``, ``window_mass`` (or None), ``ties`` (list).
    """
    H, D = reading.n_heads, len(grid)
    n = math.prod(grid)
    positions = np.indices(grid).reshape(D, n).T                            # (n, D)
    nearest = np.where(np.isfinite(centres), np.round(np.nan_to_num(centres)), 0).astype(np.int64)
    valid = np.isfinite(centres).all(axis=1)                                # (H,)
    inputs = [None] if reading.content is None or tokens is None else list(tokens)
    # scratch per query and key: H weights and temporaries, and for content terms the
    # encoded offsets (d_p) and their projections (H d_k) of the four-term score
    d_extra = 0 if reading.content is None else (
        (reading.mhsa.d_p + reading.n_heads * reading.mhsa.d_k) // reading.n_heads + 1
        if reading.mhsa is not None else 1)
    chunk = _rows_per_chunk(reading, n, d_extra, budget)
    acc = {"dist": np.zeros(H), "ent": np.zeros(H), "cen": np.zeros((H, D)), "mass": np.zeros(H),
           "count": np.zeros(H), "min": np.full(H, np.inf), "win": np.zeros(H)}
    for tok in inputs:
        for start in range(0, n, chunk):
            q_idx = np.arange(start, min(n, start + chunk))
            p = stable_softmax(_scores(reading, q_idx, positions, tok), reading.beta)  # (H, nq, n)
            _accumulate(acc, p, positions, q_idx, nearest, valid, grid, window)
    rows = n * len(inputs)
    with np.errstate(invalid="ignore", divide="ignore"):
        mass = np.where(acc["count"] > 0, acc["mass"] / acc["count"], np.nan)
    return {
        "mean_distance": acc["dist"] / rows, "entropy": acc["ent"] / rows,
        "centroid": acc["cen"] / rows, "mass": np.where(valid, mass, np.nan),
        "mass_min": np.where(valid & (acc["count"] > 0), acc["min"], np.nan),
        "window_mass": None if window is None else acc["win"] / rows,
        "ties": _ties(reading, grid, positions, tie_rtol),
    }


def _accumulate(acc: dict[str, np.ndarray], p: np.ndarray, positions: np.ndarray,
                q_idx: np.ndarray, nearest: np.ndarray, valid: np.ndarray,
                grid: tuple[int, ...], window: int | None) -> None:
    q_pos = positions[q_idx]                                                # (nq, D)
    rel = positions[None, :, :] - q_pos[:, None, :]                         # (nq, n, D)
    dist = np.sqrt((rel.astype(np.float64) ** 2).sum(axis=-1))             # (nq, n)
    acc["dist"] += np.einsum("hqk,qk->h", p, dist)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    acc["ent"] -= plogp.sum(axis=(1, 2))
    acc["cen"] += np.einsum("hqk,qkd->hd", p, rel.astype(np.float64))
    if window is not None:
        inside = (np.abs(rel) <= window).all(axis=-1)                       # (nq, n)
        acc["win"] += np.einsum("hqk,qk->h", p, inside.astype(np.float64))
    g = np.array(grid)
    for h in np.flatnonzero(valid):
        target = q_pos + nearest[h]                                         # (nq, D)
        ok = ((target >= 0) & (target < g)).all(axis=1)
        if not ok.any():
            continue
        keys = np.ravel_multi_index(tuple(target[ok].T), grid)
        m = p[h, np.flatnonzero(ok), keys]
        acc["mass"][h] += m.sum()
        acc["count"][h] += m.size
        acc["min"][h] = min(acc["min"][h], float(m.min()))


def _ties(reading: Reading, grid: tuple[int, ...], positions: np.ndarray,
          tie_rtol: float) -> list[dict[str, Any] | None]:
    """Per head: the keys sharing the maximum weight at the middle query, or None (None for content heads)."""
    if reading.content is not None:
        return [None] * reading.n_heads
    middle = tuple(s // 2 for s in grid)
    q_idx = np.array([int(np.ravel_multi_index(middle, grid))])
    p = stable_softmax(_scores(reading, q_idx, positions, None), reading.beta)[:, 0, :]  # (H, n)
    out: list[dict[str, Any] | None] = []
    for h in range(reading.n_heads):
        top = p[h].max()
        keys = np.flatnonzero(p[h] >= top * (1.0 - tie_rtol))
        if keys.size < 2 or top == 0:
            out.append(None)
            continue
        offsets = positions[keys[:_MAX_TIE_KEYS]] - np.array(middle)
        out.append({"n_keys": int(keys.size), "offsets": offsets.tolist(),
                    "weights": p[h, keys[:_MAX_TIE_KEYS]].tolist(), "query": list(middle)})
    return out
