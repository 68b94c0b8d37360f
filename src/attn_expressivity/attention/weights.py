"""The weights of a multi-head self-attention layer and what can be read off them.

:class:`AttentionWeights` validates the eight weight arrays of the paper's
four-term relative score, the encoding, the inverse temperature and the memory
budget, and derives what the execution paths need: the sizes, the position
coefficients ``c^(h) = Ŵ_key^(h) v^(h)``, their per-axis form when the scores
split over the axes, whether content terms are present, and the chunk size that
keeps a path's scratch within the budget. :class:`~attn_expressivity.MultiHeadSelfAttention`
adds the choice of a path and the call; the paths take the weights only.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .._validation import as_float_array, as_int
from ..errors import ParameterTypeError, ParameterValueError, ShapeError
from .encoding import anisotropic_encoding, quadratic_encoding

__all__ = ["DEFAULT_MEMORY_BUDGET", "AttentionWeights", "ChannelMap", "Encoding"]

#: Default bound, in bytes, on the scratch memory of one chunk of queries (64 MiB).
DEFAULT_MEMORY_BUDGET = 64 * 2**20

Encoding = Callable[[np.ndarray], np.ndarray]

_ENCODINGS: dict[str, tuple[Encoding, Callable[[int], int]]] = {
    # name: (r_δ, d_p as a function of D)
    "quadratic": (quadratic_encoding, lambda dd: dd + 1),
    "anisotropic": (anisotropic_encoding, lambda dd: dd * (dd + 3) // 2),
}


class ChannelMap(NamedTuple):
    """How head ``h``'s channel map ``W_val^(h) W_out^(h)`` is applied to a row ``z``.

    ``matrix`` (``(d_in, d_out)``): ``z M`` in one product, with ``exact`` when
    ``M`` equals ``W_val W_out`` exactly (one of the factors is an identity
    block, so ``M`` is a slice of the other); otherwise ``M = fl(W_val W_out)``.
    ``factors``: ``(z W_val) W_out`` in two products (cheaper when ``d_head`` is
    small against ``d_in`` and ``d_out``).
    """

    matrix: np.ndarray | None
    factors: tuple[np.ndarray, np.ndarray] | None
    exact: bool


def _identity_block(a: np.ndarray) -> bool:
    """Whether ``a`` of shape ``(r, c)`` with ``r <= c`` is ``[I_r | 0]``."""
    r, c = a.shape
    # r ones on the diagonal and r non-zero entries in all: nothing else is non-zero
    return r <= c and bool((np.diagonal(a) == 1).all()) and int(np.count_nonzero(a)) == r


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


class AttentionWeights:
    """The weights of a layer, validated, and the quantities the paths derive from them.

    Constructed with the parameters of :class:`~attn_expressivity.MultiHeadSelfAttention`
    (which documents them); this base class holds no evaluation.
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

    def astype(self, dtype: type | np.dtype):
        """A copy with every weight cast to ``dtype`` (``float32`` or ``float64``)."""
        dt = np.dtype(dtype)
        if dt.kind != "f":
            raise ParameterTypeError(f"`dtype` must be a floating type, got {dt}")
        w = [a.astype(dt) for a in (self.w_qry, self.w_key, self.w_key_hat, self.u, self.v,
                                    self.w_val, self.w_out, self.b_out)]
        return type(self)(*w, encoding=self.encoding, ndim=self.ndim, beta=self.beta,
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

    def channel_maps(self, rows: int, dtype: np.dtype) -> list[ChannelMap]:
        """Per head, how ``W_val^(h) W_out^(h)`` is applied to ``rows`` rows (:class:`ChannelMap`).

        An identity block in either factor makes the map a slice of the other,
        exactly; otherwise the cheaper of one product with ``fl(W_val W_out)``
        (``d_in d_head d_out`` to form it, ``rows d_in d_out`` to apply it) and
        two products (``rows d_head (d_in + d_out)``).
        """
        dh, d_in, d_out = self.d_head, self.d_in, self.d_out
        maps = []
        for h in range(self.n_heads):
            w_val = self.w_val[h].astype(dtype, copy=False)
            w_out = self.w_out[h * dh:(h + 1) * dh].astype(dtype, copy=False)
            if _identity_block(self.w_val[h]):                 # z [I | 0] W_out = z W_out[:d_in]
                maps.append(ChannelMap(np.ascontiguousarray(w_out[:d_in]), None, True))
            elif _identity_block(self.w_out[h * dh:(h + 1) * dh].T):   # W_out = [I; 0]
                maps.append(ChannelMap(np.ascontiguousarray(w_val[:, :d_out]), None, True))
            elif d_in * dh * d_out + rows * d_in * d_out <= rows * dh * (d_in + d_out):
                maps.append(ChannelMap(w_val @ w_out, None, False))
            else:
                maps.append(ChannelMap(None, (w_val, w_out), False))
        return maps

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
