"""The general multi-head self-attention layer with relative positional scores.

For head ``h``, query token ``q`` and key token ``k`` (``δ = k − q``), row-vector
convention, the score is the paper's four-term Transformer-XL form
(PAPER.md §1):

.. math::
    A^{(h)}_{q,k} = (x_q W_{qry}^{(h)}) \\cdot (x_k W_{key}^{(h)})
                  + (x_q W_{qry}^{(h)}) \\cdot (r_\\delta \\hat W_{key}^{(h)})
                  + u^{(h)} \\cdot (x_k W_{key}^{(h)})
                  + v^{(h)} \\cdot (r_\\delta \\hat W_{key}^{(h)})

with no ``1/√d_k`` scaling (as in the paper). The output is
``MHSA(X)_q = b_out + concat_h[softmax(β A^(h))_q X W_val^(h)] W_out``, where
``β`` is an inverse temperature (1 by default; ``β = ∞`` is the hard-attention
limit: uniform weight on the maximal scores).

**Two exact paths.** ``"dense"`` forms every score of a chunk of queries against
all ``n`` keys (``O(n²)`` per head, scratch bounded by ``memory_budget``).
``"separable"`` applies to layers whose scores are sums of per-axis functions of
the offset, ``A_{q,k} = Σ_i f_i(k_i − q_i)``: the quadratic encoding
``r_δ = (‖δ‖², δ)`` (``v·(r_δŴ) = c_0‖δ‖² + Σ_i c_iδ_i = Σ_i (c_0δ_i² + c_iδ_i)``,
``c = Ŵv``) or the anisotropic encoding with zero cross coefficients (a
diagonal ``Σ⁻¹``), and no content terms. Over the rectangular key set
``K = K_1 × … × K_D`` (the whole, possibly padded, image),

.. math::
    \\mathrm{softmax}_k(\\beta A_{q,k})
      = \\frac{\\prod_i e^{\\beta f_i(k_i - q_i)}}
             {\\sum_{k' \\in K} \\prod_i e^{\\beta f_i(k'_i - q_i)}}
      = \\prod_i \\frac{e^{\\beta f_i(k_i - q_i)}}{\\sum_{k'_i \\in K_i} e^{\\beta f_i(k'_i - q_i)}}
      = \\prod_i P^{(i)}_{q_i, k_i},

because a sum over a product set of a product of per-axis factors is the
product of the per-axis sums. So the attention matrix is the Kronecker product
``P^(1) ⊗ … ⊗ P^(D)`` of ``D`` one-dimensional softmax matrices
(``L_i × L_i``, ``L_i`` the side along axis ``i``), and a head is applied as
``D`` successive one-dimensional attentions, one contraction per axis:
``O(n Σ_i L_i)`` per head instead of ``O(n²)``. For ``β = ∞`` the argmax set of
``Σ_i f_i`` over a product set is the product of the per-axis argmax sets, and
the uniform distribution on a product is the product of the uniform
distributions, so the identity holds in the limit too. Each ``P^(i)`` subtracts
its own row maximum before ``exp`` (any per-query constant leaves a softmax
unchanged).

``path="auto"`` (the default) runs the separable path when it applies and the
dense path otherwise; :meth:`MultiHeadSelfAttention.select_path` says which, and
:attr:`MultiHeadSelfAttention.last_path` records the path of the last call.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._validation import as_float_array, as_int
from .encoding import anisotropic_encoding, quadratic_encoding
from .errors import (
    NonFiniteError,
    NotSeparableError,
    ParameterTypeError,
    ParameterValueError,
    ShapeError,
)

__all__ = ["MultiHeadSelfAttention", "DEFAULT_MEMORY_BUDGET", "PATHS", "stable_softmax"]

#: Default bound, in bytes, on the scratch memory of one chunk of queries (64 MiB).
DEFAULT_MEMORY_BUDGET = 64 * 2**20

#: Threads the dense positional path spreads its heads over.
_THREADS = os.cpu_count() or 1

#: The values of ``path`` accepted by :meth:`MultiHeadSelfAttention.__call__`.
PATHS = ("auto", "dense", "separable")

_ENCODINGS = {"quadratic": quadratic_encoding, "anisotropic": anisotropic_encoding}

Encoding = Callable[[np.ndarray], np.ndarray]


def stable_softmax(scores: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(β · scores)`` over the last axis, without overflow.

    The row maximum is subtracted *before* scaling by ``β``, so every exponent
    is ``<= 0`` for any ``β >= 0``; ``β = ∞`` gives the limit, uniform weight on
    the maximal entries. ``scores`` is overwritten.

    Parameters
    ----------
    scores : ndarray, shape ``(..., n_keys)``
        Finite scores.
    beta : float
        Inverse temperature in ``[0, ∞]``.

    Returns
    -------
    ndarray, same shape as ``scores``

    Examples
    --------
    >>> stable_softmax(np.array([[0.0, 1e308, -1e308]])).tolist()
    [[0.0, 1.0, 0.0]]
    >>> stable_softmax(np.array([[1.0, 1.0, 0.0]]), beta=math.inf).tolist()
    [[0.5, 0.5, 0.0]]
    """
    top = scores.max(axis=-1, keepdims=True)
    if beta == 0.0:
        # uniform weights; (s − max)·0 would turn an infinite gap into NaN
        scores[...] = 1.0 / scores.shape[-1]
        return scores
    if beta == math.inf:
        hit = scores == top
        return hit / hit.sum(axis=-1, keepdims=True)
    # (s − max)·β may overflow to −inf and exp may underflow to 0: both are the exact
    # limits of the weights, so those floating-point events are expected, not errors.
    with np.errstate(over="ignore", under="ignore"):
        np.subtract(scores, top, out=scores)
        if beta != 1.0:
            scores *= beta
        np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    return scores


