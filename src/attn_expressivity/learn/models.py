"""The trainable layers and networks of the experiments (``torch.nn.Module``; imports torch).

Every attention layer here works on images ``(batch, *spatial, d)`` (channels
last, the package's layout) and has ``as_attention()``, which returns the same
layer as a float64 :class:`~attn_expressivity.MultiHeadSelfAttention`, so
:func:`attn_expressivity.analysis.analyse_attention` reads it.

* :class:`QuadraticAttention`: the paper's quadratic encoding with learned
  centres ``Δ_h`` and widths ``α_h = s_h²/2`` (initialised as the paper's code:
  ``Δ_h ~ N(0, 2²)``, ``s_h ~ N(1, 0.01²)``, so ``α_h ≈ 0.5``), no content term.
  The positional weights of a rectangular image split over the axes, so each
  head is two small matrix products per channel (no ``n × n`` matrix).
* :class:`RelativeAttention`: a learned relative positional score per head,
  ``a_h(δ_0) + b_h(δ_1)`` (the paper's learned encoding, a row and a column
  embedding, with positional attention only); optionally with content
  attention ``(x_q W_q)·(x_k W_k)/√d_k`` on top (the paper's "learned +
  content").
* :class:`Network`: embedding, attention (or convolution) blocks with residual
  connections and layer norms, average pooling and a linear classifier.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..attention.layer import MultiHeadSelfAttention
from ..errors import ParameterValueError
from ..theorem.construction import centres_to_mhsa

__all__ = ["ConvBlockLayer", "Network", "QuadraticAttention", "RelativeAttention", "axis_softmax",
           "flush_denormals"]


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush subnormal floats to zero inside the block, and restore the default after it.

    The weights of far keys underflow, and arithmetic on subnormal numbers is many
    times slower on x86 processors. The setting is the processor's and applies to
    numpy too, so it is switched off again (PyTorch's default) when the block ends.
    """
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def axis_softmax(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis (keys) of per-axis scores ``(H, L_q, L_k)``."""
    return torch.softmax(scores, dim=-1)


def _offsets(length: int, dtype: torch.dtype) -> torch.Tensor:
    """``k − q`` for queries (rows) and keys (columns) along an axis, ``(L, L)``."""
    r = torch.arange(length, dtype=dtype)
    return r[None, :] - r[:, None]


class _Heads(nn.Module):
    """Value and output blocks ``W_val^(h)``, ``W_out^(h)`` and ``b_out`` (Lemma 1's factors)."""

    def __init__(self, d_in: int, d_out: int, n_heads: int, d_head: int, generator: torch.Generator,
                 dtype: torch.dtype) -> None:
        super().__init__()
        self.w_val = nn.Parameter(torch.randn(n_heads, d_in, d_head, generator=generator, dtype=dtype)
                                  / math.sqrt(d_in))
        self.w_out = nn.Parameter(torch.randn(n_heads, d_head, d_out, generator=generator, dtype=dtype)
                                  / math.sqrt(n_heads * d_head))
        self.b_out = nn.Parameter(torch.zeros(d_out, dtype=dtype))

    def values(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("b...c,hcd->bh...d", x, self.w_val)           # (B, H, *spatial, d_head)

    def output(self, z: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bh...d,hdo->b...o", z, self.w_out) + self.b_out

    def numpy_blocks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        H, dh, d_out = self.w_out.shape
        return (self.w_val.detach().double().numpy(), self.w_out.detach().double().numpy().reshape(H * dh, d_out),
                self.b_out.detach().double().numpy())


class QuadraticAttention(nn.Module):
    """Positional MHSA with the quadratic encoding and learned ``Δ_h``, ``α_h`` (2-D).

    Head ``h`` weights key ``k`` of query ``q`` by ``softmax_k(−α_h‖k − q − Δ_h‖²)``
    over the image (Lemma 2 with a learned centre and width); on a rectangular
    image this is the product of two per-axis softmaxes.

    Parameters
    ----------
    d_in, d_out, n_heads, d_head : int
    generator : torch.Generator
        Source of every initial value (determinism).
    centre_std : float, optional
        Standard deviation of the initial centres (the paper's code: 2).
    spread_std : float, optional
        Standard deviation of the initial ``s_h`` around 1 (``α_h = s_h²/2``).
    dtype : torch.dtype, optional
    """

    def __init__(self, d_in: int, d_out: int, n_heads: int, d_head: int, *, generator: torch.Generator,
                 centre_std: float = 2.0, spread_std: float = 0.01, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if not centre_std >= 0 or not spread_std >= 0:
            raise ParameterValueError(f"`centre_std` and `spread_std` must be >= 0, got {centre_std}, {spread_std}")
        self.centres = nn.Parameter(torch.randn(n_heads, 2, generator=generator, dtype=dtype) * centre_std)
        self.spreads = nn.Parameter(1.0 + torch.randn(n_heads, generator=generator, dtype=dtype) * spread_std)
        self.heads = _Heads(d_in, d_out, n_heads, d_head, generator, dtype)

    @property
    def alphas(self) -> torch.Tensor:
        """``α_h = s_h² / 2`` (the paper's code: the score is ``−½ s²‖δ − Δ‖²``)."""
        return 0.5 * self.spreads ** 2

    def axis_weights(self, sizes: tuple[int, int]) -> list[torch.Tensor]:
        """Per axis ``i``: ``softmax_k(−α_h (k − q − Δ_{h,i})²)``, shape ``(H, L_i, L_i)``."""
        out = []
        for i, length in enumerate(sizes):
            rel = _offsets(length, self.centres.dtype)                         # (L, L)
            z = rel[None] - self.centres[:, i, None, None]                      # (H, L, L)
            out.append(axis_softmax(-self.alphas[:, None, None] * z * z))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a0, a1 = self.axis_weights((x.shape[1], x.shape[2]))
        v = self.heads.values(x)                                                # (B, H, L0, L1, dh)
        z = torch.einsum("hpx,bhxyd,hqy->bhpqd", a0, v, a1)
        return self.heads.output(z)

    def as_attention(self) -> MultiHeadSelfAttention:
        """This layer as the package's float64 layer (Lemma 2 with real centres, per-head ``α``)."""
        w_val, w_out, b_out = self.heads.numpy_blocks()
        return centres_to_mhsa(self.centres.detach().double().numpy(),
                               self.alphas.detach().double().numpy(), w_val, w_out, b_out)


class RelativeAttention(nn.Module):
    """MHSA with a learned relative positional score per head (and optional content attention).

    The positional score of offset ``δ`` is ``a_h[δ_0] + b_h[δ_1]`` (tables over
    ``−(L − 1) … L − 1`` per axis, initialised ``N(0, init_std²)``). Without
    content the weights split over the axes; with content the score adds
    ``(x_q W_q^(h))·(x_k W_k^(h))/√d_k`` and the weights are ``n × n`` per head.

    Parameters
    ----------
    d_in, d_out, n_heads, d_head : int
    size : tuple of int
        The image size ``(L_0, L_1)`` the tables cover.
    generator : torch.Generator
    content : bool, optional
    d_key : int, optional
        Query/key dimension of the content term (default ``d_head``).
    init_std : float, optional
    dtype : torch.dtype, optional
    """

    def __init__(self, d_in: int, d_out: int, n_heads: int, d_head: int, *, size: tuple[int, int],
                 generator: torch.Generator, content: bool = False, d_key: int | None = None,
                 init_std: float = 0.02, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.size = tuple(size)
        self.tables = nn.ParameterList([
            nn.Parameter(torch.randn(n_heads, 2 * s - 1, generator=generator, dtype=dtype) * init_std)
            for s in self.size])
        self.heads = _Heads(d_in, d_out, n_heads, d_head, generator, dtype)
        self.content = content
        dk = d_key or d_head
        if content:
            self.w_q = nn.Parameter(torch.randn(n_heads, d_in, dk, generator=generator, dtype=dtype) / math.sqrt(d_in))
            self.w_k = nn.Parameter(torch.randn(n_heads, d_in, dk, generator=generator, dtype=dtype) / math.sqrt(d_in))

    def axis_scores(self) -> list[torch.Tensor]:
        """Per axis ``(H, L, L)``: ``table_h[k − q]``."""
        out = []
        for table, length in zip(self.tables, self.size):
            idx = (torch.arange(length)[None, :] - torch.arange(length)[:, None]) + (length - 1)
            out.append(table[:, idx])
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0, s1 = self.axis_scores()
        v = self.heads.values(x)                                                # (B, H, L0, L1, dh)
        if not self.content:
            z = torch.einsum("hpx,bhxyd,hqy->bhpqd", axis_softmax(s0), v, axis_softmax(s1))
            return self.heads.output(z)
        B, L0, L1, _ = x.shape
        pos = (s0[:, :, None, :, None] + s1[:, None, :, None, :]).reshape(-1, L0 * L1, L0 * L1)
        q = torch.einsum("bnc,hck->bhnk", x.reshape(B, -1, x.shape[-1]), self.w_q)
        k = torch.einsum("bnc,hck->bhnk", x.reshape(B, -1, x.shape[-1]), self.w_k)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + pos          # (B, H, n, n)
        z = torch.softmax(scores, dim=-1) @ v.reshape(B, v.shape[1], L0 * L1, -1)
        return self.heads.output(z.reshape(v.shape))

    def as_attention(self) -> MultiHeadSelfAttention:
        """This layer as the package's float64 layer: a one-hot encoding of ``(δ_0, δ_1)``.

        ``r_δ`` is the one-hot vector of ``δ_0`` followed by that of ``δ_1``, so
        ``Ŵ_key`` holds the tables; with content, the query/key dimension gets one
        extra slot for the positional score (zero in ``W_qry``, ``W_key``) so the
        four-term score is exactly content + table.
        """
        L0, L1 = self.size
        tables = [t.detach().double().numpy() for t in self.tables]            # (H, 2L−1) each
        H = tables[0].shape[0]
        w_val, w_out, b_out = self.heads.numpy_blocks()
        d_p = (2 * L0 - 1) + (2 * L1 - 1)
        dk = self.w_q.shape[2] if self.content else 0
        w_hat = np.zeros((H, d_p, dk + 1))
        w_hat[:, :, dk] = np.concatenate(tables, axis=1)
        v = np.zeros((H, dk + 1))
        v[:, dk] = 1.0
        w_qry, w_key = np.zeros((H, w_val.shape[1], dk + 1)), np.zeros((H, w_val.shape[1], dk + 1))
        if self.content:
            w_qry[:, :, :dk] = self.w_q.detach().double().numpy() / math.sqrt(dk)
            w_key[:, :, :dk] = self.w_k.detach().double().numpy()
        return MultiHeadSelfAttention(w_qry, w_key, w_hat, np.zeros((H, dk + 1)), v, w_val, w_out, b_out,
                                      encoding=_OneHot((L0, L1)), ndim=2)


class _OneHot:
    """``r_δ``: one-hot of ``δ_0`` over ``−(L_0 − 1) … L_0 − 1`` followed by one-hot of ``δ_1``."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size

    def __call__(self, offsets: np.ndarray) -> np.ndarray:
        off = np.asarray(offsets)
        parts = []
        for i, length in enumerate(self.size):
            idx = off[..., i] + (length - 1)
            if (idx < 0).any() or (idx > 2 * length - 2).any():
                raise ParameterValueError(f"offsets beyond the learned table (|δ_{i}| < {length})")
            parts.append(np.eye(2 * length - 1)[idx])
        return np.concatenate(parts, axis=-1)


class ConvBlockLayer(nn.Module):
    """A 3×3 "same" convolution on channels-last images (the CNN baseline's mixing layer)."""

    def __init__(self, d_in: int, d_out: int, *, generator: torch.Generator, kernel_size: int = 3,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        fan = d_in * kernel_size * kernel_size
        self.weight = nn.Parameter(torch.randn(d_out, d_in, kernel_size, kernel_size, generator=generator,
                                               dtype=dtype) / math.sqrt(fan))
        self.bias = nn.Parameter(torch.zeros(d_out, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x.permute(0, 3, 1, 2), self.weight, self.bias, padding="same")
        return y.permute(0, 2, 3, 1)


class Network(nn.Module):
    """Embedding → ``n_layers`` × (x + mix(LN x); x + MLP(LN x)) → mean over pixels → LN → linear.

    Parameters
    ----------
    mixers : list of nn.Module
        The token-mixing layers (attention or convolution), ``width → width``.
    d_in, width, n_classes : int
    generator : torch.Generator
    dtype : torch.dtype, optional
    """

    def __init__(self, mixers: list[nn.Module], d_in: int, width: int, n_classes: int, *,
                 generator: torch.Generator, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.mixers = nn.ModuleList(mixers)
        self.embed = nn.Linear(d_in, width, dtype=dtype)
        self.norms = nn.ModuleList(nn.LayerNorm(width, dtype=dtype) for _ in range(2 * len(mixers) + 1))
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(width, 2 * width, dtype=dtype), nn.GELU(),
                                                nn.Linear(2 * width, width, dtype=dtype)) for _ in mixers)
        self.head = nn.Linear(width, n_classes, dtype=dtype)
        with torch.no_grad():
            for lin in [self.embed, self.head] + [m for mlp in self.mlps for m in mlp if isinstance(m, nn.Linear)]:
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=generator, dtype=dtype)
                                 / math.sqrt(lin.weight.shape[1]))
                lin.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for i, (mix, mlp) in enumerate(zip(self.mixers, self.mlps)):
            h = h + mix(self.norms[2 * i](h))
            h = h + mlp(self.norms[2 * i + 1](h))
        return self.head(self.norms[-1](h.mean(dim=(1, 2))))

    def attention_layers(self) -> list[Any]:
        """The mixers that :func:`~attn_expressivity.analysis.analyse_attention` reads."""
        return [m for m in self.mixers if hasattr(m, "as_attention")]
