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

The weights and what can be read off them (the position coefficients, whether
the scores split over the axes) are :class:`~attn_expressivity.attention.weights.AttentionWeights`;
this module adds the choice of an execution path and the call. Each path lives
in a module of its own and computes the same function exactly:

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

import numpy as np

from ..errors import (
    NonFiniteError,
    NotSeparableError,
    ParameterTypeError,
    ParameterValueError,
    ShapeError,
)
from .dense import attend_dense
from .positional import attend_positional
from .separable import attend_separable
from .weights import DEFAULT_MEMORY_BUDGET, AttentionWeights

__all__ = ["MultiHeadSelfAttention", "DEFAULT_MEMORY_BUDGET", "PATHS"]

#: The values of ``path`` accepted by :meth:`MultiHeadSelfAttention.__call__`.
PATHS = ("auto", "dense", "separable")


class MultiHeadSelfAttention(AttentionWeights):
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
        d_out))`` per image and per worker thread (about four arrays of the
        image's size each, :func:`~attn_expressivity._threads.worker_count`) without content terms and ``O(n · n_heads · (d_k +
        d_head))`` with them; the separable path holds the input and the output
        (its per-axis tables are banded, ``O(m w)``, and its slabs of queries
        share the budget among the worker threads).

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
    def query_positions(self, spatial: tuple[int, ...], queries: object = None) -> tuple[np.ndarray, ...]:
        """The query positions along each axis, as int arrays (all positions for None).

        Parameters
        ----------
        spatial : tuple of int
            The image's spatial shape.
        queries : None or tuple of (slice, range or 1-D int array), one per axis

        Returns
        -------
        tuple of ndarray of int64

        Raises
        ------
        ParameterTypeError, ShapeError, ParameterValueError
            Not a tuple of one slice, range or int array per spatial axis, or a
            position outside the image.
        """
        if queries is None:
            return tuple(np.arange(s) for s in spatial)
        if not isinstance(queries, (tuple, list)) or len(queries) != len(spatial):
            raise ShapeError(f"`queries` must be None or a tuple of {len(spatial)} slices or "
                             f"index arrays (one per spatial axis), got {queries!r}")
        out = []
        for i, (q, size) in enumerate(zip(queries, spatial)):
            if isinstance(q, slice):
                arr = np.arange(size)[q]
            else:
                arr = np.asarray(q)
                if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
                    raise ParameterTypeError(f"`queries[{i}]` must be a slice, a range or a 1-D "
                                             f"integer array, got {type(q).__name__}")
                arr = arr.astype(np.int64)
                if arr.size and (arr.min() < 0 or arr.max() >= size):
                    raise ParameterValueError(f"`queries[{i}]` must lie in [0, {size}), got "
                                              f"positions from {arr.min()} to {arr.max()}")
            out.append(arr.astype(np.int64))
        return tuple(out)

    def __call__(self, x: np.ndarray, *, path: str = "auto", queries: object = None) -> np.ndarray:
        """Attend from the queries (every token by default) over all tokens of ``x``.

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
        queries : tuple, optional
            One slice, range or 1-D integer array per spatial axis: only the
            queries at the product of these positions are computed (all keys
            still take part). None (default): every position.

        Returns
        -------
        ndarray, shape ``(*batch, *query_shape, d_out)``
            ``query_shape`` is ``spatial`` by default. In the result dtype of
            ``x`` and the weights (float64 for float64 weights; a layer from
            :meth:`astype` ``(float32)`` on float32 input computes in float32).

        Raises
        ------
        ShapeError, ParameterTypeError, NonFiniteError
            A bad input array or ``queries``; scores or outputs that overflow the
            floating-point range.
        ParameterValueError, NotSeparableError
            As for :meth:`select_path`; a query outside the image.

        Examples
        --------
        >>> from attn_expressivity import conv_to_mhsa
        >>> layer = conv_to_mhsa(np.ones((3, 1, 1)), alpha=40.0).mhsa
        >>> x = np.arange(6.0).reshape(6, 1)
        >>> np.round(layer(x, queries=(slice(1, 5, 2),))[:, 0], 12).tolist()  # queries 1 and 3
        [3.0, 9.0]
        """
        x = self._check_input(x)
        chosen = self.select_path(path)
        nd = self.ndim
        spatial = x.shape[x.ndim - nd - 1:-1]
        batch = x.shape[: x.ndim - nd - 1]
        qs = self.query_positions(spatial, queries)
        q_shape = tuple(len(q) for q in qs)
        n = math.prod(spatial)
        dtype = np.result_type(x, self.w_val, self.w_out, self.v, self.w_key_hat)
        if math.prod(q_shape) == 0:
            self.last_path = chosen
            return np.zeros(batch + q_shape + (self.d_out,), dtype=dtype)
        # values near the top of the float range may overflow in the products; that is
        # detected on the output below and reported as an error, not as a warning
        with np.errstate(over="ignore", invalid="ignore"):
            if chosen == "separable":
                out = attend_separable(self, x.reshape((-1,) + spatial + (self.d_in,)).astype(dtype, copy=False),
                                       qs, dtype)
            else:
                flat = x.reshape((-1, n, self.d_in))
                axis = None if self.has_content_terms else self.axis_coefficients()
                if axis is not None:         # the weights do not depend on the image: all at once
                    out = attend_positional(self, flat.astype(dtype, copy=False), spatial, qs, axis, dtype)
                else:
                    out = np.empty((flat.shape[0], math.prod(q_shape), self.d_out), dtype=dtype)
                    for b in range(flat.shape[0]):
                        out[b] = attend_dense(self, flat[b], spatial, qs)
        if not np.isfinite(out).all():
            raise NonFiniteError(
                f"the attention output overflowed the {np.dtype(dtype).name} range (max |x| = "
                f"{float(np.abs(x).max()):.3e}); rescale the input or the value weights"
            )
        self.last_path = chosen
        return out.reshape(batch + q_shape + (self.d_out,))
