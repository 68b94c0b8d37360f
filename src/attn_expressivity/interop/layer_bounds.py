"""A-priori bounds of single layers in torch: the separable route against its convolution, and a convolution's rounding.

All bound arithmetic runs in float64 on the magnitudes of the layer's input,
with every computed sum of non-negative terms raised by its own float64
rounding (:func:`raise_sum`), so a bound is never below its exact value.

**The separable route** (:class:`~attn_expressivity.interop.torch_separable.SeparableConvAttention`),
for an input ``x`` in a dtype with unit roundoff ``u``: every output element is
within ``2 L̃ S_o + γ_m (S^abs_o + |b_o|) + η_m`` of the *exact* convolution of
``x`` (output channel ``o``), where

* ``L̃ = (1 + 4u₆₄) · leak_bound(α(1 − 2u₆₄), D')``, ``D'`` the number of axes
  whose band has more than one key (``L̃ = 0`` when none has). The module's
  weights relative to the target, ``ĝ_z = fl(exp(fl(−α z²)))`` in float64, obey
  ``ĝ_0 = 1`` and ``ĝ_z <= (1 + 4u₆₄) e^{−α(1−u₆₄) z²}``; the softmax ``p̃`` of
  these ``ĝ`` over any window that contains the target therefore leaves the
  target with mass at most ``X/(1+X)`` per axis, ``X <= (1 + 4u₆₄) T``,
  ``T = θ₃(e^{−α(1−u₆₄)}) − 1``, and over ``D'`` axes at most
  ``1 − (1 + (1+4u₆₄)T)^{−D'} <= (1+4u₆₄)(1 − (1+T)^{−D'})`` (the function
  ``1 − (1+t)^{−D}`` is concave and vanishes at 0). The head's output moves from
  its target's value by at most that mass times ``2 max_k |y_k|``, ``y_k = x_k W_{Δ_h}``;
  summed over heads: ``2 L̃ S_o``, ``S_o = Σ_h max_k |(x_k W_{Δ_h})_o|`` over the
  keys ``k`` of the padded image.
* ``γ_m = m u/(1 − m u)`` with ``m = Σ_i (3 w_i + 8) + n_heads · d_in/groups + 2``
  over the axes with a band (``w_i = 2r_i + 1`` keys): along an axis the module
  stores the weights ``fl(ĝ_z/Z)`` and, on windows cut by the border,
  ``fl(Z/Z(t))`` (``Z`` and ``Z(t)`` float64 sums of at most ``w_i`` terms, each
  within ``γ_{w_i}`` of its exact value; two float64 quotients, each rounded once
  more to the dtype: within ``γ_{2 w_i + 6}`` of ``p̃`` in all, one more for the
  weights below the dtype's ``tiny`` it leaves out), adds ``w_i`` products and
  scales once (``w_i + 1``); the value maps are one inner product of length
  ``n_heads · d_in/groups`` per output, and the bias one addition. In the
  standard model each product of the chain ``W · p̃ ⋯ p̃ · x`` therefore carries a
  relative error within ``γ_m``, and their absolute values sum to at most
  ``S^abs_o = Σ_h max_k (|x_k| |W_{Δ_h}|)_o`` (each ``p̃`` is a probability vector).
* ``η_m = ⌈4 m N (1 + ‖W‖)⌉ η``: products that underflow carry an absolute error
  of at most half the smallest subnormal each; ``η`` is the dtype's smallest
  subnormal (:func:`underflow_unit_of`) and ``N`` counts the products.

**A convolution's rounding** (the original network's, PyTorch's ``ConvNd`` on
the CPU: a sum of products per output, direct or through ``im2col`` and a
matrix product; on CUDA the caller disables cuDNN, whose FFT and Winograd
algorithms this model does not cover): every output is within
``γ_{m_c} (conv(|x|, |W|) + |b|) + m_c η`` of the exact value,
``m_c = prod(K) · d_in/groups + 1``.

**Underflow.** With gradual underflow a product, quotient or function value is
``fl(v) = v(1 + δ) + ε`` with ``|δ| <= u`` and ``|ε|`` at most half the dtype's
smallest subnormal; sums and differences have ``ε = 0``. A computation of ``k``
operations per output therefore adds at most ``k (1 + γ_k) η/2 <= k η`` to its
relative rounding term, ``η`` the smallest subnormal (:func:`underflow_term`).
Bounds computed here in float64 underflow too, by at most half of ``2^-1074``
per operation: the callers add :data:`SUBNORMAL64` per operation.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..bounds.leak import leak_bound
from ..bounds.rounding import gamma, underflow_unit

__all__ = ["SUBNORMAL64", "U64", "conv_magnitude", "conv_rounding_bound", "raise_sum",
           "separable_error_bound", "underflow_term", "underflow_unit_of", "unit_roundoff_of"]

#: Unit roundoff of float64, in which every bound is computed.
U64 = 2.0**-53
#: The smallest subnormal float64, ``2^-1074`` (:func:`~attn_expressivity.bounds.rounding.underflow_unit`):
#: twice the absolute error an underflowing float64 operation can make (half of it is not a
#: float64 number: it rounds to 0).
SUBNORMAL64 = underflow_unit(np.float64)


def unit_roundoff_of(dtype: Any) -> float:
    """``u = eps/2`` of a floating torch dtype (``2^-24`` for float32)."""
    return float(torch.finfo(dtype).eps) / 2.0


def underflow_unit_of(dtype: Any) -> float:
    """``η`` of a floating torch dtype: :func:`~attn_expressivity.bounds.rounding.underflow_unit`'s.

    The smallest subnormal number, twice the absolute error an underflowing
    operation can make (module docstring).

    Examples
    --------
    >>> underflow_unit_of(torch.float64) == 2.0**-1074, underflow_unit_of(torch.float32) == 2.0**-149
    (True, True)
    """
    return underflow_unit(np.dtype(str(dtype).removeprefix("torch.")))


def underflow_term(ops: int, dtype: Any) -> float:
    """``ops · η``: the underflow of ``ops`` operations per output in ``dtype`` (exact: ``ops < 2^53``)."""
    return float(ops) * underflow_unit_of(dtype)


def raise_sum(value: Any, terms: int) -> Any:
    """A float64 sum of ``terms`` non-negative numbers raised above its exact value.

    A sum of ``n`` non-negative floats computed in any order is within
    ``γ_{n−1}`` of the exact sum, relative (Higham, §3.1), so
    ``computed / (1 − γ_n)`` is above it.
    """
    return value / (1.0 - gamma(max(terms, 1) + 1, U64))


def conv_magnitude(x: Any, weight: Any, bias: Any, *, stride, padding, dilation, groups,
                   padding_mode: str) -> Any:
    """``conv(|x|, |W|) + |b|`` in float64, raised above its exact value; the output's shape."""
    nd = weight.dim() - 2
    fn = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
    ax, aw = x.detach().to(torch.float64).abs(), weight.detach().to(torch.float64).abs()
    if isinstance(padding, str):
        pad_width = _same_or_valid(padding, weight.shape[2:], dilation)
    else:
        pad_width = [(p, p) for p in padding]
    if any(lo or hi for lo, hi in pad_width):
        mode = {"zeros": "constant"}.get(padding_mode, padding_mode)
        ax = F.pad(ax, [p for lo_hi in reversed(pad_width) for p in lo_hi], mode=mode)
    out = fn(ax, aw, None, stride=stride, padding=0, dilation=dilation, groups=groups)
    if bias is not None:
        out = out + bias.detach().to(torch.float64).abs().reshape((-1,) + (1,) * nd)
    return raise_sum(out, math.prod(weight.shape[1:]) + 1)


