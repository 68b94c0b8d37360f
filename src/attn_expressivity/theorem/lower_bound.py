"""Theorem 1 is tight: how many heads a convolution needs.

For the kernel slices ``W_Δ`` (``Δ`` in the shift set ``S``) let ``U(W)`` be
the ``|S| × (d_in·d_out)`` matrix whose rows are ``vec(W_Δ)`` (the full, block
diagonal slices of a grouped kernel) and ``r(W) = rank U(W)``.

* **Necessity** (``docs/lower_bound.md``). An attention layer whose weights
  depend continuously on the input (the paper's four-term score, any encoding,
  any content weights) that equals the convolution for every input needs
  ``N_h >= r(W)`` heads, on any image on which the shift matrices ``S_Δ`` are
  linearly independent: its derivative at ``X = 0`` is
  ``E ↦ Σ_h P_h E M_h``, the convolution's is ``E ↦ Σ_Δ S_Δ E W_Δ``, and the
  rearrangement ``A ⊗ B ↦ vec(A) vec(B)ᵀ`` turns the first into a matrix of rank
  at most ``N_h`` and the second into ``S U(W)``, of rank ``r(W)``.
  :func:`min_heads` reports ``r(W)`` and the number of non-zero slices, which
  heads suffice (``conv_to_mhsa(..., drop_zero_heads=True)``).
* **Quantitative, positional heads** (``P_h`` fixed, as in the construction).
  With ``G`` the Gram matrix ``G_ΔΔ' = ⟨S_Δ, S_Δ'⟩_F``, for every layer
  ``Σ_h P_h ⊗ M_h`` with ``N_h`` heads (any ``P_h``, any ``M_h``),

  .. math:: \\lVert L_{MHSA} - L_{conv} \\rVert_F \\ge
            \\Big(\\sum_{i > N_h} \\sigma_i(G^{1/2} U(W))^2\\Big)^{1/2}

  (Eckart–Young; the rearrangement is an isometry and ``S = Q G^{1/2}`` with
  ``Q`` orthonormal columns). With zero padding the supports of the ``S_Δ``
  are disjoint, so ``G = diag(c_Δ)``, ``c_Δ`` the number of outputs whose tap
  ``Δ`` falls inside the image. For inputs with i.i.d. standard normal entries
  the left side squared is the expected squared output error (plus
  ``n_out·‖b_MHSA − b‖²``). :func:`heads_lower_bound` computes it. This
  statement holds for any ``G``: it needs no independence of the ``S_Δ``, so it
  holds on every image, including those on which the necessity statement does
  not apply (:attr:`HeadsLowerBound.shifts_independent` is false there).

Stride, dilation and every padding mode are covered: ``S_Δ`` is the 0/1 matrix
with ``(S_Δ)_{o,p} = 1`` when output ``o`` reads input pixel ``p`` through
kernel index ``Δ``; the padding modes other than zeros map a tap outside the
image to a pixel inside it, so supports can overlap and ``G`` is not diagonal
(and, on a small image, singular: the ``S_Δ`` are then dependent).
Both the output grid and the padding act axis by axis, so ``G`` is the
Kronecker product of per-axis Gram matrices, computed exactly in integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .._validation import as_float_array, as_int, as_int_tuple
from ..convolution.config import NUMPY_PAD_MODE, ConvConfig, make_config
from ..convolution.shifts import shift_set
from ..errors import ParameterTypeError, ShapeError
from .factorisation import check_rank_tol

__all__ = ["HeadsInterval", "HeadsLowerBound", "heads_lower_bound", "min_heads", "shift_gram"]

_CONV_OPTIONS = ("stride", "padding", "dilation", "groups", "padding_mode")


@dataclass(frozen=True)
class HeadsInterval:
    """What :func:`min_heads` returns: the heads a convolution needs and the heads that suffice.

    Attributes
    ----------
    lower : int
        ``r(W) = rank U(W)`` at :attr:`rank_tol`: no attention layer whose weights
        depend continuously on the input expresses the convolution with fewer heads
        (on an image on which the shift matrices are linearly independent; with zero
        padding, every shift is seen).
    upper : int
        The number of kernel slices that are not exactly zero: the heads of
        ``conv_to_mhsa(..., drop_zero_heads=True)``, which express it.
    singular_values : ndarray of float64, shape ``(min(n_slices, d_in·d_out),)``
        Of ``U(W)``, descending.
    rank_tol : float
        Singular values at or below it were counted as zero.
    n_slices : int
        ``|S| = prod(kernel_size)``, the paper's head count.
    nonzero : ndarray of bool, shape ``(n_slices,)``
        Which slices (raster order of kernel indices) are not exactly zero.
    """

    lower: int
    upper: int
    singular_values: np.ndarray
    rank_tol: float
    n_slices: int
    nonzero: np.ndarray


@dataclass(frozen=True)
class HeadsLowerBound:
    """What :func:`heads_lower_bound` returns.

    Attributes
    ----------
    n_heads : int
        The head count bounded.
    image_size, output_size : tuple of int
        The input's spatial shape and the convolution's output shape.
    total : float
        ``(Σ_{i > n_heads} σ_i²)^{1/2}``: a lower bound on ``‖L_MHSA − L_conv‖_F``
        for every positional layer with ``n_heads`` heads, and so on the root of
        the expected squared output error ``E‖MHSA(X) − Conv(X)‖²`` for inputs
        with i.i.d. standard normal entries.
    per_pixel : float
        ``total / sqrt(n_outputs)``: the same per output pixel (root mean over the
        output pixels of the expected squared error of a pixel's channel vector).
    relative : float
        ``total / ‖L_conv‖_F`` (0 for a zero kernel): the root of the expected
        squared error relative to ``E‖L_conv X‖²``.
    singular_values : ndarray of float64
        ``σ_i`` of ``G^{1/2} U(W)``, descending.
    gram : ndarray of int64, shape ``(n_slices, n_slices)``
        ``G_ΔΔ' = ⟨S_Δ, S_Δ'⟩_F``: the number of outputs at which taps ``Δ`` and
        ``Δ'`` read the same input pixel (diagonal ``c_Δ`` with zero padding).
    shifts_independent : bool
        Whether the shift matrices ``S_Δ`` are linearly independent on this image
        (``G`` non-singular). Always true with zero padding (the function refuses an
        image on which some shift is seen by no output). When false (another padding
        mode on a small image) :attr:`total` is still a lower bound, but the
        necessity statement (``r(W)`` heads needed, :func:`min_heads`) does not
        apply on this image, and :attr:`total` may be zero with fewer than ``r(W)``
        heads.
    note : str or None
        Why the necessity statement does not apply (None when it does).
    """

    n_heads: int
    image_size: tuple[int, ...]
    output_size: tuple[int, ...]
    total: float
    per_pixel: float
    relative: float
    singular_values: np.ndarray
    gram: np.ndarray
    shifts_independent: bool = True
    note: str | None = None

    @property
    def counts(self) -> np.ndarray:
        """``c_Δ``: how many outputs see tap ``Δ`` (the diagonal of :attr:`gram`)."""
        return np.diag(self.gram).copy()


def _weight_and_config(weight: object, conv_options: dict[str, Any]) -> tuple[np.ndarray, ConvConfig]:
    unknown = set(conv_options) - set(_CONV_OPTIONS)
    if unknown:
        raise ParameterTypeError(
            f"unknown convolution option(s) {sorted(unknown)}; expected some of {sorted(_CONV_OPTIONS)}"
        )
    weight = as_float_array(weight, "weight")
    cfg = make_config(weight.shape, **conv_options)
    return weight, cfg


def _unfolding(weight: np.ndarray) -> np.ndarray:
    """``U(W)`` without its always-zero columns, in float64: ``(n_slices, d_in/groups · d_out)``.

    A grouped slice is block diagonal; the entries outside the blocks are zero in
    every slice, so dropping those columns changes no singular value (``U Uᵀ`` is
    the same), and what is left is the kernel array itself, one row per index.
    """
    n_slices = math.prod(weight.shape[:-2])
    return weight.astype(np.float64).reshape(n_slices, -1)


def min_heads(weight: np.ndarray, *, rank_tol: float | None = None, **conv_options: Any) -> HeadsInterval:
    """The heads a convolution needs, ``r(W)``, and the heads that suffice.

    ``lower = r(W) = rank U(W)``, the rank of the matrix whose rows are the
    vectorised kernel slices ``vec(W_Δ)`` (block diagonal for grouped kernels): an
    attention layer with fewer heads, whatever its encoding and content weights,
    does not equal the convolution for every input on an image on which the shift
    matrices are linearly independent (``docs/lower_bound.md``; with zero padding,
    every shift is seen; :attr:`HeadsLowerBound.shifts_independent` says whether
    they are on a given image).
    ``upper`` is the number of slices that are not exactly zero: dropping the
    heads of the others (``conv_to_mhsa(..., drop_zero_heads=True)``) still
    expresses the convolution. For a generic kernel with
    ``d_in·d_out/groups >= prod(kernel_size)`` both equal ``prod(kernel_size)``:
    the paper's head count is necessary. Which count in between is achievable
    for a kernel with dependent slices is open in general (a softmax row is
    non-negative, so a head cannot form arbitrary combinations of shifts).

    Parameters
    ----------
    weight : ndarray, shape ``(*kernel_size, d_in // groups, d_out)``
    rank_tol : float, optional
        Singular values of ``U(W)`` at or below it count as zero. Default:
        numpy's ``matrix_rank`` rule ``σ_1 · max(M, N) · eps`` for the
        ``M × N`` matrix whose SVD is taken (``M = prod(kernel_size)``,
        ``N = d_in·d_out/groups``) and ``eps`` of the weight's dtype: it allows for
        the rounding of the SVD and of weights computed in that precision, so a
        float32 kernel built from fewer slices is recognised as such.
    **conv_options
        ``stride``, ``padding``, ``dilation``, ``groups``, ``padding_mode`` as for
        :func:`attn_expressivity.conv`; only ``groups`` changes the answer (the
        others are validated).

    Returns
    -------
    HeadsInterval

    Raises
    ------
    ShapeError, ParameterTypeError, ParameterValueError, NonFiniteError
        As for :func:`attn_expressivity.conv`; an unknown option; a negative,
        infinite or NaN ``rank_tol``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> w = rng.standard_normal((3, 3, 2, 5))               # 10 >= 9: generic, full rank
    >>> h = min_heads(w)
    >>> h.lower, h.upper
    (9, 9)
    >>> w2 = np.zeros((3, 3, 2, 5)); w2[0, 0] = w[0, 0]; w2[1, 1] = w[1, 1]; w2[2, 2] = -3 * w[1, 1]
    >>> h2 = min_heads(w2)                                  # 3 non-zero slices spanning 2 directions
    >>> h2.lower, h2.upper
    (2, 3)
    """
    weight, cfg = _weight_and_config(weight, conv_options)
    rank_tol = check_rank_tol(rank_tol)
    u = _unfolding(weight)                                                 # (n_slices, N)
    nonzero = (u != 0).any(axis=1)                                         # exactly zero slices
    n_slices, n_cols = u.shape
    s = np.zeros(min(n_slices, n_cols))
    if nonzero.any():
        # the SVD of the non-zero rows only: the zero rows add exact zeros
        got = np.linalg.svd(u[nonzero], compute_uv=False)
        s[:got.size] = got
    if rank_tol is None:
        rank_tol = float(s[0]) * max(n_slices, n_cols) * float(np.finfo(weight.dtype).eps) if s.size else 0.0
    lower = int((s > rank_tol).sum())
    return HeadsInterval(lower=lower, upper=int(nonzero.sum()), singular_values=s,
                         rank_tol=float(rank_tol), n_slices=n_slices, nonzero=nonzero)


def _axis_taps(size: int, pad: tuple[int, int], k: int, d: int, s: int, mode: str) -> np.ndarray:
    """``(n_out, k)``: the input pixel each output reads through each tap (−1: a zero pad)."""
    lo, hi = pad
    pixels = np.arange(size, dtype=np.int64)
    if mode == "zeros":
        padded = np.pad(pixels, (lo, hi), mode="constant", constant_values=-1)
    else:
        padded = np.pad(pixels, (lo, hi), mode=NUMPY_PAD_MODE[mode])
    n_out = (size + lo + hi - d * (k - 1) - 1) // s + 1
    return padded[np.arange(n_out)[:, None] * s + np.arange(k)[None, :] * d]   # (n_out, k)


def _axis_gram(taps: np.ndarray) -> list[list[int]]:
    """``G_a[i][j] = #{o : taps[o, i] = taps[o, j] >= 0}``, exact integers."""
    k = taps.shape[1]
    seen = taps >= 0                                                     # (n_out, k)
    return [[int(np.count_nonzero((taps[:, i] == taps[:, j]) & seen[:, i])) for j in range(k)]
            for i in range(k)]


def _is_singular(gram: list[list[int]]) -> bool:
    """Exact Gaussian elimination over the rationals (a per-axis Gram matrix is ``k × k``)."""
    a = [[Fraction(v) for v in row] for row in gram]
    n = len(a)
    for col in range(n):
        piv = next((r for r in range(col, n) if a[r][col] != 0), None)
        if piv is None:
            return True
        a[col], a[piv] = a[piv], a[col]
        for r in range(col + 1, n):
            f = a[r][col] / a[col][col]
            if f:
                a[r] = [x - f * y for x, y in zip(a[r], a[col])]
    return False


def shift_gram(config: ConvConfig, image_size: tuple[int, ...]) -> tuple[list[list[list[int]]], tuple[int, ...]]:
    """Per-axis Gram matrices of the shift matrices ``S_Δ`` and the output shape.

    ``G = G_1 ⊗ … ⊗ G_D`` (raster order of kernel indices), since the outputs form
    a product grid and the padding maps each axis on its own.

    Parameters
    ----------
    config : ConvConfig
    image_size : tuple of int
        Validated spatial shape of the input.

    Returns
    -------
    grams : list of ``k_a × k_a`` lists of int
    output_size : tuple of int

    Raises
    ------
    ShapeError
        Some shift is seen by no output (zero padding): its slice cannot be told
        apart from zero. With the other modes every tap reads a pixel; their
        per-axis Gram matrices may be singular (:func:`heads_lower_bound` notes it).

    Examples
    --------
    >>> grams, out = shift_gram(make_config((3, 1, 1)), (4,))
    >>> grams, out
    ([[[3, 0, 0], [0, 4, 0], [0, 0, 3]]], (4,))
    """
    grams, out = [], []
    for axis, (size, pad, k, d, s) in enumerate(zip(image_size, config.pad_width, config.kernel_size,
                                                    config.dilation, config.stride)):
        taps = _axis_taps(size, pad, k, d, s, config.padding_mode)
        g = _axis_gram(taps)
        if config.padding_mode == "zeros":
            unseen = [i for i in range(k) if g[i][i] == 0]
            if unseen:
                offset = int(shift_set((k,), dilation=d)[unseen[0], 0])
                raise ShapeError(
                    f"the image is too small for the theorem: no output sees the shift {offset} "
                    f"along spatial axis {axis} (kernel index {unseen[0]} of {k}; image size {size}, "
                    f"padding {pad}, stride {s}, dilation {d}), so its kernel slices cannot be told "
                    f"apart from zero; every shift must be seen by some output query"
                )
        grams.append(g)
        out.append(taps.shape[0])
    return grams, tuple(out)


def _singular_axes(grams: list[list[list[int]]]) -> list[int]:
    """The spatial axes whose Gram matrix is singular: ``G = ⊗ G_a`` is singular exactly when one is."""
    return [axis for axis, g in enumerate(grams) if _is_singular(g)]


def _weighted_unfolding(weight: np.ndarray, grams: list[list[list[int]]], mode: str) -> np.ndarray:
    """``Fᵀ U(W)`` for a factor ``F Fᵀ = G``: its singular values are those of ``G^{1/2} U(W)``.

    ``(Fᵀ U)ᵀ (Fᵀ U) = Uᵀ G U``. With zero padding ``F = diag(√c_Δ)``; otherwise
    ``F`` is the Kronecker product of per-axis factors: the Cholesky factor of a
    positive definite ``G_a``, ``V Λ^{1/2}`` from the eigendecomposition of a
    singular one (positive semi-definite: a Gram matrix).
    """
    u = _unfolding(weight)                                                 # (n_slices, N)
    if mode == "zeros":
        counts = np.ones(1)
        for g in grams:
            counts = np.kron(counts, np.diag(np.array(g, dtype=np.float64)))
        return np.sqrt(counts)[:, None] * u
    factor = np.ones((1, 1))
    for g in grams:
        ga = np.array(g, dtype=np.float64)
        if _is_singular(g):
            lam, vec = np.linalg.eigh(ga)
            fa = vec * np.sqrt(np.maximum(lam, 0.0))                       # F_a F_aᵀ = G_a
        else:
            fa = np.linalg.cholesky(ga)
        factor = np.kron(factor, fa)
    return factor.T @ u


def heads_lower_bound(weight: np.ndarray, n_heads: int, image_size: int | tuple[int, ...],
                      **conv_options: Any) -> HeadsLowerBound:
    """Eckart–Young lower bound on the error of any positional layer with ``n_heads`` heads.

    A positional layer (attention weights that do not depend on the input, as in
    the construction of Theorem 1, with any centres, widths, value and output
    matrices, padding included) computes ``X ↦ Σ_h P_h X M_h + b'``. For every
    such layer with ``n_heads`` heads, on an input of spatial shape
    ``image_size``,

    ``‖L_MHSA − L_conv‖_F >= (Σ_{i > n_heads} σ_i(G^{1/2} U(W))²)^{1/2}``,

    ``G`` the Gram matrix of the shift matrices (``diag(c_Δ)`` with zero padding,
    ``c_Δ`` the number of outputs that see tap ``Δ`` inside the image). It is
    attained by ``P_h`` that are signed combinations of the ``S_Δ``, which softmax
    heads cannot form in general. For inputs with i.i.d. standard normal entries
    the left side squared is the expected squared output error (a bias mismatch
    only adds to it).

    Eckart–Young needs nothing of ``G``, so the bound holds on every image the
    convolution accepts. Where the ``S_Δ`` are linearly independent (always with
    zero padding, on an image on which every shift is seen) it is zero exactly
    when ``n_heads >= r(W)``, as the necessity statement says. With another padding
    mode on a small image the ``S_Δ`` can be dependent: the bound still holds, but
    it is zero from ``rank(G^{1/2} U(W)) <= r(W)`` heads on and the necessity
    statement does not apply there; ``shifts_independent`` is then false and
    ``note`` says why.

    Parameters
    ----------
    weight : ndarray, shape ``(*kernel_size, d_in // groups, d_out)``
    n_heads : int
        ``>= 0``.
    image_size : int or tuple of int
        The input's spatial shape (an int for every axis).
    **conv_options
        ``stride``, ``padding``, ``dilation``, ``groups``, ``padding_mode`` as for
        :func:`attn_expressivity.conv`.

    Returns
    -------
    HeadsLowerBound
        ``total``, ``per_pixel`` and ``relative`` (float64, to rounding: the
        singular values carry an absolute error of a few ``eps·σ_1``), and
        ``shifts_independent`` and ``note``.

    Raises
    ------
    ParameterValueError, ParameterTypeError
        A negative or non-integer ``n_heads``; a bad image size; an unknown option.
    ShapeError
        An image size with the wrong number of axes or too small for the
        convolution (as :func:`attn_expressivity.conv` refuses it), or too small
        for the theorem: with zero padding, some shift seen by no output.
    NonFiniteError
        A weight with NaN or infinite entries.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> w = rng.standard_normal((3, 3, 2, 5))
    >>> b = heads_lower_bound(w, 8, 6)                     # one head short of r(W) = 9
    >>> bool(b.total > 0), heads_lower_bound(w, 9, 6).total
    (True, 0.0)
    >>> b.counts.reshape(3, 3).tolist()                    # c_Δ on a 6×6 image, zero padding
    [[25, 30, 25], [30, 36, 30], [25, 30, 25]]
    >>> w1 = rng.standard_normal((2, 2, 3))                 # 1-D, K = 2: r(W) = 2
    >>> r = heads_lower_bound(w1, 1, 3, stride=2, padding=1, dilation=2, padding_mode="reflect")
    >>> r.shifts_independent, r.gram.tolist()              # both taps read the same pixels: S_0 = S_1
    (False, [[2, 2], [2, 2]])
    >>> bool(r.total <= 1e-12 * r.singular_values[0])      # one head suffices here (P = S_0, M = W_0 + W_1)
    True
    """
    weight, cfg = _weight_and_config(weight, conv_options)
    n_heads = as_int(n_heads, "n_heads", minimum=0)
    size = as_int_tuple(image_size, cfg.ndim, "image_size", minimum=1)
    cfg.check_input_spatial(size)
    grams, out = shift_gram(cfg, size)
    gram = np.ones((1, 1), dtype=np.int64)
    for g in grams:
        gram = np.kron(gram, np.array(g, dtype=np.int64))
    b = _weighted_unfolding(weight, grams, cfg.padding_mode)               # (n_slices, N): Fᵀ U
    s = np.linalg.svd(b, compute_uv=False)                                 # σ(Fᵀ U) = σ(G^{1/2} U)
    tail = float(np.sqrt(np.sum(s[n_heads:] ** 2)))
    norm = float(np.sqrt(np.sum(s**2)))
    dependent = _singular_axes(grams)
    note = None
    if dependent:
        axis = dependent[0]
        note = (f"the shift matrices are linearly dependent on this image: along spatial axis {axis} "
                f"(image size {size[axis]}, padding {cfg.pad_width[axis]}) the taps that leave the image "
                f"under {cfg.padding_mode!r} padding read pixels other taps read (per-axis Gram matrix "
                f"{grams[axis]} is singular); the bound holds, but the necessity statement (r(W) heads "
                f"needed, min_heads) does not apply on this image")
    return HeadsLowerBound(n_heads=n_heads, image_size=size, output_size=out, total=tail,
                           per_pixel=tail / math.sqrt(math.prod(out)),
                           relative=tail / norm if norm > 0 else 0.0,
                           singular_values=s, gram=gram, shifts_independent=not dependent, note=note)
