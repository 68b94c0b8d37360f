"""The ``torch.nn.Module`` classes behind :func:`attn_expressivity.interop.torch.to_torch`.

This module imports torch when it is imported; :mod:`attn_expressivity.interop.torch`
imports it only when a module is built, so the package stays importable without torch.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..convolution.shifts import left_offsets
from ..errors import ParameterTypeError, ShapeError, UnsupportedConfigurationError
from ..theorem.construction import ConvAttention

__all__ = ["ConvAttentionModule", "MultiheadConvAttention", "SDPAConvAttention"]

_TORCH_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
                   "circular": "circular"}


def positional_coefficients(layer: ConvAttention) -> Any:
    """``c^(h) = Ŵ_key^(h) v^(h)``, shape ``(n_heads, d_p)``: the score is ``c^(h) · r_δ``."""
    m = layer.mhsa
    if m.has_content_terms or not (isinstance(m.encoding, str) and m.encoding == "quadratic"):
        raise UnsupportedConfigurationError(
            "to_torch supports layers whose scores are purely positional with the quadratic "
            "encoding (as built by conv_to_mhsa); this layer has content terms or a custom encoding"
        )
    return m.position_coefficients()


class ConvAttentionModule(nn.Module):
    """Pad → positional mask → attention over the kept queries → ``(N, d_out, *out)``.

    The common part of :class:`SDPAConvAttention` and :class:`MultiheadConvAttention`,
    which differ in how they attend (``_attend``).
    """

    def __init__(self, layer: ConvAttention, dtype: Any) -> None:
        super().__init__()
        cfg, m = layer.config, layer.mhsa
        self.config = cfg
        self.ndim = cfg.ndim
        self.n_heads, self.d_head, self.d_in, self.d_out = m.n_heads, m.d_head, m.d_in, m.d_out
        self.beta = float(m.beta)
        self.alpha = layer.alpha
        coef = positional_coefficients(layer)
        self.register_buffer("pos_coef", torch.as_tensor(coef, dtype=dtype))  # (H, d_p)
        # torch.nn.functional.pad lists (lo, hi) from the last axis backwards
        self._torch_pad = tuple(p for lo_hi in reversed(cfg.pad_width) for p in lo_hi)
        self._pad_mode = _TORCH_PAD_MODE[cfg.padding_mode]
        self._centre = left_offsets(cfg.kernel_size, cfg.dilation)

    def positional_scores(self, padded: tuple[int, ...], out: tuple[int, ...]) -> Any:
        """``A^(h)_{q,k}`` for the kept queries ``q`` and every padded key ``k``.

        Returns a tensor of shape ``(n_heads, n_out, n_padded)``.
        """
        dev = self.pos_coef.device
        keys = torch.cartesian_prod(*[torch.arange(n, device=dev) for n in padded])
        qrys = torch.cartesian_prod(*[c + s * torch.arange(n, device=dev) for c, s, n in
                                      zip(self._centre, self.config.stride, out)])
        keys, qrys = keys.reshape(-1, self.ndim), qrys.reshape(-1, self.ndim)
        rel = keys[None, :, :] - qrys[:, None, :]                            # (n_q, n_k, D): δ = k − q
        r = torch.cat([(rel * rel).sum(-1, keepdim=True), rel], dim=-1)     # (n_q, n_k, d_p): r_δ
        return torch.einsum("qkp,hp->hqk", r.to(self.pos_coef.dtype), self.pos_coef)

    def float_mask(self, scores: Any) -> Any:
        """Additive mask ``β·A``; for ``β = ∞`` 0 on the row maxima and −inf elsewhere."""
        if math.isinf(self.beta):
            top = scores.amax(dim=-1, keepdim=True)
            return torch.zeros_like(scores).masked_fill(scores != top, -math.inf)
        return scores if self.beta == 1.0 else scores * self.beta

    def forward(self, x: Any) -> Any:
        """``x`` of shape ``(N, d_in, *spatial)`` or ``(d_in, *spatial)``.

        Returns ``(N, d_out, *out_spatial)`` (or without ``N``), the shape the
        PyTorch convolution returns.
        """
        nd = self.ndim
        if not torch.is_tensor(x):
            raise ParameterTypeError(f"`x` must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() not in (nd + 1, nd + 2):
            raise ShapeError(
                f"`x` must have shape (N, d_in, *spatial) or (d_in, *spatial) with {nd} "
                f"spatial axes, got shape {tuple(x.shape)}"
            )
        if x.dtype != self.pos_coef.dtype:
            raise ParameterTypeError(
                f"`x` must have the module's dtype {self.pos_coef.dtype}, got {x.dtype}"
            )
        unbatched = x.dim() == nd + 1
        if unbatched:
            x = x.unsqueeze(0)
        if x.shape[1] != self.d_in:
            raise ShapeError(
                f"channel mismatch: `x` has {x.shape[1]} channels (axis 1) but the layer "
                f"expects d_in = {self.d_in}"
            )
        spatial = tuple(int(s) for s in x.shape[2:])
        out = self.config.output_shape(spatial)          # refuses what PyTorch refuses
        if any(self._torch_pad):
            x = F.pad(x, self._torch_pad, mode=self._pad_mode)
        padded = tuple(int(s) for s in x.shape[2:])
        tokens = x.flatten(2).transpose(1, 2)                               # (N, n_k, d_in)
        scores = self.positional_scores(padded, out)                        # (H, n_q, n_k)
        y = self._attend(tokens, scores)                                    # (N, n_q, d_out)
        y = y.transpose(1, 2).reshape((y.shape[0], self.d_out) + out)
        return y[0] if unbatched else y

    def extra_repr(self) -> str:
        cfg = self.config
        return (f"n_heads={self.n_heads}, d_head={self.d_head}, d_in={self.d_in}, "
                f"d_out={self.d_out}, alpha={self.alpha}, kernel_size={cfg.kernel_size}, "
                f"stride={cfg.stride}, padding={cfg.padding!r}, dilation={cfg.dilation}, "
                f"groups={cfg.groups}, padding_mode={cfg.padding_mode!r}")

class SDPAConvAttention(ConvAttentionModule):
    """The attention with ``scaled_dot_product_attention`` and a float positional mask."""

    def __init__(self, layer: ConvAttention, dtype: Any) -> None:
        super().__init__(layer, dtype)
        m = layer.mhsa
        self.w_val = nn.Parameter(torch.as_tensor(m.w_val, dtype=dtype).clone())   # (H, d_in, d_head)
        self.w_out = nn.Parameter(torch.as_tensor(m.w_out, dtype=dtype).clone())   # (H·d_head, d_out)
        self.b_out = nn.Parameter(torch.as_tensor(m.b_out, dtype=dtype).clone())   # (d_out,)

    def _attend(self, tokens: Any, scores: Any) -> Any:
        n_b, n_k, _ = tokens.shape
        n_q = scores.shape[1]
        values = torch.einsum("bnc,hcd->bhnd", tokens, self.w_val)          # (N, H, n_k, d_head)
        q = tokens.new_zeros((n_b, self.n_heads, n_q, 1))                   # q·kᵀ = 0: the mask is the score
        k = tokens.new_zeros((n_b, self.n_heads, n_k, 1))
        heads = F.scaled_dot_product_attention(q, k, values, attn_mask=self.float_mask(scores))
        heads = heads.transpose(1, 2).reshape(n_b, n_q, self.n_heads * self.d_head)
        return heads @ self.w_out + self.b_out                              # (N, n_q, d_out)

class MultiheadConvAttention(ConvAttentionModule):
    """The attention through a stock ``torch.nn.MultiheadAttention``.

    ``embed_dim = n_heads · d_head``, ``kdim = 1``, ``vdim = d_in``, no
    biases; the query/key projections see zeros, the value projection
    stacks the ``W_val^(h)``, ``out_proj`` is the identity and a following
    ``torch.nn.Linear`` applies ``W_out`` and ``b_out`` (the stock module's
    output width is ``embed_dim``, not ``d_out``).
    """

    def __init__(self, layer: ConvAttention, dtype: Any) -> None:
        super().__init__(layer, dtype)
        m = layer.mhsa
        e = self.n_heads * self.d_head
        self.attention = nn.MultiheadAttention(e, self.n_heads, bias=False, kdim=1,
                                               vdim=self.d_in, batch_first=True, dtype=dtype)
        self.output = nn.Linear(e, self.d_out, dtype=dtype)
        with torch.no_grad():
            # value = tokens @ W_vᵀ; columns h·d_head … (h+1)·d_head − 1 of it feed head h
            w_val = torch.as_tensor(m.w_val, dtype=dtype)                   # (H, d_in, d_head)
            w_v = w_val.permute(1, 0, 2).reshape(self.d_in, e).T           # (e, d_in)
            a = self.attention
            if a._qkv_same_embed_dim:     # e == 1 == d_in: one packed (3e, e) projection
                a.in_proj_weight.copy_(torch.cat([torch.zeros_like(w_v), torch.zeros_like(w_v), w_v]))
            else:
                a.q_proj_weight.zero_()
                a.k_proj_weight.zero_()
                a.v_proj_weight.copy_(w_v)
            self.attention.out_proj.weight.copy_(torch.eye(e, dtype=dtype))
            self.output.weight.copy_(torch.as_tensor(m.w_out, dtype=dtype).T)
            self.output.bias.copy_(torch.as_tensor(m.b_out, dtype=dtype))

    def _attend(self, tokens: Any, scores: Any) -> Any:
        n_b, n_k, _ = tokens.shape
        n_q = scores.shape[1]
        if math.isinf(self.beta):
            # boolean mask, MultiheadAttention's convention: True = may NOT attend
            mask = scores != scores.amax(dim=-1, keepdim=True)
        else:
            mask = self.float_mask(scores)                                  # added to the scores
        mask = mask.repeat(n_b, 1, 1)                                       # (N·H, n_q, n_k), batch-major
        query = tokens.new_zeros((n_b, n_q, self.n_heads * self.d_head))
        key = tokens.new_zeros((n_b, n_k, 1))
        heads, _ = self.attention(query, key, tokens, attn_mask=mask, need_weights=False)
        return self.output(heads)                                           # (N, n_q, d_out)
