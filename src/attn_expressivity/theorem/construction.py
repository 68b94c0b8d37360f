"""Theorem 1: the MHSA layer that expresses a given convolution.

``conv_to_mhsa`` assembles Lemma 1 (heads as shifts, value/output matrices)
and Lemma 2 (the quadratic encoding that concentrates head ``h`` on the key
``q + Δ_h``). Padding, stride and dilation follow the paper's remarks: pad the
input with the convolution's padding mode, attend over the padded image, crop
the window of queries whose targets lie inside it, and subsample by the stride.
"""

from __future__ import annotations

import math

import numpy as np

from .._validation import as_alpha, as_float_array
from ..attention.encoding import quadratic_head_vectors
from ..attention.layer import DEFAULT_MEMORY_BUDGET, MultiHeadSelfAttention
from ..convolution.config import NUMPY_PAD_MODE, ConvConfig, check_image, make_config
from ..convolution.shifts import left_offsets, shift_set
from ..convolution.slices import kernel_slices
from ..errors import ParameterTypeError, ParameterValueError, ShapeError
from .factorisation import check_rank_tol, slice_ranks, split_slices

__all__ = ["ConvAttention", "centres_to_mhsa", "conv_to_mhsa"]


class ConvAttention:
    """An MHSA layer together with the padding, cropping and striding of a convolution.

    Built by :func:`conv_to_mhsa`; calling it on ``x`` pads ``x`` with the
    convolution's padding mode, runs :attr:`mhsa` over the padded image, keeps
    the queries whose targets ``q + Δ_h`` lie inside it, and subsamples by the
    stride.

    Attributes
    ----------
    mhsa : MultiHeadSelfAttention
        The attention layer, with every weight inspectable.
    config : ConvConfig
        The convolution's validated hyper-parameters.
    alpha : float or None
        Inverse width of the Gaussian bumps (``inf`` for hard attention). The
        checks compare it with the ``α_h`` each head stores
        (:func:`attn_expressivity.theorem.heads.alpha_issues`); None declares no
        single width (heads of several widths), and nothing is compared.
    shifts : ndarray of int, shape ``(n_heads, ndim)``
        ``Δ_h`` of each head (``k − q``).
    ranks : ndarray of int, shape ``(n_heads,)``
        Rank of each kernel slice ``W_Δ`` at the rank tolerance used (computed
        on first access when the construction did not need it).
    kernel : ndarray, shape ``(*kernel_size, d_in // groups, d_out)``
        The convolution's weight (kept to account for the factorisation residual).
    bias : ndarray or None, shape ``(d_out,)``
    kernel_indices : ndarray of int, shape ``(n_heads,)``
        The raster (C-order) kernel index whose slice ``W_Δ`` head ``h`` carries;
        ``arange(n_heads)`` when every kernel index has its head, the indices of
        the non-zero slices with ``conv_to_mhsa(..., drop_zero_heads=True)``.
    rank_tol : float or None
        The rank tolerance of the split (None: the rounding level); see
        :func:`~attn_expressivity.theorem.factorisation.factorisation_allowance`.
    allowances : ndarray, shape ``(n_heads,)``, or None
        The largest entry of ``|W_Δh − W_val^(h) W_out^(h)|`` the split may
        leave: 0 for the exact identity splits, for an SVD split the residual of
        its float64 factors plus the rounding of storing them
        (:func:`~attn_expressivity.theorem.factorisation.split_allowance`),
        recorded at construction. None: a tolerance computed from the blocks by
        :func:`~attn_expressivity.theorem.factorisation.factorisation_allowance`.
    """

    def __init__(self, mhsa: MultiHeadSelfAttention, config: ConvConfig, alpha: float,
                 shifts: np.ndarray, ranks: np.ndarray | None, kernel: np.ndarray,
                 bias: np.ndarray | None, rank_tol: float | None = None,
                 kernel_indices: np.ndarray | None = None,
                 allowances: np.ndarray | None = None) -> None:
        self.mhsa = mhsa
        self.config = config
        self.alpha = alpha
        self.shifts = shifts
        self._ranks = ranks
        self.kernel = kernel
        self.bias = bias
        self.rank_tol = rank_tol
        self.kernel_indices = (np.arange(mhsa.n_heads) if kernel_indices is None
                               else np.asarray(kernel_indices, dtype=np.int64))
        self.allowances = None if allowances is None else np.asarray(allowances, dtype=np.float64)

    @property
    def ranks(self) -> np.ndarray:
        if self._ranks is None:
            mats = kernel_slices(self.kernel, self.config.groups)[self.kernel_indices]
            self._ranks = slice_ranks(mats, self.rank_tol)
        return self._ranks

    @ranks.setter
    def ranks(self, value: np.ndarray | None) -> None:
        self._ranks = value

    @property
    def n_heads(self) -> int:
        return self.mhsa.n_heads

    @property
    def d_head(self) -> int:
        return self.mhsa.d_head

    def pad(self, x: np.ndarray) -> np.ndarray:
        """``x`` padded with the convolution's padding and padding mode."""
        nd = self.config.ndim
        widths = [(0, 0)] * (x.ndim - nd - 1) + list(self.config.pad_width) + [(0, 0)]
        return np.pad(x, widths, mode=NUMPY_PAD_MODE[self.config.padding_mode])

    def crop(self, padded_spatial: tuple[int, ...]) -> tuple[slice, ...]:
        """Slices of the padded-image queries that are the convolution's outputs.

        The output at (pre-stride) position ``o`` is the query ``p = o + c`` with
        ``c = ⌊d(K−1)/2⌋`` per axis, so that every target ``p + Δ_h`` lies in
        ``[o, o + d(K−1)]``, inside the padded image.
        """
        cfg = self.config
        out = []
        for size, k, d, s, c in zip(padded_spatial, cfg.kernel_size, cfg.dilation, cfg.stride,
                                    left_offsets(cfg.kernel_size, cfg.dilation)):
            count = size - d * (k - 1)
            out.append(slice(c, c + count, s))
        return tuple(out)

    def __call__(self, x: np.ndarray, **kwargs: object) -> np.ndarray:
        """Pad → attend → crop → subsample.

        Parameters
        ----------
        x : ndarray, shape ``(*batch, *spatial, d_in)``
        **kwargs
            Passed to :meth:`MultiHeadSelfAttention.__call__` (e.g. ``path``).

        Returns
        -------
        ndarray, shape ``(*batch, *out_spatial, d_out)``
            The same shape as :func:`attn_expressivity.conv` returns.
        """
        x = as_float_array(x, "x")
        check_image(x, self.config)
        xp = self.pad(x)
        nd = self.config.ndim
        window = self.crop(xp.shape[xp.ndim - nd - 1:-1])
        # only the kept (cropped, strided) queries are computed; every padded pixel is a key
        return self.mhsa(xp, queries=window, **kwargs)

    def __repr__(self) -> str:
        cfg = self.config
        return (f"ConvAttention(kernel_size={cfg.kernel_size}, d_in={cfg.d_in}, d_out={cfg.d_out}, "
                f"n_heads={self.n_heads}, d_head={self.d_head}, alpha={self.alpha}, "
                f"padding={cfg.padding!r}, padding_mode={cfg.padding_mode!r}, stride={cfg.stride}, "
                f"dilation={cfg.dilation}, groups={cfg.groups})")