def _same_or_valid(padding: str, kernel_size, dilation) -> list[tuple[int, int]]:
    if padding == "valid":
        return [(0, 0)] * len(kernel_size)
    totals = [d * (k - 1) for k, d in zip(kernel_size, dilation)]
    return [(t // 2, t - t // 2) for t in totals]


def conv_rounding_bound(module: Any, x: Any) -> Any:
    """Elementwise bound on ``|fl(conv(x)) − conv(x)|`` for a ``torch.nn.ConvNd`` run in ``x``'s dtype.

    Returns a float64 tensor of the output's shape:
    ``γ_{m_c} (conv(|x|, |W|) + |b|) + m_c η`` (module docstring), plus the
    float64 underflow of computing it (``(m_c + 4) · 2^-1074``).
    """
    m_c = math.prod(module.weight.shape[1:]) + 1
    mag = conv_magnitude(x, module.weight, module.bias, stride=module.stride,
                         padding=module.padding, dilation=module.dilation, groups=module.groups,
                         padding_mode=module.padding_mode)
    return (mag * gamma(m_c, unit_roundoff_of(x.dtype)) * (1 + 4 * U64)
            + (underflow_term(m_c, x.dtype) + (m_c + 4) * SUBNORMAL64)) * (1 + 2 * U64)


def _axis_ring(weights: list[float], size: int, targets: Any) -> tuple[dict[int, Any], float]:
    """Upper bounds of the band's weights ``ĝ_z / Z(t)`` at ``z = −1, 0, 1`` from each target.

    A key outside the image has weight 0. ``Z(t) >= 1`` sums the weights of the
    window's keys inside the image (float64, lowered by its rounding). Also
    returns the mass at ``|z| >= 2``: at most the sum of those ``ĝ_z``, since
    every normaliser is at least 1.
    """
    r = (len(weights) - 1) // 2
    z_sum = torch.zeros(targets.shape, dtype=torch.float64, device=targets.device)
    for j, g in enumerate(weights):
        key = targets + (j - r)
        z_sum += g * ((key >= 0) & (key < size))
    z_low = z_sum * (1.0 - gamma(len(weights) + 1, U64))
    ring = {}
    for z in (-1, 0, 1):
        g = weights[r + z] if abs(z) <= r else 0.0
        inside = (targets + z >= 0) & (targets + z < size)
        ring[z] = g / z_low * inside * (1 + 4 * U64)
    tail = raise_sum(sum(g for j, g in enumerate(weights) if abs(j - r) >= 2), len(weights))
    return ring, min(1.0, tail)


def _head_values(module: Any, x: Any) -> tuple[Any, Any, tuple[int, ...], tuple[int, int, int]]:
    """The padded input (float64, channels last, channels split by group) and the value maps."""
    from .torch_separable import _pad_channels_last

    cfg = module.config
    mode = {"zeros": "constant"}.get(cfg.padding_mode, cfg.padding_mode)
    xp = _pad_channels_last(x.detach().to(torch.float64), cfg.pad_width, mode)
    g, cig, cog = cfg.groups, cfg.d_in // cfg.groups, cfg.d_out // cfg.groups
    tokens = xp.reshape(xp.shape[:-1] + (g, cig))                           # (N, *P, g, cig)
    w = module.weight.detach().to(torch.float64).reshape(g, cog, cig, -1)   # (g, cog, cig, H)
    return tokens, w, tuple(xp.shape[1:-1]), (g, cig, cog)


def _outer(vectors: list[Any]) -> Any:
    out = vectors[0]
    for v in vectors[1:]:
        out = out[..., None] * v
    return out


def _at_targets(yp: Any, kidx: tuple[int, ...], z: tuple[int, ...], cfg: Any,
                out: tuple[int, ...]) -> Any:
    """``y[t + z]`` at the head's targets ``t = o·s + k·d`` (``yp`` padded by one on each side)."""
    index = [slice(None)]
    for i in range(cfg.ndim):
        start = kidx[i] * cfg.dilation[i] + z[i] + 1
        index.append(slice(start, start + (out[i] - 1) * cfg.stride[i] + 1, cfg.stride[i]))
    return yp[tuple(index)]


def _leak_term(module: Any, x: Any, radius: list[int], out: tuple[int, ...]) -> dict[str, Any]:
    """The leak at every output, from above (module docstring): shape ``(N, d_out, *out)``.

    Head ``h``'s error at query ``q`` is ``Σ_{k ≠ t} p̃_k (y_k − y_t)``. The keys
    next to the target (``max_i |z_i| <= 1``) are summed with upper bounds of
    their weights; the others carry, by a union bound over the axes, at most the
    mass at ``|z_i| >= 2`` summed over axes, times ``2 max |y|``.
    """
    from .torch_separable import axis_weights

    cfg = module.config
    tokens, w, padded, (_, cig, _) = _head_values(module, x)
    nd, dev = cfg.ndim, x.device
    rings, tails = [], []
    for i in range(nd):
        k = torch.arange(cfg.kernel_size[i], device=dev) * cfg.dilation[i]
        ring, tail = _axis_ring(axis_weights(module.alpha, radius[i]), padded[i],
                                k[:, None] + torch.arange(out[i], device=dev)[None, :] * cfg.stride[i])
        rings.append(ring)
        tails.append(tail)
    tail_mass = min(1.0, raise_sum(sum(tails), nd))
    offsets = [z for z in itertools.product((-1, 0, 1), repeat=nd) if any(z)]
    leak = torch.zeros((tokens.shape[0],) + tuple(out) + (cfg.d_out,), dtype=torch.float64, device=dev)
    scale = torch.zeros(cfg.d_out, dtype=torch.float64, device=dev)
    scale_abs = torch.zeros(cfg.d_out, dtype=torch.float64, device=dev)
    for h, kidx in enumerate(itertools.product(*[range(k) for k in cfg.kernel_size])):
        wh = w[..., h].transpose(1, 2)                                       # (g, cig, cog)
        y = torch.einsum("...gc,gco->...go", tokens, wh).flatten(-2)         # (N, *P, d_out)
        y = y.detach()
        y_abs = torch.einsum("...gc,gco->...go", tokens.abs(), wh.abs()).flatten(-2)
        y_max = y.abs().reshape(-1, cfg.d_out).amax(dim=0)
        a_max = y_abs.reshape(-1, cfg.d_out).amax(dim=0)
        scale += y_max
        scale_abs += a_max
        yp = torch.nn.functional.pad(y, [0, 0] + [1, 1] * nd)               # room for t ± 1
        centre = _at_targets(yp, kidx, (0,) * nd, cfg, out)
        ring_mass = 0.0
        for z in offsets:
            wz = _outer([rings[i][z[i]][kidx[i]] for i in range(nd)])       # (*out,)
            leak += wz[None, ..., None] * (_at_targets(yp, kidx, z, cfg, out) - centre).abs()
            ring_mass += float(wz.max())
        # the tail beyond the ring, and the float64 rounding of the y's used above
        leak += tail_mass * 2.0 * y_max + ring_mass * 2.0 * gamma(cig + 1, U64) * a_max
    heads = math.prod(cfg.kernel_size)
    leak = raise_sum(leak, heads * (len(offsets) + 2)).movedim(-1, 1)
    scale = raise_sum(scale + gamma(cig + 1, U64) * raise_sum(scale_abs, cig), heads)
    return {"leak_term": leak, "scale": scale, "scale_abs": raise_sum(scale_abs, cig * heads),
            "tail": tail_mass}


def _abs_run(module: Any, x: Any, radius: list[int], m: int) -> Any:
    """``Σ_h |W_{Δ_h}|ᵀ Σ_k p̃_k |x_k|`` at every output, from above: the module on ``|x|`` with ``|W|``.

    Run in float64 with the band the module had in ``x``'s dtype; its weights are
    within ``γ_{2w+6}`` of ``p̃`` and the run's rounding within ``γ_m`` (``u₆₄``).
    """
    from .torch_separable import separable_conv_attention

    meta = list(module.meta)
    if module.band == "auto":
        meta[7] = max(radius)                     # the radius x's dtype gave, capped per axis
    y = separable_conv_attention(x.detach().to(torch.float64).abs(),
                                 module.weight.detach().to(torch.float64).abs(), None, tuple(meta))
    return y * (1 + 2 * gamma(m, U64)) / (1 - gamma(m, U64))


def separable_error_bound(module: Any, x: Any) -> dict[str, Any]:
    """A-priori bound on ``|module(x) − conv(x)|`` at every output element (module docstring).

    Parameters
    ----------
    module : SeparableConvAttention
    x : Tensor, shape ``(N, d_in, *spatial)``
        The input the module runs on, in the module's dtype.

    Returns
    -------
    dict
        ``bound``, ``leak_term``, ``rounding_term`` (float64 tensors of the
        output's shape), ``underflow`` (float), ``leak`` (``L̃``), ``m``,
        ``radius`` (per axis), ``scale`` and ``scale_abs`` (``S_o``,
        ``S^abs_o``, shape ``(d_out,)``).
    """
    from .torch_separable import _output_shape

    cfg = module.config
    u = unit_roundoff_of(x.dtype)
    k = _route_constants(module, x)
    radius, banded = k["radius"], k["banded"]
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[2:], cfg.pad_width))
    out = _output_shape(padded, cfg.kernel_size, cfg.dilation, cfg.stride)
    n_heads, cig = math.prod(cfg.kernel_size), cfg.d_in // cfg.groups
    m = sum(3 * (2 * r + 1) + 8 for r in banded) + n_heads * cig + 2
    leak = _leak_term(module, x, radius, out)
    bias = (torch.zeros(cfg.d_out, dtype=torch.float64, device=x.device) if module.bias is None
            else module.bias.detach().to(torch.float64).abs())
    shape = (1, cfg.d_out) + (1,) * cfg.ndim
    rounding_term = gamma(m, u) * (_abs_run(module, x, radius, m) + bias.reshape(shape)) * (1 + 4 * U64)
    products = math.prod(2 * r + 1 for r in banded) * n_heads * cig + 1
    w_rows = float(module.weight.detach().to(torch.float64).abs().reshape(cfg.d_out, -1).sum(1).max())
    # ⌈·⌉: an integer times η is exact, where a fraction times a subnormal would round
    coefficient = math.ceil(4.0 * m * products * (1.0 + raise_sum(w_rows, n_heads * cig)) * (1 + 4 * U64))
    underflow = underflow_term(coefficient, x.dtype)
    # the float64 underflow of the terms above: at most half of 2^-1074 per operation
    slack = (n_heads * (3 ** cfg.ndim + 2) * (cig + 4) + products + m + 8) * SUBNORMAL64
    bound = ((leak["leak_term"] + rounding_term) * (1 + 4 * U64) + (underflow + slack)) * (1 + 2 * U64)
    return {"bound": bound, "leak_term": leak["leak_term"], "rounding_term": rounding_term,
            "underflow": underflow, "leak": k["leak"], "m": m, "radius": radius,
            "scale": leak["scale"], "scale_abs": leak["scale_abs"]}


