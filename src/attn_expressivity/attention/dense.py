"""The general dense path: every score of a chunk of queries against all keys.

It computes the paper's four-term score (content-content, content-position,
global content bias, global position bias) for any encoding, including a
callable one, chunked over queries so that the scores of one chunk fit the
layer's memory budget. ``O(n²)`` per head and image.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import NonFiniteError, ShapeError
from .positional import query_chunks
from .softmax import stable_softmax
from .weights import AttentionWeights

__all__ = ["attend_dense"]


def attend_dense(layer: AttentionWeights, x: np.ndarray, spatial: tuple[int, ...],
                 queries: tuple[np.ndarray, ...]) -> np.ndarray:
    """One image, ``x`` of shape ``(n, d_in)``; returns ``(n_queries, d_out)``.

    ``queries`` holds the query positions along each axis; the output is for
    their product set, in raster order.
    """
    n, H, D = x.shape[0], layer.n_heads, layer.ndim
    pos = np.indices(spatial).reshape(D, n).T                           # (n, D)
    n_q = math.prod(len(q) for q in queries)
    qry, key = bool(np.any(layer.w_qry)), bool(np.any(layer.w_key))
    qx = np.matmul(x, layer.w_qry) if qry else None                     # (H, n, d_k)
    kx = np.matmul(x, layer.w_key) if key else None                     # (H, n, d_k)
    # Term 4 coefficient per head, term 2 per head and query: both multiply r_δ.
    pos_coef = layer.position_coefficients()[:, None, :]                # (H, 1, d_p)
    if qx is not None:
        pos_coef = pos_coef + np.einsum("hnk,hpk->hnp", qx, layer.w_key_hat)  # (H, n, d_p)
    key_bias = np.einsum("hnk,hk->hn", kx, layer.u)[:, None, :] if kx is not None else None  # (H, 1, n)
    values = np.matmul(x, layer.w_val)                                  # (H, n, d_head)
    dtype = np.result_type(x, layer.w_val, layer.v)
    heads = np.empty((n_q, H, layer.d_head), dtype=dtype)
    step = layer.chunk_size(n)
    flat_index = np.ravel_multi_index
    for start, coords in query_chunks(queries, step):
        q_index = flat_index(tuple(coords), spatial)                    # token index of each query
        scores = _chunk_scores(layer, pos, q_index, pos_coef, qx, kx, key_bias, dtype)
        probs = stable_softmax(scores, layer.beta)                      # (H, m, n)
        heads[start:start + q_index.size] = np.matmul(probs, values).transpose(1, 0, 2)  # (m, H, d_head)
    return heads.reshape(n_q, H * layer.d_head) @ layer.w_out + layer.b_out


def _chunk_scores(layer: AttentionWeights, pos: np.ndarray, q_index: np.ndarray,
                  pos_coef: np.ndarray, qx: np.ndarray | None, kx: np.ndarray | None,
                  key_bias: np.ndarray | None, dtype: np.dtype) -> np.ndarray:
    """The scores of the queries ``q_index`` (token indices) against every key; shape ``(H, m, n)``."""
    rel = pos[None, :, :] - pos[q_index, None, :]                       # (m, n, D): δ = k - q
    r = np.asarray(layer.encode(rel))                                   # (m, n, d_p)
    if r.shape != rel.shape[:-1] + (layer.d_p,):
        raise ShapeError(
            f"the encoding returned shape {r.shape} for offsets of shape {rel.shape}; "
            f"expected {rel.shape[:-1] + (layer.d_p,)}"
        )
    # overflow here is detected just below and reported as an error
    with np.errstate(over="ignore", invalid="ignore"):
        coef = pos_coef if pos_coef.shape[1] == 1 else pos_coef[:, q_index]
        # scores[h, q, k] = coef[h, q] . r[q, k]                            # (H, m, n)
        if coef.shape[1] == 1:
            scores = np.matmul(r, coef[:, 0, :].T).transpose(2, 0, 1)
        else:
            scores = np.matmul(r, coef.transpose(1, 2, 0)).transpose(2, 0, 1)
        scores = np.ascontiguousarray(scores, dtype=dtype)
        if qx is not None and kx is not None:
            scores += np.matmul(qx[:, q_index], kx.transpose(0, 2, 1))   # term 1
        if key_bias is not None:
            scores += key_bias                                             # term 3
    if not np.isfinite(scores).all():
        raise NonFiniteError(
            "attention scores overflowed the floating-point range; scale the score "
            "weights down and use `beta` for the inverse temperature"
        )
    return scores
