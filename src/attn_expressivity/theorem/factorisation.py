"""Lemma 1's value and output blocks: split each kernel slice as ``W_Δ = W_val^(h) W_out^(h)``.

Lemma 1 needs, for each head, value and output matrices whose product is the
kernel slice of its shift. ``d_head`` equal to the largest slice rank suffices
(the project's condition, sharper than the paper's ``d_head >= d_out``).

* When ``d_head >= min(d_in, d_out)`` the split needs no decomposition: an
  identity block on the shorter side, ``W_val = [I | 0]``, ``W_out = [W_Δ; 0]``
  (``d_in <= d_out``) or ``W_val = [W_Δ | 0]``, ``W_out = [I; 0]``, whose
  product is ``W_Δ`` *exactly* in floating point (each entry is one product
  with 1 plus exact zeros). ``d_head=None`` takes this route as soon as one
  slice is certainly of full rank (a Cholesky factorisation of its shifted
  Gram matrix, :func:`certainly_full_rank`), which settles the largest rank
  without a singular value decomposition; ``d_head="paper"`` is the paper's own
  choice ``W_val = W_Δ``, ``W_out = I``, exact too.
* Otherwise one rank-revealing SVD per slice, in float64 whatever the
  kernel's type, gives the shortest split; its largest singular value gives the
  rank tolerance, and its float64 factors the allowance of the split
  (:func:`split_allowance`: their residual plus the rounding of storing them,
  entry by entry), so no slice is decomposed twice.

The rank tolerance is the rounding level of the kernel's type: numpy's rule
``σ_1 · max(d_in, d_out) · eps`` with ``eps`` of float64 for float64 kernels and
of float32 for float32 and float16 ones, so a full-rank float16 kernel is never
truncated to a lower rank.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from .._threads import single_blas_thread
from .._validation import as_int
from ..errors import HeadDimensionError, ParameterTypeError, ParameterValueError

__all__ = ["Split", "certainly_full_rank", "check_rank_tol", "factorisation_allowance", "slice_ranks",
           "split_allowance", "split_slices"]


class Split(NamedTuple):
    """The value and output blocks of every head, and what is known about them."""

    w_val: np.ndarray              # (n_heads, d_in, d_head)
    w_out: np.ndarray              # (n_heads * d_head, d_out)
    ranks: np.ndarray | None       # (n_heads,), None when not computed
    allowances: np.ndarray         # (n_heads,) largest |W_Δ − W_val W_out| the split may leave


def _compute_dtype(dtype: np.dtype) -> np.dtype:
    """LAPACK has no float16: decompositions run in at least float32."""
    return np.promote_types(dtype, np.float32)


def slice_ranks(mats: np.ndarray, rank_tol: float | None) -> np.ndarray:
    """Rank of each slice: singular values above ``rank_tol`` (None: ``σ_1 max(d_in, d_out) eps``).

    Examples
    --------
    >>> slice_ranks(np.stack([np.eye(3), np.diag([1.0, 1.0, 0.0])]), None).tolist()
    [3, 2]
    """
    H, d_in, d_out = mats.shape
    dt = _compute_dtype(mats.dtype)
    s = np.linalg.svd(mats.astype(dt), compute_uv=False)
    tol = (s.max(axis=1, initial=0.0) * max(d_in, d_out) * np.finfo(dt).eps
           if rank_tol is None else np.full(H, float(rank_tol)))
    return (s > np.reshape(tol, (H, 1))).sum(axis=1)


def certainly_full_rank(mat: np.ndarray, rank_tol: float | None = None) -> bool:
    """A sufficient test, without an SVD, that ``mat`` has rank ``min(d_in, d_out)`` at the tolerance.

    With ``G = WᵀW`` (or ``WWᵀ``, the ``k × k`` Gram matrix, ``k = min(d_in, d_out)``)
    in float64 and ``F = ‖W‖_F >= σ_1``, the tolerance is at most
    ``t = F max(d_in, d_out) eps`` (or ``rank_tol``). If the Cholesky
    factorisation of ``G − s I`` succeeds with ``s = t² + 2(γ_d + k γ_{k+1}) F²``,
    then ``λ_min(G) > t²``: forming ``G`` errs by at most ``γ_d F²`` in the 2-norm
    and a Cholesky factorisation that runs to completion is that of a matrix
    within ``k γ_{k+1} trace(G)`` of the input (Higham, Theorem 10.3), so
    ``σ_k² = λ_min(G) > t²`` and all ``k`` singular values exceed the tolerance.
    ``False`` means "not shown", not "rank deficient".

    Examples
    --------
    >>> certainly_full_rank(np.eye(3)), certainly_full_rank(np.diag([1.0, 1e-12, 1.0]))
    (True, False)
    """
    d_in, d_out = mat.shape
    k, d = min(d_in, d_out), max(d_in, d_out)
    w = mat.astype(np.float64)
    top = float(np.abs(w).max()) if w.size else 0.0
    if top == 0.0:
        return False
    w = w * 2.0 ** -math.frexp(top)[1]            # a power of two: the ranks do not change
    with np.errstate(under="ignore"):
        gram = w.T @ w if d_in >= d_out else w @ w.T
    frob2 = float(np.trace(gram)) * (1 + 4 * d * 2.0**-53)
    if not np.isfinite(frob2) or frob2 == 0.0:
        return False
    eps = float(np.finfo(_compute_dtype(mat.dtype)).eps)
    tol = math.sqrt(frob2) * d * eps if rank_tol is None else float(rank_tol)
    u = 2.0**-53
    shift = tol * tol + 2.0 * ((d * u / (1 - d * u)) + k * (k + 1) * u / (1 - (k + 1) * u)) * frob2
    try:
        np.linalg.cholesky(gram - shift * np.eye(k))
    except np.linalg.LinAlgError:
        return False
    return True


def _identity_split(mats: np.ndarray, dh: int) -> tuple[np.ndarray, np.ndarray]:
    """``W_val = [I | 0]``, ``W_out = [W_Δ; 0]`` (``d_in <= d_out``) or the mirror image: exact."""
    H, d_in, d_out = mats.shape
    w_val = np.zeros((H, d_in, dh), dtype=mats.dtype)
    w_out = np.zeros((H, dh, d_out), dtype=mats.dtype)
    if d_in <= d_out:
        w_val[:, :, :d_in] = np.eye(d_in, dtype=mats.dtype)
        w_out[:, :d_in, :] = mats
    else:
        w_val[:, :, :d_out] = mats
        w_out[:, :d_out, :] = np.eye(d_out, dtype=mats.dtype)
    return w_val, w_out.reshape(H * dh, d_out)


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
                 shifts: np.ndarray) -> Split:
    """Split every ``W_Δ`` into ``W_val^(h) W_out^(h)`` (Lemma 1; module docstring).

    Parameters
    ----------
    mats : ndarray, shape ``(n_heads, d_in, d_out)``
        The kernel slices (:func:`attn_expressivity.convolution.slices.kernel_slices`).
    d_head : int, "paper" or None
        As for :func:`attn_expressivity.conv_to_mhsa`.
    rank_tol : float or None
        Singular values at or below it count as zero (None: the rounding level).
    shifts : ndarray of int, shape ``(n_heads, ndim)``
        Named in the error message of a ``d_head`` that is too small.

    Returns
    -------
    Split
        ``ranks`` is None when no decomposition was needed (identity split);
        ``allowances`` is 0 for the exact splits.

    Raises
    ------
    HeadDimensionError
        ``d_head`` below the rank of some slice.
    ParameterValueError, ParameterTypeError
        ``d_head`` neither None, ``"paper"`` nor an int ``>= 1``.
    """
    with single_blas_thread():                 # many small decompositions: one BLAS thread
        return _split(mats, d_head, rank_tol, shifts)


def _split(mats: np.ndarray, d_head: object, rank_tol: float | None, shifts: np.ndarray) -> Split:
    H, d_in, d_out = mats.shape
    k = min(d_in, d_out)
    zero = np.zeros(H)
    if isinstance(d_head, str):
        if d_head != "paper":
            raise ParameterValueError(f"`d_head` must be None, 'paper' or an int >= 1, got {d_head!r}")
        # The paper's construction: W_val^(h) = W_Δ, W_out^(h) = I (d_head = d_out), exact.
        return Split(mats.copy(), np.tile(np.eye(d_out, dtype=mats.dtype), (H, 1)), None, zero)
    dh = None if d_head is None else as_int(d_head, "d_head", minimum=1)
    if dh is not None and dh >= k:
        return Split(*_identity_split(mats, dh), None, zero)
    if dh is None and any(certainly_full_rank(m, rank_tol) for m in mats):
        return Split(*_identity_split(mats, k), None, zero)
    return _svd_split(mats, dh, rank_tol, shifts)


def _svd_split(mats: np.ndarray, dh: int | None, rank_tol: float | None, shifts: np.ndarray) -> Split:
    """The shortest split from one float64 SVD per slice; the identity split when that is as short.

    The decomposition runs in float64 whatever the kernel's type (float16 and
    float32 entries are exact there); the rank tolerance keeps the rounding level
    of the kernel's own type (``eps`` of float32 for float16 and float32 kernels).
    Each head's allowance is :func:`split_allowance` of its float64 factors.
    """
    H, d_in, d_out = mats.shape
    eps = float(np.finfo(_compute_dtype(mats.dtype)).eps)
    m64 = mats.astype(np.float64)
    u, s, vt = np.linalg.svd(m64, full_matrices=False)                  # (H, d_in, r) (H, r) (H, r, d_out)
    s1 = s.max(axis=1, initial=0.0)
    tol = s1 * max(d_in, d_out) * eps if rank_tol is None else np.full(H, float(rank_tol))
    ranks = (s > np.reshape(tol, (H, 1))).sum(axis=1)
    need = max(1, int(ranks.max()))
    if dh is None:
        dh = need
    elif dh < need:
        h = int(np.argmax(ranks))
        raise HeadDimensionError(
            f"`d_head` must be >= the rank of every kernel slice; the slice at shift "
            f"{tuple(int(c) for c in shifts[h])} (head {h}) has rank {need}, got d_head = {dh} "
            f"(the smallest d_head that works is {need})"
        )
    if dh >= min(d_in, d_out):
        return Split(*_identity_split(mats, dh), ranks, np.zeros(H))
    r = min(dh, s.shape[1])
    # W_Δ ≈ U_r S_r V_r^T: W_val = U_r S_r, W_out = V_r^T, the dropped directions zeroed
    keep = np.arange(r)[None, :] < ranks[:, None]
    a64 = u[:, :, :r] * (s[:, :r] * keep)[:, None, :]                   # (H, d_in, r)
    b64 = vt[:, :r, :]                                                   # (H, r, d_out)
    w_val = np.zeros((H, d_in, dh), dtype=mats.dtype)
    w_out = np.zeros((H, dh, d_out), dtype=mats.dtype)
    w_val[:, :, :r] = a64
    w_out[:, :r, :] = b64
    allow = np.array([split_allowance(m64[h], a64[h], b64[h], mats.dtype) for h in range(H)])
    return Split(w_val, w_out.reshape(H * dh, d_out), ranks, allow)


def split_allowance(mat: np.ndarray, a: np.ndarray, b: np.ndarray, dtype: np.dtype) -> float:
    """The largest ``|W_Δ − fl_w(A) fl_w(B)|`` entry a split from float64 factors ``A B`` can leave (a bound).

    ``A`` (``d_in × r``) and ``B`` (``r × d_out``) are the float64 factors, stored
    in ``dtype`` (``fl_w``, unit roundoff ``u_w``, smallest subnormal ``η_w``). Entry by
    entry ``W − fl_w(A) fl_w(B) = (W − A B) + (A B − fl_w(A) fl_w(B))`` and

    * ``|W − A B| <= |fl(W − fl(A B))| / (1 − u) + γ_r (|A| |B|) + 2 r η`` (float64:
      the product in any order, then one subtraction; ``u``, ``η`` of float64);
    * ``|A B − fl_w(A) fl_w(B)| <= (2u_w + u_w²) (|A| |B|) + 2 η_w (Σ_k |A_ik| + Σ_k |B_kj| + r η_w)``
      (each stored entry is within ``u_w`` of its value, or ``η_w`` below the normal range).

    The allowance is the largest entry of the sum, rounded up; a residual above it
    is not the rounding of a split (lemma in ``docs/bounds.md``).

    Examples
    --------
    >>> w = np.outer([1.0, 2.0], [3.0, 1.0])
    >>> u, s, vt = np.linalg.svd(w)
    >>> 0 < split_allowance(w, u[:, :1] * s[:1], vt[:1], np.dtype(np.float32)) < 1e-5
    True
    """
    if mat.size == 0:
        return 0.0
    r = a.shape[1]
    u64, eta64 = 2.0**-53, float(np.finfo(np.float64).smallest_subnormal)
    info = np.finfo(dtype)
    u_w, eta_w = float(info.eps) / 2, float(info.smallest_subnormal)
    g_r = r * u64 / (1 - r * u64)
    with np.errstate(under="ignore"):
        mag = np.abs(a) @ np.abs(b)                                       # |A| |B|, rounded below
        resid = np.abs(mat - a @ b)
    mag = mag * (1 + (r + 2) * u64)                                       # rounded up
    per = (resid / (1 - u64) + g_r * mag + 2 * r * eta64
           + (2 * u_w + u_w * u_w) * mag
           + 2 * eta_w * (np.abs(a).sum(axis=1)[:, None] + np.abs(b).sum(axis=0)[None, :] + r * eta_w))
    return float(per.max()) * (1 + 8 * u64)


def _allowance(s1: float, d_in: int, d_out: int, dh: int, eps: float, dtype: np.dtype,
               rank_tol: float | None) -> float:
    """Largest ``|W_Δ − W_val W_out|`` entry an SVD split may leave (see :func:`factorisation_allowance`)."""
    dropped = s1 * max(d_in, d_out) * eps if rank_tol is None else float(rank_tol)
    info = np.finfo(dtype)
    u_w, eta_w = float(info.eps) / 2, float(info.smallest_subnormal)
    # storing an entry errs by u_w of it or, below the normal range, by half a subnormal:
    # Σ_k (|δv| |w_out| + |w_val| |δo| + |δv| |δo|) with entries of W_val at most σ_1 and of
    # W_out at most 1 gives 3 u_w σ_1 + d_head η_w (1 + σ_1 + η_w) at most
    return dropped + 8 * (d_in + d_out + dh) * eps * s1 + 3 * u_w * s1 + dh * eta_w * (1 + s1 + eta_w)


def factorisation_allowance(mat: np.ndarray, w_val: np.ndarray, w_out: np.ndarray,
                            rank_tol: float | None = None) -> float:
    """The largest entry of ``|W_Δ − W_val W_out|`` the construction may leave.

    For blocks that carry no allowance of their own (a layer built elsewhere):
    a tolerance. :func:`conv_to_mhsa` records the allowance of its split instead
    (0 for the exact identity splits, :func:`split_allowance` for an SVD split). An SVD split keeps the singular values above the rank
    tolerance, so in exact arithmetic the residual's spectral norm (hence every
    entry) is at most that tolerance: ``rank_tol``, or the rounding level
    ``σ_1 · max(d_in, d_out) · eps`` with ``eps`` of the type the SVD runs in.
    On top comes the floating-point error of the SVD, allowed
    ``8 (d_in + d_out + d_head) · eps · σ_1`` (LAPACK's SVD is backward stable with
    a modest size-dependent constant; this allowance is a tolerance, not a
    theorem), and the rounding of the blocks to their own type, ``3 u σ_1``
    (each entry of ``|U_r S_r| |V_r^T|`` is at most ``σ_1``) plus
    ``d_head η (1 + σ_1 + η)`` for entries stored below the normal range (``η``
    the type's smallest subnormal number). A residual above it
    means the value/output blocks do not express ``W_Δ``: the rounding level of
    the factorisation cannot explain it.

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
    dtype = np.result_type(w_val, w_out)
    eps = float(np.finfo(_compute_dtype(dtype)).eps)
    s1 = float(np.linalg.norm(mat.astype(np.float64), 2)) if mat.size else 0.0
    d_in, d_out = mat.shape
    return _allowance(s1, d_in, d_out, w_val.shape[1], eps, dtype, rank_tol)