def _exp_floor(dtype: np.dtype) -> float:
    """``⌈ln tiny⌉`` (``-708`` in float64): below it the dense path flushes a factor to 0.

    A flushed factor's exact value is below ``e^{⌈ln tiny⌉} < e · tiny``
    (``tiny`` the smallest normal number), an absolute perturbation that
    :func:`attn_expressivity.verify.error_bound` accounts for; it keeps ``exp``
    out of the slow subnormal range.
    """
    return float(math.ceil(math.log(np.finfo(dtype).tiny)))


def _weight(value: object, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    arr = as_float_array(value, name)
    if arr.ndim != len(shape) or any(s is not None and a != s for a, s in zip(arr.shape, shape)):
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        raise ShapeError(f"`{name}` must have shape {want}, got {arr.shape}")
    return arr


class MultiHeadSelfAttention:
    """Multi-head self-attention with the four-term relative positional score.

    Parameters
    ----------
    w_qry, w_key : ndarray, shape ``(n_heads, d_in, d_k)``
    w_key_hat : ndarray, shape ``(n_heads, d_p, d_k)``
    u, v : ndarray, shape ``(n_heads, d_k)``
    w_val : ndarray, shape ``(n_heads, d_in, d_head)``
    w_out : ndarray, shape ``(n_heads * d_head, d_out)``
        Row block ``h`` (rows ``h·d_head … (h+1)·d_head − 1``) is ``W_out^(h)``.
    b_out : ndarray, shape ``(d_out,)``
    encoding : "quadratic", "anisotropic" or callable, optional
        ``"quadratic"``: ``r_δ = (‖δ‖², δ_1, …, δ_D)`` with ``d_p = D + 1``.
        ``"anisotropic"``: ``r_δ = (δ, δ_1², …, δ_D², δ_iδ_j (i < j))`` with
        ``d_p = D(D + 3)/2`` (:func:`attn_expressivity.encoding.anisotropic_encoding`).
        A callable maps an integer offset array ``(..., D)`` to ``(..., d_p)``.
    ndim : int, optional
        Number of spatial axes ``D``; inferred from ``d_p`` for the named
        encodings, required for a callable.
    beta : float, optional
        Inverse temperature multiplying all scores (default 1; ``inf`` for hard
        attention).
    memory_budget : int, optional
        Bytes of scratch memory per chunk of queries on the dense path (default
        :data:`DEFAULT_MEMORY_BUDGET`, 64 MiB); the chunk size is chosen from it
        (:meth:`chunk_size`), so the score scratch never exceeds it whatever the
        image size. Beyond it the dense path holds ``O(n · (d_in + d_head +
        d_out))`` per image without content terms and ``O(n · n_heads · (d_k +
        d_head))`` with them; the separable path holds ``O(n · (d_in + d_head +
        d_out) + Σ_i L_i²)``.

    Attributes
    ----------
    last_path : str or None
        ``"dense"`` or ``"separable"``: the path the last call ran (None before
        the first call).

    Raises
    ------
    ShapeError
        Weights whose shapes do not fit together.
    ParameterTypeError, ParameterValueError, NonFiniteError
        Non-floating or non-finite weights, a bad encoding, ``beta``, ``ndim``
        or ``memory_budget``.

    Examples
    --------
    One head, no content terms, attending to the key one pixel to the right
    (Lemma 2 with ``Δ = (0, 1)`` and ``α = 50``):

    >>> import numpy as np
    >>> z = np.zeros((1, 1, 3))
    >>> layer = MultiHeadSelfAttention(
    ...     w_qry=z, w_key=z, w_key_hat=np.eye(3)[None], u=np.zeros((1, 3)),
    ...     v=-50.0 * np.array([[1.0, 0.0, -2.0]]), w_val=np.ones((1, 1, 1)),
    ...     w_out=np.ones((1, 1)), b_out=np.zeros(1))
    >>> x = np.arange(12.0).reshape(3, 4, 1)
    >>> np.round(layer(x)[0, :, 0], 12).tolist()     # row 0: x[0, q+1], the last pixel attends to itself
    [1.0, 2.0, 3.0, 3.0]
    >>> layer.last_path, bool(np.allclose(layer(x, path="dense"), layer(x), rtol=1e-13, atol=0))
    ('separable', True)
    """

    def __init__(self, w_qry, w_key, w_key_hat, u, v, w_val, w_out, b_out,
                 encoding: str | Encoding = "quadratic", *, ndim: int | None = None,
                 beta: float = 1.0, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> None:
        w_qry = as_float_array(w_qry, "w_qry")
        if w_qry.ndim != 3:
            raise ShapeError(f"`w_qry` must have shape (n_heads, d_in, d_k), got {w_qry.shape}")
        n_heads, d_in, d_k = w_qry.shape
        w_key_hat = as_float_array(w_key_hat, "w_key_hat")
        if w_key_hat.ndim != 3:
            raise ShapeError(f"`w_key_hat` must have shape (n_heads, d_p, d_k), got {w_key_hat.shape}")
        d_p = w_key_hat.shape[1]
        w_val = as_float_array(w_val, "w_val")
        if w_val.ndim != 3:
            raise ShapeError(f"`w_val` must have shape (n_heads, d_in, d_head), got {w_val.shape}")
        d_head = w_val.shape[2]
        w_out = as_float_array(w_out, "w_out")
        if w_out.ndim != 2:
            raise ShapeError(f"`w_out` must have shape (n_heads * d_head, d_out), got {w_out.shape}")
        d_out = w_out.shape[1]
        self.w_qry = w_qry
        self.w_key = _weight(w_key, "w_key", (n_heads, d_in, d_k))
        self.w_key_hat = _weight(w_key_hat, "w_key_hat", (n_heads, d_p, d_k))
        self.u = _weight(u, "u", (n_heads, d_k))
        self.v = _weight(v, "v", (n_heads, d_k))
        self.w_val = _weight(w_val, "w_val", (n_heads, d_in, d_head))
        self.w_out = _weight(w_out, "w_out", (n_heads * d_head, d_out))
        self.b_out = _weight(b_out, "b_out", (d_out,))
        if n_heads < 1 or d_in < 1 or d_out < 1:
            raise ShapeError(
                f"n_heads, d_in and d_out must be >= 1, got {n_heads}, {d_in}, {d_out}"
            )

        if isinstance(encoding, str):
            if encoding not in _ENCODINGS:
                raise ParameterValueError(
                    f"`encoding` must be 'quadratic', 'anisotropic' or a callable, got {encoding!r}"
                )
            # d_p = D + 1 (quadratic) or D(D + 3)/2 (anisotropic)
            dims = {"quadratic": lambda dd: dd + 1, "anisotropic": lambda dd: dd * (dd + 3) // 2}
            d_of = dims[encoding]
            inferred = next((dd for dd in range(1, d_p + 1) if d_of(dd) == d_p), None)
            if inferred is None:
                raise ShapeError(
                    f"the {encoding} encoding has d_p = {d_of(1)}, {d_of(2)}, {d_of(3)}, ... "
                    f"for 1, 2, 3, ... dimensions, but `w_key_hat` has d_p = {d_p}"
                )
            if ndim is not None and as_int(ndim, "ndim", minimum=1) != inferred:
                raise ShapeError(
                    f"the {encoding} encoding in {ndim} dimensions has d_p = {d_of(ndim)}, "
                    f"but `w_key_hat` has d_p = {d_p}"
                )
            self.ndim = inferred
            self._encode: Encoding = _ENCODINGS[encoding]
        elif callable(encoding):
            if ndim is None:
                raise ParameterValueError("`ndim` is required with a callable encoding")
            self.ndim = as_int(ndim, "ndim", minimum=1)
            self._encode = encoding
        else:
            raise ParameterTypeError(
                "`encoding` must be 'quadratic', 'anisotropic' or a callable, "
                f"got {type(encoding).__name__}"
            )
        self.encoding = encoding
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not float(beta) >= 0:
            raise ParameterValueError(f"`beta` must be a real number in [0, inf], got {beta!r}")
        self.beta = float(beta)
        self.memory_budget = as_int(memory_budget, "memory_budget", minimum=1)
        self.last_path: str | None = None

    # ------------------------------------------------------------------ properties
    @property
    def n_heads(self) -> int:
        return self.w_qry.shape[0]

    @property
    def d_in(self) -> int:
        return self.w_qry.shape[1]

    @property
    def d_k(self) -> int:
        return self.w_qry.shape[2]

    @property
    def d_p(self) -> int:
        return self.w_key_hat.shape[1]

    @property
    def d_head(self) -> int:
        return self.w_val.shape[2]

    @property
    def d_out(self) -> int:
        return self.w_out.shape[1]

    @property
    def has_content_terms(self) -> bool:
        """Whether any score term depends on the input (terms 1–3 not all zero)."""
        qry = bool(np.any(self.w_qry))
        key = bool(np.any(self.w_key))
        return (qry and key) or (qry and bool(np.any(self.w_key_hat))) or (key and bool(np.any(self.u)))

    def astype(self, dtype: type | np.dtype) -> MultiHeadSelfAttention:
        """A copy with every weight cast to ``dtype`` (``float32`` or ``float64``)."""
        dt = np.dtype(dtype)
        if dt.kind != "f":
            raise ParameterTypeError(f"`dtype` must be a floating type, got {dt}")
        w = [a.astype(dt) for a in (self.w_qry, self.w_key, self.w_key_hat, self.u, self.v,
                                    self.w_val, self.w_out, self.b_out)]
        return MultiHeadSelfAttention(*w, encoding=self.encoding, ndim=self.ndim, beta=self.beta,
                                      memory_budget=self.memory_budget)

    # ------------------------------------------------------------------ structure
    def position_coefficients(self) -> np.ndarray:
        """``c^(h) = Ŵ_key^(h) v^(h)``: term 4 is ``c^(h) · r_δ``.

        Returns
        -------
        ndarray, shape ``(n_heads, d_p)``
        """
        return np.einsum("hpk,hk->hp", self.w_key_hat, self.v)

    def axis_coefficients(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Per-axis form of term 4, ``c^(h)·r_δ = Σ_i (a_{h,i} δ_i² + b_{h,i} δ_i)``.

        Returns
        -------
        (a, b) : tuple of ndarray, each of shape ``(n_heads, ndim)``, or None
            None when term 4 is not a sum of per-axis functions of the offset:
            a callable encoding, or the anisotropic encoding with a non-zero
            cross coefficient ``δ_iδ_j``.

        Examples
        --------
        >>> from attn_expressivity import conv_to_mhsa
        >>> layer = conv_to_mhsa(np.ones((1, 3, 1, 1)), alpha=2.0).mhsa
        >>> a, b = layer.axis_coefficients()
        >>> a[0].tolist(), b[0].tolist()          # Δ = (0, -1): -2δ_1² - 2δ_2² - 4δ_2
        ([-2.0, -2.0], [-0.0, -4.0])
        """
        if callable(self.encoding):
            return None
        c = self.position_coefficients()                                     # (H, d_p)
        D = self.ndim
        if self.encoding == "quadratic":
            # c_0‖δ‖² + Σ_i c_i δ_i = Σ_i (c_0 δ_i² + c_i δ_i)
            return np.repeat(c[:, :1], D, axis=1), c[:, 1:]
        if np.any(c[:, 2 * D:]):                                            # cross terms δ_iδ_j
            return None
        return c[:, D:2 * D], c[:, :D]

    def _not_separable_reason(self) -> str | None:
        if callable(self.encoding):
            return "its encoding is a callable, which is not known to split over the axes"
        if self.has_content_terms:
            return "it has content terms (w_qry, w_key and u are not all zero)"
        if self.axis_coefficients() is None:
            return "its anisotropic encoding has non-zero cross coefficients (a non-diagonal Σ⁻¹)"
        return None

    @property
    def is_separable(self) -> bool:
        """Whether every head's score is a sum of per-axis functions of the offset.

        True for the quadratic encoding, and for the anisotropic encoding with
        zero cross coefficients, when no content term is present.
        """
        return self._not_separable_reason() is None

    def select_path(self, path: str = "auto") -> str:
        """The path a call with ``path`` runs: ``"dense"`` or ``"separable"``.

        Parameters
        ----------
        path : {"auto", "dense", "separable"}
            ``"auto"`` picks ``"separable"`` when :attr:`is_separable`, else ``"dense"``.

        Returns
        -------
        str

        Raises
        ------
        ParameterTypeError
            ``path`` not a string.
        ParameterValueError
            ``path`` not one of :data:`PATHS`.
        NotSeparableError
            ``path="separable"`` for a layer that is not separable (the message says why).

        Examples
        --------
        >>> from attn_expressivity import conv_to_mhsa
        >>> layer = conv_to_mhsa(np.ones((3, 3, 1, 1)), alpha=5.0).mhsa
        >>> layer.select_path(), layer.select_path("dense")
        ('separable', 'dense')
        """
        if not isinstance(path, str):
            raise ParameterTypeError(f"`path` must be one of {PATHS}, got {type(path).__name__}")
        if path not in PATHS:
            raise ParameterValueError(f"`path` must be one of {PATHS}, got {path!r}")
        if path == "dense":
            return path
        reason = self._not_separable_reason()
        if path == "auto":
            return "dense" if reason else "separable"
        if reason:
            raise NotSeparableError(
                "path='separable' needs scores that are sums of per-axis functions of the "
                f"offset (quadratic or diagonal anisotropic encoding, no content terms); "
                f"this layer is not separable: {reason}. Use path='dense' or 'auto'"
            )
        return path

    # ------------------------------------------------------------------ evaluation
    def __call__(self, x: np.ndarray, *, path: str = "auto") -> np.ndarray:
        """Attend over all tokens of ``x``.

        Parameters
        ----------
        x : ndarray, shape ``(*batch, *spatial, d_in)``
            ``len(spatial) == self.ndim``; real floating point, finite.
        path : {"auto", "dense", "separable"}, optional
            ``"dense"``: the general chunked ``O(n²)`` computation.
            ``"separable"``: ``ndim`` successive one-dimensional attentions (module
            docstring), for separable layers only. ``"auto"`` (default): the
            separable path when :attr:`is_separable`, else the dense one. The path
            that ran is stored in :attr:`last_path`.

        Returns
        -------
        ndarray, shape ``(*batch, *spatial, d_out)``
            In the result dtype of ``x`` and the weights (float64 for float64
            weights; a layer from :meth:`astype` ``(float32)`` on float32 input
            computes in float32).

        Raises
        ------
        ShapeError, ParameterTypeError, NonFiniteError
            A bad input array; scores or outputs that overflow the floating-point range.
        ParameterValueError, NotSeparableError
            As for :meth:`select_path`.
        """
        x = self._check_input(x)
        chosen = self.select_path(path)
        nd = self.ndim
        spatial = x.shape[x.ndim - nd - 1:-1]
        batch = x.shape[: x.ndim - nd - 1]
        n = math.prod(spatial)
        dtype = np.result_type(x, self.w_val, self.w_out, self.v, self.w_key_hat)
        # values near the top of the float range may overflow in the products; that is
        # detected on the output below and reported as an error, not as a warning
        with np.errstate(over="ignore", invalid="ignore"):
            if chosen == "separable":
                out = self._separable(x.reshape((-1,) + spatial + (self.d_in,)), spatial, dtype)
            else:
                flat = x.reshape((-1, n, self.d_in))
                out = np.empty((flat.shape[0], n, self.d_out), dtype=dtype)
                axis = None if self.has_content_terms else self.axis_coefficients()
                if axis is not None:         # the weights do not depend on the image: all at once
                    out[...] = self._dense_positional(flat, spatial, axis, dtype)
                else:
                    for b in range(flat.shape[0]):
                        out[b] = self._dense(flat[b], spatial)
        if not np.isfinite(out).all():
            raise NonFiniteError(
                f"the attention output overflowed the {np.dtype(dtype).name} range (max |x| = "
                f"{float(np.abs(x).max()):.3e}); rescale the input or the value weights"
            )
        self.last_path = chosen
        return out.reshape(batch + spatial + (self.d_out,))

    def _check_input(self, x: object) -> np.ndarray:
        x = as_float_array(x, "x")
        if x.ndim < self.ndim + 1:
            raise ShapeError(
                f"`x` must have shape (*batch, *spatial, d_in) with {self.ndim} spatial axes, "
                f"got shape {x.shape}"
            )
        if x.shape[-1] != self.d_in:
            raise ShapeError(f"channel mismatch: the layer expects d_in = {self.d_in}, `x` has {x.shape[-1]}")
        if any(s < 1 for s in x.shape[x.ndim - self.ndim - 1:-1]):
            raise ShapeError(f"spatial axes of `x` must be >= 1, got shape {x.shape}")
        return x

    def chunk_size(self, n_keys: int, *, positional: bool = False) -> int:
        """Queries per chunk so that one chunk's scratch fits :attr:`memory_budget`.

        Parameters
        ----------
        n_keys : int
            Keys per query (the number of pixels).
        positional : bool, optional
            True for the dense path of a layer without content terms and with a
            per-axis encoding, which holds one head's ``(chunk, n_keys)`` weights
            plus one temporary of that size; False for the general dense path,
            which holds all heads' scores and the encoded offsets of the chunk.

        Returns
        -------
        int
            In ``[1, n_keys]``.
        """
        n_keys = as_int(n_keys, "n_keys", minimum=1)
        if positional:
            per_query = 8 * n_keys * 2
        else:
            per_query = 8 * n_keys * (self.d_p + self.ndim + 3 * self.n_heads)
        return max(1, min(n_keys, self.memory_budget // per_query))

    @staticmethod
    def _axis_scores(a: float, b: float, size: int, dtype: np.dtype) -> np.ndarray:
        """``T[q, k] = f(k − q) = a (k − q)² + b (k − q)`` for ``q, k < size``; shape ``(size, size)``.

        Each entry is ``fl(fl(a t²) + fl(b t))`` with ``t²`` exact: a length-2
        inner product. Raises NonFiniteError when an entry overflows.
        """
        t = np.arange(-(size - 1), size).astype(dtype)                      # offsets k − q
        with np.errstate(over="ignore", invalid="ignore"):
            g = dtype.type(a) * (t * t) + dtype.type(b) * t                 # (2 size − 1,)
        if not np.isfinite(g).all():
            raise NonFiniteError(
                "attention scores overflowed the floating-point range; scale the score "
                "weights down and use `beta` for the inverse temperature"
            )
        # row q is g[size − 1 − q : 2 size − 1 − q], i.e. window size − 1 − q
        return sliding_window_view(g, size)[::-1]

    def _axis_weights(self, a: float, b: float, size: int, dtype: np.dtype) -> np.ndarray:
        """One axis' softmax matrix ``P[q, k] = softmax_k(β f(k − q))``, shape ``(size, size)``.

        Entries below the smallest normal number are flushed to zero (products
        with subnormal numbers are slow); see :func:`_exp_floor`.
        """
        p = stable_softmax(np.array(self._axis_scores(a, b, size, dtype)), self.beta)
        p[p < np.finfo(dtype).tiny] = 0.0
        return p

    def _separable(self, x: np.ndarray, spatial: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """``x`` of shape ``(B, *spatial, d_in)``; returns ``(B, n, d_out)``.

        Head ``h`` is ``P^(1) ⊗ … ⊗ P^(D)`` applied to ``x W^(h)`` with
        ``W^(h) = W_val^(h) W_out^(h)``: one contraction of length ``L_i`` per
        axis (module docstring). The channel map ``W^(h)`` acts on the last axis
        and the ``P^(i)`` on spatial axes, so they commute, and heads that share
        factors share work: the last spatial axis is contracted once per distinct
        factor (on ``x``), each head's channel map is applied and the results are
        summed over heads that share the factors of the remaining axes, and those
        axes are then contracted once per group. For a convolution's ``K^D``
        heads this is ``K + K^(D−1) + … + K`` contractions instead of ``D K^D``.
        Grouping keeps one ``(B, n, d_out)`` array per group; when that would
        exceed ``max(memory_budget, 8 arrays)`` the heads run one at a time.
        """
        a, b = self.axis_coefficients()
        H, dh, D = self.n_heads, self.d_head, len(spatial)
        B, n = x.shape[0], math.prod(spatial)
        d_in, d_out = self.d_in, self.d_out
        w_out = self.w_out.reshape(H, dh, d_out)
        cache: dict[tuple[float, float, int], np.ndarray] = {}

        def factor(h: int, i: int) -> tuple[float, float, int]:
            key = (float(a[h, i]), float(b[h, i]), spatial[i])
            if key not in cache:
                cache[key] = self._axis_weights(*key, dtype).astype(dtype, copy=False)
            return key

        def contract(arr: np.ndarray, i: int, key: tuple[float, float, int]) -> np.ndarray:
            # Σ_{k_i} P^(i)[q_i, k_i] arr[..., k_i, ...]: a length-L_i convex combination
            pre = B * math.prod(spatial[:i])
            post = math.prod(spatial[i + 1:]) * arr.shape[-1]
            return np.matmul(cache[key], arr.reshape(pre, spatial[i], post)).reshape(arr.shape)

        def channels(z: np.ndarray, h: int) -> np.ndarray:                  # z W_val^(h) W_out^(h)
            if dh * (d_in + d_out) <= d_in * d_out:
                return (z @ self.w_val[h]) @ w_out[h]
            return z @ (self.w_val[h] @ w_out[h])

        keys = [[factor(h, i) for i in range(D)] for h in range(H)]
        prefixes = {tuple(k[:-1]) for k in keys}
        array_bytes = B * n * max(d_in, d_out) * np.dtype(dtype).itemsize
        x = x.reshape((B,) + spatial + (d_in,))
        if (len(prefixes) + 1) * array_bytes > max(self.memory_budget, 8 * array_bytes):
            out = np.zeros((B,) + spatial + (d_out,), dtype=dtype)
            for h in range(H):
                y = channels(contract(x, D - 1, keys[h][-1]), h)
                for i in range(D - 2, -1, -1):
                    y = contract(y, i, keys[h][i])
                out += y
            return out.reshape(B, n, d_out) + self.b_out
        by_last: dict[tuple[float, float, int], list[int]] = {}
        for h in range(H):
            by_last.setdefault(keys[h][-1], []).append(h)
        partial: dict[tuple, np.ndarray] = {}          # keyed by the factors of axes 0 … D−2
        for key, heads in by_last.items():
            z = contract(x, D - 1, key)                                     # (B, *spatial, d_in)
            for h in heads:
                prefix = tuple(keys[h][:-1])
                if prefix in partial:
                    partial[prefix] += channels(z, h)
                else:
                    partial[prefix] = channels(z, h)                        # (B, *spatial, d_out)
        for i in range(D - 2, -1, -1):
            merged: dict[tuple, np.ndarray] = {}
            for prefix, arr in partial.items():
                y = contract(arr, i, prefix[i])
                if prefix[:i] in merged:
                    merged[prefix[:i]] += y
                else:
                    merged[prefix[:i]] = y
            partial = merged
        return partial[()].reshape(B, n, d_out) + self.b_out

    def _dense_positional(self, x: np.ndarray, spatial: tuple[int, ...],
                          axis: tuple[np.ndarray, np.ndarray], dtype: np.dtype) -> np.ndarray:
        """Dense path without content terms, weights from per-axis tables; ``(B, n, d_in) -> (B, n, d_out)``.

        The weight of query ``q`` and key ``k`` is ``Π_i E_i[q_i, k_i]`` with
        ``E_i = exp(β T_i)`` and ``T_i = f_i − rowmax f_i <= 0``: in exact
        arithmetic ``exp(β(A_{q,k} − c_q))`` with ``c_q`` the row maximum of the
        scores (a per-query constant, which softmax ignores), so the target's
        weight is exactly ``1``. Every one of the ``n × n`` weights is formed
        (one broadcast product per chunk of queries, the ``O(n²)`` part) and the
        ``exp`` runs on the small per-axis tables only. The weights are not
        normalised in place: the row sum comes out of the same matrix product as
        the weighted values (a column of ones appended to them) and the
        ``(chunk, d_head)`` result is divided by it.
        """
        a, b = axis
        B, n = x.shape[0], x.shape[1]
        H, dh, D = self.n_heads, self.d_head, self.ndim
        w_out = self.w_out.reshape(H, dh, self.d_out)
        coords = np.indices(spatial).reshape(D, n)                          # (D, n) query coordinates
        beta = self.beta
        floor = _exp_floor(dtype)
        # heads run on up to `workers` threads (numpy's elementwise kernels release the
        # GIL); each thread has its own scratch and accumulator, so the budget is split
        workers = max(1, min(H, _THREADS))
        step = max(1, self.chunk_size(n, positional=True) // workers)

        def run(heads: range) -> np.ndarray:
            out = np.zeros((n, B, self.d_out), dtype=dtype)
            buffer = np.empty(n * step, dtype=dtype)                        # reused by every chunk
            for h in heads:
                tables = []                                                     # key-major: (L_i keys, L_i queries)
                for i, size in enumerate(spatial):
                    t = self._axis_scores(float(a[h, i]), float(b[h, i]), size, dtype)
                    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
                        t = t - t.max(axis=1, keepdims=True)                    # T_i <= 0, row max 0
                        if beta == math.inf:
                            e = (t == 0).astype(dtype)          # the argmax set of each axis
                        elif beta == 0.0:
                            e = np.ones_like(t)
                        else:
                            if beta != 1.0:
                                t *= beta
                            # factors below the normal range are flushed to 0 (each moves
                            # by less than e·tiny); exp never sees a subnormal result
                            e = np.exp(np.maximum(t, floor))
                            e[t < floor] = 0.0
                    tables.append(e.T)                                          # E_i = exp(β T_i)
                vals = np.empty((n, B * dh + 1), dtype=dtype)
                vals[:, :-1] = np.matmul(x, self.w_val[h]).transpose(1, 0, 2).reshape(n, B * dh)
                vals[:, -1] = 1.0                                               # row sums ride along
                for start in range(0, n, step):
                    stop = min(n, start + step)
                    m = stop - start
                    # weights are laid out key-major, s[k_1, …, k_D, q] = Σ_i T_i[q_i, k_i], so the
                    # broadcast sum runs along the long query axis                # (*spatial, m)
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
                    s = s.reshape(n, m)                                         # (n, m) weights
                    acc = s.T @ vals                                            # (m, B d_head + 1)
                    mixed = acc[:, :-1] / acc[:, -1:]                           # convex combinations
                    out[start:stop] += mixed.reshape(m, B, dh) @ w_out[h]       # (m, B, d_out)
            return out

        def run_quietly(heads: range) -> np.ndarray:
            # the caller's errstate does not reach worker threads; overflow is checked
            # on the output by __call__
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
        out += self.b_out
        return out.transpose(1, 0, 2)

    def _dense(self, x: np.ndarray, spatial: tuple[int, ...]) -> np.ndarray:
        """General dense path for one image, ``x`` of shape ``(n, d_in)``; returns ``(n, d_out)``."""
        n = x.shape[0]
        H = self.n_heads
        pos = np.indices(spatial).reshape(self.ndim, n).T                      # (n, D)
        qry = np.any(self.w_qry)
        key = np.any(self.w_key)
        qx = np.matmul(x, self.w_qry) if qry else None                         # (H, n, d_k)
        kx = np.matmul(x, self.w_key) if key else None                         # (H, n, d_k)
        # Term 4 coefficient per head, term 2 per head and query: both multiply r_δ.
        pos_coef = self.position_coefficients()[:, None, :]                    # (H, 1, d_p)
        if qry:
            pos_coef = pos_coef + np.einsum("hnk,hpk->hnp", qx, self.w_key_hat)  # (H, n, d_p)
        key_bias = np.einsum("hnk,hk->hn", kx, self.u)[:, None, :] if key else None  # (H, 1, n)
        values = np.matmul(x, self.w_val)                                      # (H, n, d_head)
        dtype = np.result_type(x, self.w_val, self.v)
        heads = np.empty((n, H, self.d_head), dtype=dtype)
        step = self.chunk_size(n)
        for start in range(0, n, step):
            stop = min(n, start + step)
            rel = pos[None, :, :] - pos[start:stop, None, :]                   # (m, n, D): δ = k - q
            r = np.asarray(self._encode(rel))                                  # (m, n, d_p)
            if r.shape != rel.shape[:-1] + (self.d_p,):
                raise ShapeError(
                    f"the encoding returned shape {r.shape} for offsets of shape {rel.shape}; "
                    f"expected {rel.shape[:-1] + (self.d_p,)}"
                )
            # overflow here is detected just below and reported as an error
            with np.errstate(over="ignore", invalid="ignore"):
                coef = pos_coef if pos_coef.shape[1] == 1 else pos_coef[:, start:stop]
                # scores[h, q, k] = coef[h, q] . r[q, k]                            # (H, m, n)
                if coef.shape[1] == 1:
                    scores = np.matmul(r, coef[:, 0, :].T).transpose(2, 0, 1)
                else:
                    scores = np.matmul(r, coef.transpose(1, 2, 0)).transpose(2, 0, 1)
                scores = np.ascontiguousarray(scores, dtype=dtype)
                if qry and key:
                    scores += np.matmul(qx[:, start:stop], kx.transpose(0, 2, 1))   # term 1
                if key_bias is not None:
                    scores += key_bias                                             # term 3
            if not np.isfinite(scores).all():
                raise NonFiniteError(
                    "attention scores overflowed the floating-point range; scale the score "
                    "weights down and use `beta` for the inverse temperature"
                )
            probs = stable_softmax(scores, self.beta)                          # (H, m, n)
            heads[start:stop] = np.matmul(probs, values).transpose(1, 0, 2)    # (m, H, d_head)
        return heads.reshape(n, H * self.d_head) @ self.w_out + self.b_out
