"""Every kind of attention layer the analysis reads, in one common form.

:class:`Reading` holds what the statistics and the nearest convolution need:
the positional score of each head as a function of query and key positions,
the content score (if any) as a function of the input, the value and output
blocks ``W_val^(h)``, ``W_out^(h)``, the biases, the quadratic forms of the
positional scores when they are quadratic, and the layer's own forward pass.

* :func:`read_mhsa`: the package's :class:`~attn_expressivity.MultiHeadSelfAttention`
  (and, through their ``as_attention()`` method, the learned layers of
  :mod:`attn_expressivity.learn`);
* :func:`read_coefficients`: positional score coefficients of named components
  (no values: statistics only);
* :func:`read_torch_multihead`: a ``torch.nn.MultiheadAttention`` with an
  additive positional mask over a grid (torch imported only here, and only
  when such a module is given).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import as_float_array, as_int
from ..attention.layer import MultiHeadSelfAttention
from ..errors import (
    ParameterTypeError,
    ParameterValueError,
    ShapeError,
    UnsupportedConfigurationError,
)
from .forms import QuadraticForms, forms_from_coefficients

__all__ = ["Reading", "grid_from_tokens", "read_coefficients", "read_mhsa", "read_torch_multihead"]

# positional score of every head for queries (nq, D) and keys (n, D) positions: (H, nq, n)
Positional = Callable[[np.ndarray, np.ndarray], np.ndarray]
# content score of every head for one image's tokens (n, d_in), the query indices (nq,) and
# the query and key positions: (H, nq, n)
Content = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Reading:
    """A layer in the form the analysis works with (see the module docstring).

    ``w_val`` ``(H, d_in, d_head)``, ``w_out`` ``(H, d_head, d_out)``, ``b_out``
    ``(d_out,)`` and ``b_val`` ``(H, d_head)`` (value bias, e.g. PyTorch's) are
    None for a reading without values. ``forward`` maps an image
    ``(*batch, *spatial, d_in)`` to the layer's output ``(*batch, *spatial, d_out)``.
    """

    kind: str
    n_heads: int
    ndim: int
    positional: Positional
    beta: float = 1.0
    content: Content | None = None
    forms: QuadraticForms | None = None
    w_val: np.ndarray | None = None
    w_out: np.ndarray | None = None
    b_out: np.ndarray | None = None
    b_val: np.ndarray | None = None
    forward: Callable[[np.ndarray], np.ndarray] | None = None
    mhsa: MultiHeadSelfAttention | None = None
    grid: tuple[int, ...] | None = None
    notes: list[str] = field(default_factory=list)

    def head_maps(self) -> np.ndarray | None:
        """``W_val^(h) W_out^(h)`` of every head, ``(H, d_in, d_out)`` (Lemma 1 read backwards)."""
        if self.w_val is None or self.w_out is None:
            return None
        return np.einsum("hij,hjo->hio", self.w_val.astype(np.float64), self.w_out.astype(np.float64))

    def bias(self) -> np.ndarray | None:
        """The bias of the output: ``b_out + Σ_h b_val^(h) W_out^(h)`` (weights of a row sum to 1)."""
        if self.b_out is None:
            return None
        out = self.b_out.astype(np.float64).copy()
        if self.b_val is not None:
            out += np.einsum("hj,hjo->o", self.b_val, self.w_out.astype(np.float64))
        return out


def grid_from_tokens(n_tokens: int, grid: object = None) -> tuple[int, ...]:
    """The spatial shape of ``n_tokens`` tokens in raster order: ``grid``, or the square side.

    Raises
    ------
    ShapeError
        ``grid`` whose product is not ``n_tokens``; no ``grid`` and a token count
        that is not a perfect square.

    Examples
    --------
    >>> grid_from_tokens(16), grid_from_tokens(12, (3, 4))
    ((4, 4), (3, 4))
    """
    if grid is not None:
        g = _grid(grid)
        if math.prod(g) != n_tokens:
            raise ShapeError(f"`grid` {g} holds {math.prod(g)} tokens, but the layer has {n_tokens}")
        return g
    side = math.isqrt(n_tokens)
    if side * side != n_tokens:
        raise ShapeError(
            f"{n_tokens} tokens do not form a square grid; pass `grid` (e.g. grid=(h, w) with "
            f"h * w = {n_tokens})"
        )
    return (side, side)


def _grid(grid: object) -> tuple[int, ...]:
    if isinstance(grid, (int, np.integer)) or not isinstance(grid, (Sequence, np.ndarray)) or isinstance(grid, str):
        raise ParameterTypeError(f"`grid` must be a sequence of ints (the spatial shape), got {grid!r}")
    g = tuple(as_int(s, f"grid[{i}]", minimum=1) for i, s in enumerate(grid))
    if not g:
        raise ShapeError("`grid` must have at least one axis, got ()")
    return g


def _relative(encode: Callable[[np.ndarray], np.ndarray], c: np.ndarray, beta_scale: float) -> Positional:
    """Positional scores ``c^(h) · r_{k−q}`` from an encoding and per-head coefficients ``(H, d_p)``."""
    def scores(q_pos: np.ndarray, k_pos: np.ndarray) -> np.ndarray:
        rel = k_pos[None, :, :] - q_pos[:, None, :]                        # (nq, n, D): δ = k − q
        r = np.asarray(encode(rel), dtype=np.float64)                      # (nq, n, d_p)
        return np.einsum("qkp,hp->hqk", r, c) * beta_scale                  # (H, nq, n)
    return scores


def read_mhsa(mhsa: MultiHeadSelfAttention, kind: str = "mhsa") -> Reading:
    """The reading of a package layer: term 4 positional, terms 1–3 content."""
    c = mhsa.position_coefficients().astype(np.float64)                    # (H, d_p)
    D = mhsa.ndim
    forms = None
    if isinstance(mhsa.encoding, str):
        if mhsa.encoding == "quadratic":
            forms, _ = forms_from_coefficients(c, ["sq"] + [f"d{i}" for i in range(D)], D)
        else:                                           # anisotropic: (δ, δ_i², δ_iδ_j)
            i, j = np.triu_indices(D, k=1)
            names = ([f"d{a}" for a in range(D)] + [f"d{a}^2" for a in range(D)]
                     + [f"d{a}*d{b}" for a, b in zip(i, j)])
            forms, _ = forms_from_coefficients(c, names, D)
    content = _mhsa_content(mhsa) if mhsa.has_content_terms else None
    H, dh = mhsa.n_heads, mhsa.d_head
    return Reading(
        kind=kind, n_heads=H, ndim=D, positional=_relative(mhsa.encode, c, 1.0), beta=mhsa.beta,
        content=content, forms=forms, w_val=mhsa.w_val, w_out=mhsa.w_out.reshape(H, dh, mhsa.d_out),
        b_out=mhsa.b_out, forward=lambda x: mhsa(x), mhsa=mhsa,
    )


def _mhsa_content(mhsa: MultiHeadSelfAttention) -> Content:
    """Terms 1–3 of the four-term score (term 4 is the positional part)."""
    def scores(tokens: np.ndarray, q_idx: np.ndarray, q_pos: np.ndarray, k_pos: np.ndarray) -> np.ndarray:
        x = tokens.astype(np.float64)
        qry = np.einsum("nd,hdk->hnk", x[q_idx], mhsa.w_qry)               # (H, nq, d_k)
        key = np.einsum("nd,hdk->hnk", x, mhsa.w_key)                      # (H, n, d_k)
        rel = k_pos[None, :, :] - q_pos[:, None, :]
        r = np.asarray(mhsa.encode(rel), dtype=np.float64)                 # (nq, n, d_p)
        rw = np.einsum("qkp,hpd->hqkd", r, mhsa.w_key_hat)                 # (H, nq, n, d_k)
        out = np.einsum("hqd,hkd->hqk", qry, key)                          # term 1
        out += np.einsum("hqd,hqkd->hqk", qry, rw)                         # term 2
        out += np.einsum("hd,hkd->hk", mhsa.u, key)[:, None, :]            # term 3
        return out
    return scores


def read_coefficients(coefficients: object, components: Sequence[str] | None,
                      ndim: int | None = None) -> Reading:
    """The reading of positional coefficients of named components (no values)."""
    coef = as_float_array(coefficients, "coefficients")
    if coef.ndim != 2:
        raise ShapeError(f"`coefficients` must have shape (n_heads, n_components), got {coef.shape}")
    if components is None:                              # the quadratic encoding's order
        D = coef.shape[1] - 1 if ndim is None else ndim
        components = ["sq"] + [f"d{i}" for i in range(D)]
    forms, D = forms_from_coefficients(coef, components, ndim)
    P, b = forms

    def scores(q_pos: np.ndarray, k_pos: np.ndarray) -> np.ndarray:
        rel = (k_pos[None, :, :] - q_pos[:, None, :]).astype(np.float64)   # (nq, n, D)
        quad = np.einsum("qki,hij,qkj->hqk", rel, P, rel)
        return np.einsum("hi,qki->hqk", b, rel) - quad

    return Reading(kind="coefficients", n_heads=coef.shape[0], ndim=D, positional=scores, forms=forms)


def read_torch_multihead(module: Any, mask: object, grid: object = None) -> Reading:
    """The reading of a ``torch.nn.MultiheadAttention`` with an additive positional mask.

    The mask is the positional score ``(n, n)`` (every head) or ``(n_heads, n, n)``
    over the ``n`` tokens of a grid in raster order; the module's query and
    key projections are the content score (``(x_q W_q + b_q)·(x_k W_k + b_k)/√d_head``).
    """
    import torch

    if not getattr(module, "_qkv_same_embed_dim", False):
        raise UnsupportedConfigurationError("only self-attention with kdim = vdim = embed_dim is read")
    if module.bias_k is not None or module.add_zero_attn:
        raise UnsupportedConfigurationError("add_bias_kv and add_zero_attn are not read")
    H, E = module.num_heads, module.embed_dim
    dh = E // H
    m = _torch_mask(mask, H)
    n = m.shape[-1]
    grid = grid_from_tokens(n, grid)
    D = len(grid)
    w = module.in_proj_weight.detach().to(torch.float64).numpy()           # (3E, E)
    bias = (module.in_proj_bias.detach().to(torch.float64).numpy() if module.in_proj_bias is not None
            else np.zeros(3 * E))
    wq, wk, wv = (w[i * E:(i + 1) * E].T.reshape(E, H, dh).transpose(1, 0, 2) for i in range(3))
    bq, bk, bv = (bias[i * E:(i + 1) * E].reshape(H, dh) for i in range(3))
    wo = module.out_proj.weight.detach().to(torch.float64).numpy().T.reshape(H, dh, E)
    bo = (module.out_proj.bias.detach().to(torch.float64).numpy() if module.out_proj.bias is not None
          else np.zeros(E))
    positions = np.indices(grid).reshape(D, n).T

    def positional(q_pos: np.ndarray, k_pos: np.ndarray) -> np.ndarray:
        qi = np.ravel_multi_index(tuple(q_pos.T), grid)                    # tokens in raster order
        ki = np.ravel_multi_index(tuple(k_pos.T), grid)
        return m[:, qi][:, :, ki]

    content = None
    if np.any(wq) or np.any(bq):
        if np.any(wk):
            scale = 1.0 / math.sqrt(dh)

            def content(tokens, q_idx, q_pos, k_pos):                      # noqa: ARG001
                q = np.einsum("nd,hdk->hnk", tokens[q_idx], wq) + bq[:, None, :]
                k = np.einsum("nd,hdk->hnk", tokens, wk) + bk[:, None, :]
                return np.einsum("hqd,hkd->hqk", q, k) * scale
    return Reading(
        kind="torch_multihead", n_heads=H, ndim=D, positional=positional, content=content,
        forms=_fit_forms(m, positions), w_val=wv, w_out=wo, b_out=bo, b_val=bv,
        forward=_torch_forward(module, m), grid=grid,
    )


def _torch_mask(mask: object, n_heads: int) -> np.ndarray:
    """The additive mask as float64 ``(n_heads, n, n)``."""
    import torch

    if isinstance(mask, torch.Tensor):
        if mask.dtype == torch.bool:
            raise ParameterTypeError(
                "`mask` must be an additive float mask (the positional scores), got a boolean mask"
            )
        mask = mask.detach().to(torch.float64).numpy()
    m = as_float_array(mask, "mask", allow_nonfinite=True).astype(np.float64)
    if np.isnan(m).any() or (m == np.inf).any():
        raise ParameterValueError("`mask` must hold finite values or -inf (a masked key), got NaN or +inf")
    if m.ndim == 2:
        m = np.broadcast_to(m, (n_heads,) + m.shape)
    if m.ndim != 3 or m.shape[0] != n_heads or m.shape[1] != m.shape[2]:
        raise ShapeError(
            f"`mask` must have shape (n, n) or (n_heads, n, n) = ({n_heads}, n, n) over the n tokens "
            f"of the grid, got {np.shape(mask)}"
        )
    if np.isneginf(m).all(axis=-1).any():
        raise ParameterValueError("`mask` masks every key of some query (a row of -inf)")
    return m


def _torch_forward(module: Any, mask: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The module itself, in float64, on images ``(*batch, *spatial, E)``."""
    import copy

    import torch

    double = copy.deepcopy(module).to(torch.float64).eval()
    t_mask = torch.from_numpy(np.ascontiguousarray(mask))

    def forward(x: np.ndarray) -> np.ndarray:
        shape = x.shape
        n = t_mask.shape[-1]
        tokens = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1, n, shape[-1]))
        if not double.batch_first:
            tokens = tokens.transpose(0, 1)
        with torch.no_grad():
            mask_b = t_mask.repeat(tokens.shape[1 if not double.batch_first else 0], 1, 1)
            y, _ = double(tokens, tokens, tokens, attn_mask=mask_b, need_weights=False)
        if not double.batch_first:
            y = y.transpose(0, 1)
        return y.numpy().reshape(shape[:-1] + (y.shape[-1],))
    return forward