def conv_to_mhsa(weight: np.ndarray, bias: np.ndarray | None = None, *, alpha: float, stride=1,
                 padding="same", dilation=1, groups=1, padding_mode="zeros",
                 d_head: int | str | None = None, rank_tol: float | None = None,
                 memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 drop_zero_heads: bool = False) -> ConvAttention:
    """Build the multi-head self-attention layer of Theorem 1 for a convolution.

    One head per kernel position (``n_heads = prod(kernel_size)``), head ``h``
    centred on ``Δ_h`` (:func:`attn_expressivity.shift_set`), quadratic encoding
    ``r_δ = (‖δ‖², δ)`` (``d_p = ndim + 1``):

    * Lemma 2: ``W_qry = W_key = 0``, ``Ŵ_key = I``, ``u = 0``,
      ``v^(h) = −α(1, −2Δ_h)``, so ``A_{q,k} = −α‖δ − Δ_h‖² + const``.
    * Lemma 1: ``W_val^(h) W_out^(h) = W_{Δ_h}`` (block diagonal for grouped
      kernels), ``b_out = b``.

    For ``alpha = inf`` the encoding keeps ``α = 1`` in ``v`` and the layer's
    inverse temperature is ``β = ∞``: exact hard attention.

    Parameters
    ----------
    weight : ndarray, shape ``(*kernel_size, d_in // groups, d_out)``
    bias : ndarray, shape ``(d_out,)``, optional
    alpha : float
        Inverse width: ``0``, ``inf`` (hard attention), or a finite α the weights'
        type can hold: at least its smallest normal number (so the stored head
        vectors keep their centres) and at most ``max / ((m + 2) max(m + 2, 2m))``,
        ``m`` the largest ``|Δ_i|`` of the shift set, so that the scores near every
        target stay finite (about ``2e307`` for a 3×3 kernel in float64, ``7278``
        in float16); other values raise :class:`ParameterValueError` naming the
        limit.
    stride, padding, dilation, groups, padding_mode
        As for :func:`attn_expressivity.conv` (PyTorch's semantics).
    d_head : int, "paper" or None, optional
        ``None`` (default): the smallest head dimension that works, the largest
        rank of a kernel slice ``W_Δ`` (at ``rank_tol``). An int: that dimension
        (at least that rank). ``"paper"``: the paper's ``d_head = d_out`` with
        ``W_out^(h) = I``. Whenever ``d_head >= min(d_in, d_out)`` the blocks are
        an identity block and the slice, exact and without a decomposition
        (:mod:`~attn_expressivity.theorem.factorisation`).
    rank_tol : float, optional
        Singular values at or below this count as zero (default: numpy's
        ``matrix_rank`` rule ``σ_max · max(d_in, d_out) · eps``, with ``eps`` of
        the type the decomposition runs in: float32 for float16 kernels).
    memory_budget : int, optional
        Passed to :class:`MultiHeadSelfAttention`.
    drop_zero_heads : bool, optional
        False (default): one head per kernel index, the paper's construction.
        True: no head for a kernel slice ``W_Δ`` that is exactly zero (a sparse
        or masked kernel), so the layer has
        ``attn_expressivity.min_heads(weight).upper`` heads; ``kernel_indices``
        says which slice each kept head carries. A dropped slice contributes
        nothing to the convolution, so the layer still expresses it, with the
        same bound. A layer has at least one head: when every slice is zero the
        head of the shift nearest the centre (the first in raster order among
        equals) is kept, with zero value blocks, and the layer outputs the bias.

    Returns
    -------
    ConvAttention

    Raises
    ------
    HeadDimensionError
        ``d_head`` below the rank of some kernel slice (the message names the
        shift, its rank and the minimum).
    ShapeError, ParameterTypeError, ParameterValueError, NonFiniteError
        As for :func:`attn_expressivity.conv`, and for a negative or NaN ``alpha``
        or ``rank_tol`` (an infinite ``rank_tol`` too), a non-zero ``alpha`` below
        the normal range of the weights' type (its head vectors would move the
        centres; the message names the smallest ``alpha`` the type holds), an
        ``alpha`` whose head vectors overflow that type, or a ``drop_zero_heads``
        that is not a bool.

    Examples
    --------
    >>> import numpy as np
    >>> from attn_expressivity import conv
    >>> rng = np.random.default_rng(0)
    >>> w, x = rng.standard_normal((3, 3, 2, 4)), rng.standard_normal((7, 5, 2))
    >>> layer = conv_to_mhsa(w, alpha=float("inf"))
    >>> layer.n_heads, layer.d_head
    (9, 2)
    >>> bool(np.allclose(layer(x), conv(x, w), rtol=0, atol=1e-12))
    True
    >>> w[0] = 0                                            # a kernel with its first row zero
    >>> sparse = conv_to_mhsa(w, alpha=float("inf"), drop_zero_heads=True)
    >>> sparse.n_heads, sparse.kernel_indices.tolist()
    (6, [3, 4, 5, 6, 7, 8])
    >>> bool(np.allclose(sparse(x), conv(x, w), rtol=0, atol=1e-12))
    True
    """
    alpha = as_alpha(alpha)
    weight = as_float_array(weight, "weight")
    cfg = make_config(weight.shape, stride=stride, padding=padding, dilation=dilation,
                      groups=groups, padding_mode=padding_mode)
    if bias is not None:
        bias = as_float_array(bias, "bias")
        if bias.shape != (cfg.d_out,):
            raise ShapeError(f"`bias` must have shape ({cfg.d_out},), got {bias.shape}")
    rank_tol = check_rank_tol(rank_tol)
    if not isinstance(drop_zero_heads, bool):
        raise ParameterTypeError(
            f"`drop_zero_heads` must be True or False, got {type(drop_zero_heads).__name__} {drop_zero_heads!r}"
        )
    shifts = shift_set(cfg.kernel_size, dilation=cfg.dilation)              # (H, D)
    mats = kernel_slices(weight, cfg.groups)                                # (H, d_in, d_out)
    kernel_indices = None
    if drop_zero_heads:
        kernel_indices = _nonzero_slices(mats, shifts)
        shifts, mats = shifts[kernel_indices], mats[kernel_indices]
    w_val, w_out, ranks, allowances = split_slices(mats, d_head, rank_tol, shifts)
    _check_alpha_fits(shifts, alpha, weight.dtype)
    b_out = np.zeros(cfg.d_out, dtype=weight.dtype) if bias is None else bias.copy()
    mhsa = _quadratic_layer(shifts, alpha, w_val, w_out, b_out, memory_budget)
    return ConvAttention(mhsa, cfg, alpha, shifts, ranks, weight, bias, rank_tol, kernel_indices,
                         allowances=allowances)