def _route_constants(module: Any, x: Any) -> dict[str, Any]:
    """``L̃``, ``X`` (the off-target weight sum per axis), the radii and the chain lengths, for ``x``."""
    from .torch_separable import band_radius

    cfg = module.config
    padded = [s + lo + hi for s, (lo, hi) in zip(x.shape[2:], cfg.pad_width)]
    radius = [band_radius(module.alpha, x.dtype, module.band, n) for n in padded]
    banded = [r for r in radius if r > 0]
    if not banded or math.isinf(module.alpha):
        return {"leak": 0.0, "spill": 0.0, "radius": radius, "banded": banded}
    from .torch_separable import axis_weights

    a_eff = math.nextafter(module.alpha * (1.0 - 2.0 * U64), 0.0)
    leak = min(1.0, (1.0 + 4.0 * U64) * leak_bound(a_eff, len(banded)) * (1 + 2 * U64))
    # the weight a key receives from the queries that do not target it is at most
    # Π_i (1 + X_i) − 1, X_i = Σ_{z≠0} ĝ_z over axis i's band (every normaliser is >= 1)
    spill = 1.0
    for r in banded:
        spill *= 1.0 + raise_sum(sum(g for j, g in enumerate(axis_weights(module.alpha, r)) if j != r), 2 * r)
    spill = (spill - 1.0) * (1 + 8 * U64)
    return {"leak": leak, "spill": spill, "radius": radius, "banded": banded}


