"""The multi-head self-attention layer with the paper's four-term relative positional score.

For head ``h``, query token ``q`` and key token ``k`` (``δ = k − q``), row-vector
convention, the score is the paper's four-term Transformer-XL form
(the paper's §2; docs/guide.md §1):

.. math::
    A^{(h)}_{q,k} = (x_q W_{qry}^{(h)}) \\cdot (x_k W_{key}^{(h)})
                  + (x_q W_{qry}^{(h)}) \\cdot (r_\\delta \\hat W_{key}^{(h)})
                  + u^{(h)} \\cdot (x_k W_{key}^{(h)})
                  + v^{(h)} \\cdot (r_\\delta \\hat W_{key}^{(h)})

with no ``1/√d_k`` scaling (as in the paper). The output is
``MHSA(X)_q = b_out + concat_h[softmax(β A^(h))_q X W_val^(h)] W_out``, where
``β`` is an inverse temperature (1 by default; ``β = ∞`` is the hard-attention
limit: uniform weight on the maximal scores).

This module holds the weights, what can be read off them (the position
coefficients, whether the scores split over the axes) and the choice of an
execution path; each path lives in a module of its own and computes the same
function exactly:

* :mod:`~attn_expressivity.attention.dense`: every score of a chunk of queries
  against all keys, any encoding, content terms included (``O(n²)`` per head);
* :mod:`~attn_expressivity.attention.positional`: no content terms and a
  per-axis score; the ``n × n`` weights from per-axis ``exp`` tables;
* :mod:`~attn_expressivity.attention.separable`: the same layers as ``D``
  successive one-dimensional attentions (``O(n Σ_i L_i)`` per head).

``path="auto"`` (the default) runs the separable path when it applies and the
dense path otherwise; :meth:`MultiHeadSelfAttention.select_path` says which, and
:attr:`MultiHeadSelfAttention.last_path` records the path of the last call
(``"dense"`` covers both dense modules).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np

from .._validation import as_float_array, as_int
from ..errors import (
    NonFiniteError,
    NotSeparableError,
    ParameterTypeError,
    ParameterValueError,
    ShapeError,
)
from .dense import attend_dense
from .encoding import anisotropic_encoding, quadratic_encoding
from .positional import attend_positional
from .separable import attend_separable

__all__ = ["MultiHeadSelfAttention", "DEFAULT_MEMORY_BUDGET", "PATHS"]

#: Default bound, in bytes, on the scratch memory of one chunk of queries (64 MiB).
DEFAULT_MEMORY_BUDGET = 64 * 2**20

#: The values of ``path`` accepted by :meth:`MultiHeadSelfAttention.__call__`.
PATHS = ("auto", "dense", "separable")

Encoding = Callable[[np.ndarray], np.ndarray]

_ENCODINGS: dict[str, tuple[Encoding, Callable[[int], int]]] = {
    # name: (r_δ, d_p as a function of D)
    "quadratic": (quadratic_encoding, lambda dd: dd + 1),
    "anisotropic": (anisotropic_encoding, lambda dd: dd * (dd + 3) // 2),
}


def _weight(value: object, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    arr = as_float_array(value, name)
    if arr.ndim != len(shape) or any(s is not None and a != s for a, s in zip(arr.shape, shape)):
        want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
        raise ShapeError(f"`{name}` must have shape {want}, got {arr.shape}")
    return arr


def _resolve_encoding(encoding: object, d_p: int, ndim: object) -> tuple[Encoding, int]:
    """The encoding function and the number of spatial axes ``D`` it implies."""
    if isinstance(encoding, str):
        if encoding not in _ENCODINGS:
            raise ParameterValueError(
                f"`encoding` must be 'quadratic', 'anisotropic' or a callable, got {encoding!r}"
            )
        encode, d_of = _ENCODINGS[encoding]
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
        return encode, inferred
    if callable(encoding):
        if ndim is None:
            raise ParameterValueError("`ndim` is required with a callable encoding")
        return encoding, as_int(ndim, "ndim", minimum=1)
    raise ParameterTypeError(
        "`encoding` must be 'quadratic', 'anisotropic' or a callable, "
        f"got {type(encoding).__name__}"
    )


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
        ``d_p = D(D + 3)/2`` (:func:`attn_expressivity.attention.encoding.anisotropic_encoding`).
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
        self.encode, self.ndim = _resolve_encoding(encoding, d_p, ndim)
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
            ``"separable"``: ``ndim`` successive one-dimensional attentions
            (:mod:`~attn_expressivity.attention.separable`), for separable layers only. ``"auto"`` (default): the
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
                out = attend_separable(self, x.reshape((-1,) + spatial + (self.d_in,)), spatial, dtype)
            else:
                flat = x.reshape((-1, n, self.d_in))
                out = np.empty((flat.shape[0], n, self.d_out), dtype=dtype)
                axis = None if self.has_content_terms else self.axis_coefficients()
                if axis is not None:         # the weights do not depend on the image: all at once
                    out[...] = attend_positional(self, flat, spatial, axis, dtype)
                else:
                    for b in range(flat.shape[0]):
                        out[b] = attend_dense(self, flat[b], spatial)
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
