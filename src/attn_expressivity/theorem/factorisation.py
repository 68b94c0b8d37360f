"""Lemma 1's value and output blocks: split each kernel slice as ``W_Δ = W_val^(h) W_out^(h)``.

Lemma 1 needs, for each head, value and output matrices whose product is the
kernel slice of its shift. A rank-revealing SVD gives the shortest such split:
``d_head`` equal to the largest slice rank suffices (the project's condition,
sharper than the paper's ``d_head >= d_out``), and ``d_head="paper"`` gives the
paper's own choice ``W_val^(h) = W_Δ``, ``W_out^(h) = I``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .._validation import as_int
from ..errors import HeadDimensionError, ParameterTypeError, ParameterValueError

__all__ = ["check_rank_tol", "factorisation_allowance", "split_slices"]


def check_rank_tol(rank_tol: object) -> float | None:
    """Validate a rank tolerance: None (the default rule) or a finite real number ``>= 0``.

    Raises
    ------
    ParameterTypeError
        Not a real number (a bool, a string ...).
    ParameterValueError
        Negative, infinite or NaN.

    Examples
    --------
    >>> check_rank_tol(None), check_rank_tol(1e-9)
    (None, 1e-09)
    """
    if rank_tol is None:
        return None
    if isinstance(rank_tol, bool) or not isinstance(rank_tol, numbers.Real):
        raise ParameterTypeError(
            f"`rank_tol` must be a real number >= 0 or None, got {type(rank_tol).__name__} {rank_tol!r}"
        )
    if not (math.isfinite(rank_tol) and rank_tol >= 0):
        raise ParameterValueError(f"`rank_tol` must be a finite number >= 0 or None, got {rank_tol!r}")
    return float(rank_tol)


def split_slices(mats: np.ndarray, d_head: object, rank_tol: float | None,
               shifts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split every ``W_Δ`` into ``W_val^(h) W_out^(h)`` (Lemma 1).

    Parameters
    ----------
    mats : ndarray, shape ``(n_heads, d_in, d_out)``
        The kernel slices (:func:`attn_expressivity.convolution.slices.kernel_slices`).
    d_head : int, "paper" or None
        As for :func:`attn_expressivity.conv_to_mhsa`.
    rank_tol : float or None
        Singular values at or below it count as zero (None: numpy's rule).
    shifts : ndarray of int, shape ``(n_heads, ndim)``
        Named in the error message of a ``d_head`` that is too small.

    Returns
    -------
    w_val : ndarray, shape ``(n_heads, d_in, d_head)``
    w_out : ndarray, shape ``(n_heads * d_head, d_out)``
    ranks : ndarray of int, shape ``(n_heads,)``

    Raises
    ------
    HeadDimensionError
        ``d_head`` below the rank of some slice.
    ParameterValueError, ParameterTypeError
        ``d_head`` neither None, ``"paper"`` nor an int ``>= 1``.
    """
    H, d_in, d_out = mats.shape
    if isinstance(d_head, str):
        if d_head != "paper":
            raise ParameterValueError(f"`d_head` must be None, 'paper' or an int >= 1, got {d_head!r}")
        # The paper's construction: W_val^(h) = W_Δ, W_out^(h) = I (d_head = d_out).
        ranks = np.array([np.linalg.matrix_rank(m.astype(np.promote_types(m.dtype, np.float32)),
                                                tol=rank_tol) for m in mats])
        return mats.copy(), np.tile(np.eye(d_out, dtype=mats.dtype), (H, 1)), ranks
    # LAPACK has no float16: split in at least float32, then round the factors back
    u, s, vt = np.linalg.svd(mats.astype(np.promote_types(mats.dtype, np.float32)),
                             full_matrices=False)                # (H, d_in, r) (H, r) (H, r, d_out)
    tol = (s.max(axis=1, initial=0.0) * max(d_in, d_out) * np.finfo(mats.dtype).eps
           if rank_tol is None else np.full(H, float(rank_tol)))
    ranks = (s > np.reshape(tol, (H, 1))).sum(axis=1)
    need = max(1, int(ranks.max()))
    if d_head is None:
        dh = need
    else:
        dh = as_int(d_head, "d_head", minimum=1)
        if dh < need:
            h = int(np.argmax(ranks))
            raise HeadDimensionError(
                f"`d_head` must be >= the rank of every kernel slice; the slice at shift "
                f"{tuple(int(c) for c in shifts[h])} (head {h}) has rank {need}, got d_head = {dh} "
                f"(the smallest d_head that works is {need})"
            )
    r = min(dh, s.shape[1])
    w_val = np.zeros((H, d_in, dh), dtype=mats.dtype)
    w_out = np.zeros((H, dh, d_out), dtype=mats.dtype)
    # W_Δ ≈ U_r S_r V_r^T: W_val = U_r S_r, W_out = V_r^T (exact up to the singular
    # values below the rank tolerance, which verify() accounts for).
    keep = np.arange(r)[None, :] < ranks[:, None]                # zero the dropped directions
    w_val[:, :, :r] = u[:, :, :r] * (s[:, :r] * keep)[:, None, :]
    w_out[:, :r, :] = vt[:, :r, :]
    return w_val, w_out.reshape(H * dh, d_out), ranks


def factorisation_allowance(mat: np.ndarray, w_val: np.ndarray, w_out: np.ndarray,
                            rank_tol: float | None = None) -> float:
    """The largest entry of ``|W_Δ − W_val W_out|`` the construction may leave.

    The split keeps the singular values above the rank tolerance, so in exact
    arithmetic the residual's spectral norm (hence every entry) is at most that
    tolerance: ``rank_tol``, or numpy's rule ``σ_1 · max(d_in, d_out) · eps``.
    On top comes the floating-point error of the SVD and of the product, allowed
    ``8 (d_in + d_out + d_head) · eps · σ_1`` (LAPACK's SVD is backward stable with
    a modest size-dependent constant; this allowance is a tolerance, not a theorem).
    A residual above it means the value/output blocks do not express ``W_Δ``.

    Parameters
    ----------
    mat : ndarray, shape ``(d_in, d_out)``
        The kernel slice ``W_Δ`` of one head.
    w_val : ndarray, shape ``(d_in, d_head)``
    w_out : ndarray, shape ``(d_head, d_out)``
    rank_tol : float, optional

    Returns
    -------
    float

    Examples
    --------
    >>> w = np.arange(6.0).reshape(2, 3)
    >>> 0 < factorisation_allowance(w, w, np.eye(3)) < 1e-12
    True
    """
    eps = float(np.finfo(np.result_type(w_val, w_out)).eps)
    s1 = float(np.linalg.norm(mat.astype(np.float64), 2)) if mat.size else 0.0
    d_in, d_out = mat.shape
    tol = s1 * max(d_in, d_out) * eps if rank_tol is None else float(rank_tol)
    return tol + 8 * (d_in + d_out + w_val.shape[1]) * eps * s1