def _check_alpha_normal(alpha: float | np.ndarray, dtype: np.dtype) -> None:
    """Refuse a non-zero ``α`` below the normal range of the type the head vectors are stored in.

    Below it ``fl(−α)`` and ``fl(2αΔ)`` are multiples of the smallest subnormal
    number, rounded independently, so the stored centre ``fl(2αΔ) / 2 fl(α)`` may
    sit up to half a pixel (or, when ``fl(α) = 0``, infinitely far) from ``Δ``: the
    head is no longer Lemma 2's up to a relative rounding. From the smallest
    normal number up, both entries carry a relative error ``u`` and the centre is
    within ``3 (u_w + u_64) |Δ|`` of ``Δ`` (:mod:`attn_expressivity.theorem.heads`).
    """
    a = np.asarray(alpha, dtype=np.float64).reshape(-1)
    info = np.finfo(dtype)
    tiny = float(info.tiny)
    low = a[(a > 0) & (a < tiny)]
    if low.size:
        name = np.dtype(dtype).name
        raise ParameterValueError(
            f"`alpha` must be 0 or at least {tiny!r} (the smallest normal {name} number) for "
            f"{name} weights, got {float(low[0])!r}: stored below the normal range, the head vectors "
            f"-alpha (1, -2 shift) round to multiples of the smallest subnormal number and move the "
            f"centres off the shifts (use alpha=0 for uniform attention)")


