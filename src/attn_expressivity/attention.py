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
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np

from ._validation import as_float_array, as_int
from .encoding import quadratic_encoding
from .errors import (
    NonFiniteError,
    ParameterTypeError,
    ParameterValueError,
    ShapeError,
)

__all__ = ["MultiHeadSelfAttention", "DEFAULT_MEMORY_BUDGET", "stable_softmax"]

#: Default bound, in bytes, on the scratch memory of one chunk of queries.
DEFAULT_MEMORY_BUDGET = 64 * 2**20

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
    encoding : "quadratic" or callable, optional
        ``"quadratic"``: ``r_δ = (‖δ‖², δ_1, …, δ_D)`` with ``d_p = D + 1``. A
        callable maps an integer offset array ``(..., D)`` to ``(..., d_p)``.
    ndim : int, optional
        Number of spatial axes ``D``; inferred as ``d_p − 1`` for the quadratic
        encoding, required for a callable.
    beta : float, optional
        Inverse temperature multiplying all scores (default 1; ``inf`` for hard
        attention).
    memory_budget : int, optional
        Bytes of scratch memory per chunk of queries (default
        :data:`DEFAULT_MEMORY_BUDGET`); peak extra memory is about this plus
        ``O(n · n_heads · (d_k + d_head))`` per image, whatever the image size.

    Raises
    ------
    ShapeError
        Weights whose shapes do not fit together.
    ParameterTypeError, ParameterValueError, NonFiniteError
        Non-floating or non-finite weights, a bad encoding, ``beta`` or ``ndim``.

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
            if encoding != "quadratic":
                raise ParameterValueError(
                    f"`encoding` must be 'quadratic' or a callable, got {encoding!r}"
                )
            if d_p < 2:
                raise ShapeError(f"the quadratic encoding needs d_p = ndim + 1 >= 2, got d_p = {d_p}")
            if ndim is not None and as_int(ndim, "ndim", minimum=1) != d_p - 1:
                raise ShapeError(
                    f"the quadratic encoding in {ndim} dimensions has d_p = {ndim + 1}, "
                    f"but `w_key_hat` has d_p = {d_p}"
                )
            self.ndim = d_p - 1
            self._encode: Encoding = quadratic_encoding
        elif callable(encoding):
            if ndim is None:
                raise ParameterValueError("`ndim` is required with a callable encoding")
            self.ndim = as_int(ndim, "ndim", minimum=1)
            self._encode = encoding
        else:
            raise ParameterTypeError(
                f"`encoding` must be 'quadratic' or a callable, got {type(encoding).__name__}"
            )
        self.encoding = encoding
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not float(beta) >= 0:
            raise ParameterValueError(f"`beta` must be a real number in [0, inf], got {beta!r}")
        self.beta = float(beta)
        self.memory_budget = as_int(memory_budget, "memory_budget", minimum=1)

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

    # ------------------------------------------------------------------ evaluation
    def __call__(self, x: np.ndarray, *, path: str = "dense") -> np.ndarray:
        """Attend over all tokens of ``x``.

        Parameters
        ----------
        x : ndarray, shape ``(*batch, *spatial, d_in)``
            ``len(spatial) == self.ndim``; real floating point, finite.
        path : {"dense"}, optional
            The general chunked computation.

        Returns
        -------
        ndarray, shape ``(*batch, *spatial, d_out)``
        """
        x = self._check_input(x)
        if path != "dense":
            raise ParameterValueError(f"`path` must be 'dense', got {path!r}")
        nd = self.ndim
        spatial = x.shape[x.ndim - nd - 1:-1]
        batch = x.shape[: x.ndim - nd - 1]
        n = math.prod(spatial)
        flat = x.reshape((-1, n, self.d_in))
        dtype = np.result_type(x, self.w_val, self.w_out, self.v)
        out = np.empty((flat.shape[0], n, self.d_out), dtype=dtype)
        for b in range(flat.shape[0]):
            out[b] = self._dense(flat[b], spatial)
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

    def chunk_size(self, n_keys: int) -> int:
        """Queries per chunk so that one chunk's scratch fits :attr:`memory_budget`."""
        per_query = 8 * n_keys * (self.d_p + self.ndim + 3 * self.n_heads)
        return max(1, min(n_keys, self.memory_budget // per_query))

    def _dense(self, x: np.ndarray, spatial: tuple[int, ...]) -> np.ndarray:
        """One image, ``x`` of shape ``(n, d_in)``; returns ``(n, d_out)``."""
        n = x.shape[0]
        H = self.n_heads
        pos = np.indices(spatial).reshape(self.ndim, n).T                      # (n, D)
        qry = np.any(self.w_qry)
        key = np.any(self.w_key)
        qx = np.matmul(x, self.w_qry) if qry else None                         # (H, n, d_k)
        kx = np.matmul(x, self.w_key) if key else None                         # (H, n, d_k)
        # Term 4 coefficient per head, term 2 per head and query: both multiply r_δ.
        pos_coef = np.einsum("hpk,hk->hp", self.w_key_hat, self.v)[:, None, :]  # (H, 1, d_p)
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