def gradient_bounds(module: Any, x: Any, grad_output: Any) -> dict[str, Any]:
    """Bounds on the differences of the gradients of ``module`` and of its convolution.

    For a loss with gradient ``g = grad_output`` at the output, the input
    gradients are ``Σ_h P_hᵀ (g W_hᵀ)`` (attention, ``P_h`` head ``h``'s weights)
    and ``Σ_h S_hᵀ (g W_hᵀ)`` (convolution, ``S_h`` the shift to the target), and
    the weight gradients ``Σ_q (P_h x)_q g_qᵀ`` and ``Σ_q x_{t_q} g_qᵀ``. A column
    of ``|P_h − S_h|`` sums to at most ``L̃ + (1 + X)^{D'} − 1`` (the target's
    lost mass, and the weights the key receives from the queries that do not
    target it, each at most ``ĝ_z`` since every normaliser is at least 1), and a
    row of ``(P_h − S_h) x`` is at most ``2 L̃ max |x|``. The rounding of both
    backward passes is added with the chain lengths of the two computations;
    padding modes other than zeros multiply the input bound by the number of
    copies a pixel can have in the padded image.

    Parameters
    ----------
    module : SeparableConvAttention
    x : Tensor, shape ``(N, d_in, *spatial)``
    grad_output : Tensor, the output's shape

    Returns
    -------
    dict
        ``input`` (float64, shape ``(1, d_in, 1, …)``), ``weight`` (the weight's
        shape) and ``bias`` (float): elementwise bounds on ``|∇_attention − ∇_conv|``.
    """
    cfg, u = module.config, unit_roundoff_of(x.dtype)
    k = _route_constants(module, x)
    g, cig, cog = cfg.groups, cfg.d_in // cfg.groups, cfg.d_out // cfg.groups
    n_heads = math.prod(cfg.kernel_size)
    w = module.weight.detach().to(torch.float64).abs()                       # (d_out, cig, *K)
    g_abs = grad_output.detach().to(torch.float64).abs()
    g_max = g_abs.transpose(0, 1).reshape(cfg.d_out, -1).amax(dim=1)        # max_q |g[o]|
    g_sum = raise_sum(g_abs.transpose(0, 1).reshape(cfg.d_out, -1).sum(dim=1), g_abs[0, 0].numel() * g_abs.shape[0])
    x_max = x.detach().to(torch.float64).abs().transpose(0, 1).reshape(cfg.d_in, -1).amax(dim=1)
    # V_c = Σ_h Σ_o |W_h[c, o]| max|g[o]|, o over the group of c
    v = (w.reshape(g, cog, cig, n_heads) * g_max.reshape(g, cog, 1, 1)).sum(dim=(1, 3)).reshape(-1)
    v = raise_sum(v, cog * n_heads)
    copies = 1 if cfg.padding_mode == "zeros" else math.prod(1 + max(lo, hi) for lo, hi in cfg.pad_width)
    chain = sum(3 * (2 * r + 1) + 8 for r in k["banded"]) + cog + n_heads + 4
    cover = (1.0 + k["spill"]) * (1 + gamma(5, u))
    inp = v * (k["leak"] + k["spill"] + gamma(chain, u) * cover
               + gamma(cog * n_heads + 1, u)) * copies
    rows = g_abs.numel() // cfg.d_out
    xw = x_max.reshape(g, 1, cig) * g_sum.reshape(g, cog, 1)                 # max|x[c]| Σ|g[o]|
    wgt = xw.reshape(cfg.d_out, cig) * (2.0 * k["leak"] + gamma(rows + chain + 2, u)
                                        + gamma(rows + 1, u))
    wgt = wgt.reshape((cfg.d_out, cig) + (1,) * cfg.ndim).expand(w.shape)
    bias = 2.0 * gamma(rows + 1, u) * float(g_sum.max())
    shape = (1, cfg.d_in) + (1,) * cfg.ndim
    return {"input": (inp * (1 + 8 * U64)).reshape(shape), "weight": wgt * (1 + 8 * U64),
            "bias": bias * (1 + 8 * U64)}