def _score_reach(shifts: np.ndarray) -> int:
    """The largest factor ``t² `` or ``2|Δ_i| |t|`` of a score formed near a head's target.

    The paths form ``f(t) = a t² + b t`` (``a = −α``, ``b = 2αΔ_i``) per axis on a window
    of keys around the target ``Δ_i``; at an α large enough to come near the type's range
    the window is the target and one key on each side, which a window clipped at the end
    of an axis may slide by one more: ``|t| <= m + 2`` with ``m = max |Δ_i|``.
    """
    m = int(np.abs(shifts).max()) if shifts.size else 0
    return (m + 2) * max(m + 2, 2 * m)


def _check_alpha_fits(shifts: np.ndarray, alpha: float, dtype: np.dtype) -> None:
    """Refuse an ``α`` whose head vectors ``−α(1, −2Δ)``, or whose scores near the targets, the weights' type cannot hold."""
    if not math.isfinite(alpha):
        return
    _check_alpha_normal(alpha, dtype)
    top = float(np.finfo(dtype).max)
    reach = _score_reach(shifts)                  # >= 2 max|Δ| and >= 1: it covers v too
    if not alpha * reach <= top:
        name = np.dtype(dtype).name
        largest = top / reach
        largest = float(math.floor(largest)) if largest < 2.0**52 else largest
        while largest * reach > top:              # the α printed must itself be accepted
            largest = float(np.nextafter(largest, 0.0))
        size = f"{alpha * reach:.4g}" if math.isfinite(alpha * reach) else f"{alpha:.4g} x {reach}"
        raise ParameterValueError(
            f"`alpha` = {alpha!r} is too large for {name} weights: the head vectors "
            f"-alpha (1, -2 shift) and the scores -alpha t^2 + 2 alpha shift t near each target "
            f"reach {size}, above {name}'s largest number {top:.6g}; the largest "
            f"alpha {name} can hold for these shifts is {largest!r} "
            f"(or use alpha=inf for hard attention)")


def _quadratic_layer(centres: np.ndarray, alpha: float | np.ndarray, w_val: np.ndarray,
                     w_out: np.ndarray, b_out: np.ndarray, memory_budget: int) -> MultiHeadSelfAttention:
    """Lemma 2's positional heads on ``centres`` with Lemma 1's value and output blocks."""
    H, D = centres.shape
    d_p = D + 1
    dtype = w_val.dtype
    zeros = np.zeros((H, w_val.shape[1], d_p), dtype=dtype)
    finite = bool(np.all(np.isfinite(alpha)))
    v = quadratic_head_vectors(centres, alpha if finite else 1.0).astype(dtype)  # Lemma 2
    return MultiHeadSelfAttention(
        w_qry=zeros, w_key=zeros, w_key_hat=np.tile(np.eye(d_p, dtype=dtype), (H, 1, 1)),
        u=np.zeros((H, d_p), dtype=dtype), v=v, w_val=w_val, w_out=w_out, b_out=b_out,
        beta=1.0 if finite else math.inf, memory_budget=memory_budget,
    )