def _fit_forms(table: np.ndarray, positions: np.ndarray) -> QuadraticForms | None:
    """The quadratic forms of a translation-invariant quadratic score table, or None.

    A table ``T[h, q, k]`` is read as ``f_h(k − q)`` with ``f_h`` a quadratic
    polynomial when the least-squares fit over every (query, key) pair reproduces
    it to ``1e-9`` of its largest entry.
    """
    if not np.isfinite(table).all():
        return None
    H, n, _ = table.shape
    D = positions.shape[1]
    rel = (positions[None, :, :] - positions[:, None, :]).reshape(-1, D).astype(np.float64)
    i, j = np.triu_indices(D)
    feats = np.concatenate([np.ones((rel.shape[0], 1)), rel, rel[:, i] * rel[:, j]], axis=1)
    coef, *_ = np.linalg.lstsq(feats, table.reshape(H, -1).T, rcond=None)    # (n_feat, H)
    resid = np.abs(feats @ coef - table.reshape(H, -1).T).max()
    if resid > 1e-9 * max(1.0, float(np.abs(table).max())):
        return None
    names = ["const"] + [f"d{a}" for a in range(D)] + [f"d{a}*d{b}" for a, b in zip(i, j)]
    forms, _ = forms_from_coefficients(coef.T, names, D)
    return forms