def centres_to_mhsa(centres: np.ndarray, alpha: float | np.ndarray, w_val: np.ndarray,
                    w_out: np.ndarray, b_out: np.ndarray | None = None, *,
                    memory_budget: int = DEFAULT_MEMORY_BUDGET) -> MultiHeadSelfAttention:
    """The quadratic-encoding layer with heads on any real centres (Lemma 2, Lemma 1's blocks).

    Head ``h`` scores key ``k`` of query ``q`` with ``−α_h‖δ − Δ_h‖²`` (up to a
    constant), ``δ = k − q``, and carries the value and output blocks given. With
    the integer centres of a shift set and ``W_val^(h) W_out^(h) = W_Δh`` this is
    the layer of :func:`conv_to_mhsa` before padding and cropping. A half-integer
    centre gives a head that weights its two (four) nearest pixels equally:
    a legitimate head, but no longer one shift, so the leak bound of
    :func:`attn_expressivity.leak_bound` (which needs an integer centre) does not
    apply to it.

    Parameters
    ----------
    centres : array of int or float, shape ``(n_heads, D)``
        ``Δ_h``, finite.
    alpha : float or array of float, shape ``(n_heads,)``
        ``α_h`` in ``[0, ∞)``, or ``inf`` (one value for every head) for hard attention
        (``β = ∞``: the weight is spread evenly over the keys nearest to ``q + Δ_h``).
    w_val : ndarray, shape ``(n_heads, d_in, d_head)``
    w_out : ndarray, shape ``(n_heads * d_head, d_out)``
    b_out : ndarray, shape ``(d_out,)``, optional
        Zero by default.
    memory_budget : int, optional
        Passed to :class:`~attn_expressivity.MultiHeadSelfAttention`.

    Returns
    -------
    MultiHeadSelfAttention

    Raises
    ------
    ParameterValueError, ParameterTypeError, ShapeError, NonFiniteError
        As for :func:`~attn_expressivity.quadratic_head_vectors` and
        :class:`~attn_expressivity.MultiHeadSelfAttention`; a negative ``α``,
        ``α = inf`` given per head, or a non-zero ``α`` below the normal range of
        ``w_val``'s type.

    Examples
    --------
    A head half a pixel to the right of the query averages the query and its
    right neighbour (1-D, α large):

    >>> layer = centres_to_mhsa(np.array([[0.5]]), 40.0, np.ones((1, 1, 1)), np.ones((1, 1)))
    >>> x = np.array([[0.0], [2.0], [4.0], [6.0]])
    >>> np.round(layer(x)[:, 0], 12).tolist()
    [1.0, 3.0, 5.0, 6.0]
    """
    if isinstance(alpha, np.ndarray) and alpha.ndim > 0:
        if alpha.dtype.kind == "f" and np.isinf(alpha).any():
            raise ParameterValueError(
                "`alpha` = inf is one value for every head (hard attention, beta=inf); "
                "per-head values must be finite"
            )
    else:
        alpha = as_alpha(alpha)
    w_val = as_float_array(w_val, "w_val")
    if b_out is None:
        w_out_arr = as_float_array(w_out, "w_out")
        if w_out_arr.ndim != 2:
            raise ShapeError(f"`w_out` must have shape (n_heads * d_head, d_out), got {w_out_arr.shape}")
        b_out = np.zeros(w_out_arr.shape[1], dtype=w_val.dtype)
    if np.all(np.isfinite(alpha)):
        _check_alpha_normal(alpha, w_val.dtype)
    centres = np.asarray(centres)
    if centres.ndim != 2 or (w_val.ndim == 3 and centres.shape[0] != w_val.shape[0]):
        raise ShapeError(
            f"`centres` must have shape (n_heads, D) with n_heads = {w_val.shape[0]} "
            f"(the heads of `w_val`), got {centres.shape}"
        )
    return _quadratic_layer(centres, alpha, w_val, w_out, b_out, memory_budget)


def _nonzero_slices(mats: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Raster indices of the slices that are not exactly zero (at least one index).

    A dropped slice adds ``X_{q+Δ} · 0 = 0`` to the convolution, exactly. A
    layer needs a head: for an all-zero kernel, keep the shift nearest the centre.
    """
    keep = np.flatnonzero((mats != 0).reshape(mats.shape[0], -1).any(axis=1))
    if keep.size == 0:
        keep = np.array([int(np.argmin((shifts**2).sum(axis=1)))])
    return keep.astype(np.int64)
