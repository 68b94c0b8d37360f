"""The separable, banded torch route: Theorem 1's attention at the scale of real networks.

**The identity it computes with.** Head ``h`` of Theorem 1's layer scores key
``k`` for query ``q`` with ``A = −α‖k − q − Δ_h‖² + α‖Δ_h‖²`` (Lemma 2); the
softmax ignores the constant, so its weights are
``e^{−α‖k − t‖²} / Σ_{k'} e^{−α‖k' − t‖²}`` around the head's *target*
``t = q + Δ_h``. Two consequences:

* **per axis**: over a rectangular key set the weights are a product of
  one-dimensional softmaxes, one per axis (the Kronecker identity of
  :mod:`attn_expressivity.attention.separable`);
* **the heads share their averages**: the weights depend on ``k − t`` only, so
  head ``h`` at query ``q`` returns the softmax average ``B[t]`` of the image
  around ``t``, the same for every head with that target. One normalised
  average ``B`` of the padded image, read at ``t = q + Δ_h``, serves all
  ``n_heads`` heads.

**Banded.** Along axis ``i`` the query attends to the keys ``t_i − r … t_i + r``
that lie inside the padded image, and the softmax is taken over them. The
window contains the target (every target lies in the padded image, as the crop
keeps only such queries), so the window keys of all axes form a rectangular key
set containing the target, and the leak bound ``1 − θ₃(e^{−α})^{−D}`` of
:mod:`attn_expressivity.bounds.leak` holds for the banded attention as it
stands: it holds for every rectangular key set that contains the target.
Against the attention over the whole padded image, the band leaves out, per
query, softmax mass at most :func:`band_dropped_mass`. ``band="auto"`` takes the
largest radius ``r`` with ``α r² <= −ln(tiny)`` (``tiny`` the dtype's smallest
normal number): the keys left out have weights below ``tiny`` relative to the
target's, less than the dtype holds as a normal number. ``α = ∞`` gives
``r = 0``: the target alone, with weight exactly 1.

**What is computed.** Pad the input with the convolution's padding mode (the
padded image is the key set), average along each axis with the banded softmax
weights (:func:`_blur`), read every head's average at its targets
``o·s + k·d`` for the kept outputs ``o`` only (the cropped, strided queries;
:func:`_heads_view`), and apply the value maps: a block of rows at a time, the
heads' averages stacked side by side (at most ``memory_budget`` bytes) and
multiplied by the stacked value maps. Nothing of size
``n_heads × n_out × n_padded`` exists: the weights are ``2r + 1`` numbers per
axis.

**Value maps.** Lemma 1's ``W_val^(h) W_out^(h) = W_{Δ_h}``, held as one product
per head (the paper's ``d_head = d_out`` construction, ``W_out^(h) = I``), in
PyTorch's kernel layout: the module's ``weight`` has the convolution's layout and
its ``state_dict`` the convolution's keys (``weight``, ``bias``), so a
convolution's checkpoint loads unchanged (``docs/torch.md``, "state_dict
mapping").

The computation is one function, :func:`separable_conv_attention`, registered
with ``torch.fx.wrap``: ``torch.fx.symbolic_trace`` records a converted module as
one call of it (its loops depend on the input's shape, which symbolic tracing
does not know), and ``torch.compile`` traces through it.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
import torch.fx
from torch import nn
from torch.nn import functional as F

from .._validation import as_alpha, as_int
from ..convolution.config import ConvConfig, make_config
from ..errors import InputMismatchError, ParameterTypeError, ParameterValueError

__all__ = ["DEFAULT_TORCH_BUDGET", "SeparableConvAttention", "axis_weights", "band_dropped_mass",
           "band_radius", "separable_conv_attention"]

#: Default bound, in bytes, on the stacked head averages of one block of rows (32 MiB).
DEFAULT_TORCH_BUDGET = 32 * 2**20

_TORCH_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
                   "circular": "circular"}


# --------------------------------------------------------------------------- the band


def band_radius(alpha: float, dtype: Any, band: int | str | None, size: int) -> int:
    """The band's radius along an axis of ``size`` keys.

    Parameters
    ----------
    alpha : float
        The heads' inverse width ``α`` (``inf``: hard attention, ``0``: flat).
    dtype : torch.dtype
        The dtype the weights are computed in (``band="auto"`` reads its ``tiny``).
    band : "auto", int or None
        ``"auto"``: the largest ``r`` with ``α r² <= −ln(tiny)``; an int: that
        radius; None: the whole axis.
    size : int
        Keys along the axis; the radius never exceeds ``size − 1``.

    Returns
    -------
    int

    Examples
    --------
    >>> band_radius(40.0, torch.float32, "auto", 100), band_radius(40.0, torch.float64, "auto", 100)
    (1, 4)
    >>> band_radius(math.inf, torch.float64, "auto", 9), band_radius(0.5, torch.float64, None, 9)
    (0, 8)
    """
    if band is None or alpha == 0.0:
        return size - 1
    if isinstance(band, str):
        if math.isinf(alpha):
            return 0
        reach = -math.log(torch.finfo(dtype).tiny)
        return min(size - 1, int(math.floor(math.sqrt(reach / alpha))))
    return min(size - 1, int(band))


def band_dropped_mass(alpha: float, radius: int, ndim: int) -> float:
    """Upper bound on the softmax mass the band leaves out, per query, over ``ndim`` axes.

    Along one axis the weights of the whole (padded) axis are
    ``e^{−α z²} / Σ_{z'} e^{−α z'²}`` at offsets ``z`` from the target, whose own
    ``e^0 = 1`` is in the denominator, so the keys at ``|z| > r`` carry at most
    ``t_r = 2 Σ_{z > r} e^{−α z²} <= 2 e^{−α(r+1)²} / (1 − e^{−α(2r+3)})``
    (``z² − (r+1)² >= (2r+3)(z − r − 1)``: a geometric series). The band's
    distribution over a product of windows keeps at least ``(1 − t_r)^D`` of the
    whole image's mass, so at most ``1 − (1 − t_r)^D <= D t_r`` is left out.

    Examples
    --------
    >>> f"{band_dropped_mass(1.0, 1, 2):.4e}"       # 2 axes, 2·2e^{-4}/(1 − e^{-5})
    '7.3760e-02'
    >>> band_dropped_mass(math.inf, 0, 3)
    0.0
    """
    if math.isinf(alpha):
        return 0.0
    if alpha <= 0.0:
        return 1.0
    ratio = math.exp(-alpha * (2 * radius + 3))
    tail = 2.0 * math.exp(-alpha * (radius + 1) ** 2) / (1.0 - ratio)
    return min(1.0, ndim * tail * (1 + 1e-12))


def axis_weights(alpha: float, radius: int) -> list[float]:
    """``g_z = e^{−α z²}`` for ``z = −r … r``, in float64 (``[1.0]`` for ``r = 0``).

    The softmax weight, relative to the target's ``e^0 = 1``, of the key at
    offset ``z`` from the target along one axis. Each entry is within
    ``(1 + u)(1 + 4u)`` of its exact value (``α z²`` rounded once, ``exp`` within
    ``4u``, ``u = 2^−53``) and the target's entry is exactly 1.

    Examples
    --------
    >>> [round(g, 6) for g in axis_weights(2.0, 2)]
    [0.000335, 0.135335, 1.0, 0.135335, 0.000335]
    >>> axis_weights(float("inf"), 1)
    [0.0, 1.0, 0.0]
    """
    if radius == 0:
        return [1.0]
    if alpha == 0.0:
        return [1.0] * (2 * radius + 1)
    if math.isinf(alpha):                           # hard attention: the target alone
        return [1.0 if z == 0 else 0.0 for z in range(-radius, radius + 1)]
    return [math.exp(-(alpha * (z * z))) for z in range(-radius, radius + 1)]


def _plain_sum(values: list[float]) -> float:
    """A float64 sum, left to right (``torch.compile`` traces it as constants)."""
    total = 0.0
    for v in values:
        total += v
    return total


def _blur(u: Any, axis: int, weights: list[float], n: int) -> Any:
    """One axis' banded softmax average at the targets ``t = 0 … n − 1`` (channels last).

    ``B[t] = Σ_z p_z(t) u[t + z]``: the softmax over the window offsets
    ``|z| <= r`` whose key ``t + z`` lies in ``[0, size)``, with
    ``p_z(t) = g_z / Σ_{z' valid} g_{z'}``. Targets whose window lies inside
    the image (all but ``r`` at each end) share the weights ``p_z = g_z / Z``;
    the others are computed with the same weights (keys outside contribute
    nothing) and then scaled by ``Z / Z(t)``. The weights ``p`` and scales are
    computed in float64 (sums left to right) and rounded once to the dtype;
    weights below the dtype's smallest normal number are left out (a weight of 0).
    """
    size, r = u.shape[axis], (len(weights) - 1) // 2
    total = _plain_sum(weights)
    tiny = torch.finfo(u.dtype).tiny
    num = u.narrow(axis, 0, n) * (1.0 / total)                  # the target: g_0 = 1
    for j, g in enumerate(weights):
        z = j - r
        lo, hi = max(0, -z), min(n - 1, size - 1 - z)         # targets whose key t + z exists
        if z == 0 or g / total < tiny or lo > hi:
            continue
        num.narrow(axis, lo, hi - lo + 1).add_(u.narrow(axis, lo + z, hi - lo + 1),
                                               alpha=g / total)
    for t in [*range(min(r, n)), *range(max(min(r, n), size - r), n)]:
        inside = _plain_sum([g for j, g in enumerate(weights) if 0 <= t + j - r < size])
        if inside != total:                                     # a window cut by the border
            num.narrow(axis, t, 1).mul_(total / inside)
    return num


# --------------------------------------------------------------------------- the computation


def _check_input(x: Any, weight: Any, nd: int, d_in: int) -> None:
    """Refuse what ``torch.nn.ConvNd`` refuses, with the exception it raises (``RuntimeError``)."""
    if not torch.is_tensor(x):
        raise ParameterTypeError(f"`x` must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in (nd + 1, nd + 2):
        raise InputMismatchError(
            f"expected a {nd + 1}-D (unbatched) or {nd + 2}-D (batched) input of shape "
            f"(N, d_in, *spatial) with {nd} spatial axes, got shape {tuple(x.shape)}"
        )
    if x.dtype != weight.dtype:
        raise InputMismatchError(
            f"input type ({x.dtype}) and weight type ({weight.dtype}) should be the same"
        )
    if x.device != weight.device:
        raise InputMismatchError(
            f"input ({x.device}) and weight ({weight.device}) should be on the same device"
        )
    axis = 0 if x.dim() == nd + 1 else 1
    if x.shape[axis] != d_in:
        raise InputMismatchError(
            f"expected an input with {d_in} channels on axis {axis}, got shape {tuple(x.shape)}"
        )


def _pad_channels_last(x: Any, pad_width: tuple[tuple[int, int], ...], mode: str) -> Any:
    """``x`` (N, C, *spatial) padded and moved to channels last: ``(N, *padded, C)``, contiguous.

    Written with out-of-place operations only: writing into slices of an empty
    tensor saves a copy, but ``torch.compile`` (inductor) crashed intermittently
    on its backward pass.
    """
    torch_pad = [p for lo_hi in reversed(pad_width) for p in lo_hi]
    if any(torch_pad):
        x = F.pad(x, torch_pad, mode=mode)
    return x.movedim(1, -1).contiguous()


def _output_shape(padded: tuple[int, ...], kernel_size, dilation, stride) -> tuple[int, ...]:
    out = []
    for axis, (size, k, d, s) in enumerate(zip(padded, kernel_size, dilation, stride)):
        span = size - d * (k - 1)
        if span < 1:
            raise InputMismatchError(
                f"kernel larger than the padded input on spatial axis {axis}: the kernel spans "
                f"{d * (k - 1) + 1} pixels but the padded input has {size}"
            )
        out.append((span - 1) // s + 1)
    return tuple(out)


def separable_conv_attention(x: Any, weight: Any, bias: Any, meta: tuple) -> Any:
    """The attention of :class:`SeparableConvAttention` as a function (module docstring).

    Parameters
    ----------
    x : Tensor, shape ``(N, d_in, *spatial)`` or ``(d_in, *spatial)``
    weight : Tensor, shape ``(d_out, d_in // groups, *kernel_size)``
        The heads' value maps ``W_{Δ_h}`` in PyTorch's kernel layout.
    bias : Tensor of shape ``(d_out,)`` or None
    meta : tuple
        ``(groups, stride, dilation, kernel_size, pad_width, pad_mode, alpha,
        band, memory_budget)``: plain Python values, so that ``torch.fx`` can
        record them.

    Returns
    -------
    Tensor, shape ``(N, d_out, *out_spatial)`` (or without ``N``)

    Raises
    ------
    InputMismatchError
        (a ``RuntimeError``, as ``torch.nn.ConvNd`` raises) a dtype, device,
        rank, channel count or size that does not fit.
    """
    groups, stride, dilation, kernel_size, pad_width, pad_mode, alpha, band, budget = meta
    nd = len(kernel_size)
    _check_input(x, weight, nd, weight.shape[1] * groups)
    unbatched = x.dim() == nd + 1
    if unbatched:
        x = x.unsqueeze(0)
    if pad_mode == "reflect" or pad_mode == "circular":
        for axis, ((lo, hi), size) in enumerate(zip(pad_width, x.shape[2:])):
            if max(lo, hi) >= size + (pad_mode == "circular"):
                raise InputMismatchError(
                    f"{pad_mode} padding ({lo}, {hi}) is too large for spatial axis {axis} of "
                    f"size {size}"
                )
    u = _pad_channels_last(x, pad_width, pad_mode)                    # (N, *padded, d_in)
    padded = tuple(int(s) for s in u.shape[1:-1])
    out = _output_shape(padded, kernel_size, dilation, stride)
    for i in range(nd):
        r = band_radius(alpha, x.dtype, band, padded[i])
        if r > 0:                     # r = 0: the target alone, with weight exactly 1
            # the targets along axis i: o·s + k·d for every output o and kernel index k
            n = dilation[i] * (kernel_size[i] - 1) + (out[i] - 1) * stride[i] + 1
            u = _blur(u, 1 + i, axis_weights(alpha, r), n)
    y = _apply_heads(u, weight, bias, groups, out, stride, dilation, kernel_size, budget)
    return y[0] if unbatched else y


torch.fx.wrap("separable_conv_attention")


def _heads_view(u: Any, out: tuple[int, ...], stride, dilation, kernel_size) -> Any:
    """Every head's average at its targets: ``(N, *out, *K, d_in)``, a view of the averaged image.

    Head ``h`` with kernel index ``k`` (offset ``Δ = k·d − ⌊d(K−1)/2⌋``) reads the
    averaged image at its targets ``o·s + ⌊d(K−1)/2⌋ + Δ = o·s + k·d`` in padded
    coordinates: a window of ``d(K−1)+1`` keys every ``s`` pixels
    (``Tensor.unfold``), every ``d``-th of them. Under ``torch.compile`` the heads
    are strided slices stacked instead: inductor (PyTorch 2.13, CPU) miscompiles
    the backward pass of overlapping ``unfold`` windows (wrong input gradients,
    corrupted memory).
    """
    nd = len(out)
    if torch.compiler.is_compiling():
        views = []
        for kidx in itertools.product(*[range(k) for k in kernel_size]):
            index = [slice(None)]
            for i in range(nd):
                start = kidx[i] * dilation[i]
                index.append(slice(start, start + (out[i] - 1) * stride[i] + 1, stride[i]))
            views.append(u[tuple(index)])                                  # (N, *out, C)
        return torch.stack(views, dim=1 + nd).reshape(
            (u.shape[0],) + tuple(out) + tuple(kernel_size) + (u.shape[-1],))
    v = u
    for i in range(nd):
        span = dilation[i] * (kernel_size[i] - 1) + 1
        v = v.narrow(1 + i, 0, (out[i] - 1) * stride[i] + span).unfold(1 + i, span, stride[i])
    v = v[(Ellipsis,) + tuple(slice(None, None, d) for d in dilation)]     # (N, *out, C, *K)
    return v.permute((0,) + tuple(range(1, nd + 1)) + tuple(range(nd + 2, 2 * nd + 2)) + (nd + 1,))


def _apply_heads(u, weight, bias, groups, out, stride, dilation, kernel_size, budget) -> Any:
    """``b + Σ_h z_h W_{Δ_h}`` with ``z_h`` head ``h``'s average; ``(N, d_out, *out)``.

    The heads' averages (:func:`_heads_view`) are stacked side by side for a
    block of rows at a time (at most ``budget`` bytes; whole samples when one
    fits) into a ``(rows, n_heads · d_in/groups)`` matrix per group, and
    multiplied by the value maps stacked the same way.
    """
    d_out, cig = weight.shape[0], weight.shape[1]
    n_heads, n_batch, pixels = math.prod(kernel_size), u.shape[0], math.prod(out)
    cog, width = d_out // groups, math.prod(kernel_size) * weight.shape[1]
    heads = _heads_view(u, out, stride, dilation, kernel_size).reshape(
        (n_batch, pixels) + tuple(kernel_size) + (groups, cig)).movedim(-2, 2)  # (N, P, g, *K, cig)
    if groups == 1:                                # column (k, c): head k's value map, channel c
        maps = weight.reshape(d_out, cig, n_heads).transpose(1, 2).reshape(d_out, width)
    else:
        maps = weight.reshape(groups, cog, cig, n_heads).permute(0, 3, 2, 1).reshape(groups, width, cog)
    per_block = max(1, budget // (groups * width * u.element_size()))   # rows per block
    samples = max(1, min(n_batch, per_block // pixels))
    cols = pixels if per_block >= pixels else per_block
    y = u.new_empty((n_batch, d_out, pixels))
    for n0 in range(0, n_batch, samples):
        for p0 in range(0, pixels, cols):
            blk = heads[n0:n0 + samples, p0:p0 + cols]
            nb, pb = blk.shape[0], blk.shape[1]
            if groups == 1:
                res = torch.matmul(maps, blk.reshape(nb, pb, width).transpose(1, 2))   # (nb, d_out, pb)
            else:
                a = blk.reshape(nb * pb, groups, width)
                res = torch.einsum("rgk,gko->rgo", a, maps).reshape(nb, pb, d_out).transpose(1, 2)
            y[n0:n0 + nb, :, p0:p0 + pb] = res          # blocks written in place: no concatenation
    if bias is not None:
        y = y.add_(bias[:, None])
    return y.reshape((n_batch, d_out) + tuple(out))


# --------------------------------------------------------------------------- the module


class SeparableConvAttention(nn.Module):
    """Theorem 1's attention layer for a convolution, evaluated per axis on a band.

    A drop-in replacement of a ``torch.nn.Conv{1,2,3}d``: same input and
    output shapes, the same ``state_dict`` keys (``weight``, ``bias``: the heads'
    value maps and ``b_out``), the convolution's hyper-parameters as attributes
    (``in_channels``, ``kernel_size``, ``stride``, ...), ``.to(dtype/device)``,
    autograd, ``torch.fx.symbolic_trace`` and ``torch.compile``. What it computes
    is attention: ``n_heads = prod(kernel_size)`` heads with the quadratic
    encoding ``v^(h) = −α(1, −2Δ_h)`` (Lemma 2), each a softmax over the keys of
    its band, and the value maps of Lemma 1 (module docstring).

    Parameters
    ----------
    weight : Tensor, shape ``(d_out, d_in // groups, *kernel_size)``
        Head ``h`` (raster order of kernel indices, offset ``Δ_h``) has value
        map ``W_val^(h) W_out^(h) = W_{Δ_h}``, the kernel slice at its index.
    bias : Tensor of shape ``(d_out,)`` or None
    alpha : float
        Inverse width ``α`` in ``[0, ∞]``; ``inf`` is hard attention.
    stride, padding, dilation, groups, padding_mode
        The convolution's, with PyTorch's semantics.
    band : "auto", int or None, optional
        The band's radius per axis (:func:`band_radius`); None attends over the
        whole padded image.
    memory_budget : int, optional
        Bytes of stacked head averages per block of rows.

    Raises
    ------
    ParameterValueError, ParameterTypeError, ShapeError
        Invalid hyper-parameters, ``alpha``, ``band`` or ``memory_budget``.

    Examples
    --------
    >>> conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
    >>> attn = SeparableConvAttention.from_conv(conv, alpha=40.0)
    >>> attn
    SeparableConvAttention(3, 8, kernel_size=(3, 3), stride=(2, 2), n_heads=9, alpha=40.0, band='auto', padding=(1, 1))
    >>> x = torch.randn(2, 3, 17, 17)
    >>> bool((attn(x) - conv(x)).abs().max() < 1e-5)
    True
    """

    def __init__(self, weight: Any, bias: Any = None, *, alpha: float, stride=1, padding=0,
                 dilation=1, groups: int = 1, padding_mode: str = "zeros",
                 band: int | str | None = "auto", memory_budget: int = DEFAULT_TORCH_BUDGET) -> None:
        super().__init__()
        if not (torch.is_tensor(weight) and weight.is_floating_point() and weight.dim() >= 3):
            raise ParameterTypeError(
                "`weight` must be a floating torch.Tensor of shape (d_out, d_in // groups, "
                f"*kernel_size), got {type(weight).__name__} {tuple(getattr(weight, 'shape', ()))}"
            )
        cfg = make_config(tuple(weight.shape[2:]) + (weight.shape[1], weight.shape[0]),
                          stride=stride, padding=padding, dilation=dilation, groups=groups,
                          padding_mode=padding_mode)
        if bias is not None and (not torch.is_tensor(bias) or tuple(bias.shape) != (cfg.d_out,)):
            raise ParameterValueError(
                f"`bias` must be None or a tensor of shape ({cfg.d_out},), got "
                f"{type(bias).__name__} {tuple(getattr(bias, 'shape', ()))}"
            )
        if isinstance(band, bool) or not (band is None or band == "auto"
                                          or (isinstance(band, int) and band >= 0)):
            raise ParameterValueError(f"`band` must be 'auto', an int >= 0 or None, got {band!r}")
        self.alpha = as_alpha(alpha)
        self.band = band
        self.memory_budget = as_int(memory_budget, "memory_budget", minimum=1)
        self.config: ConvConfig = cfg
        self.weight = nn.Parameter(weight.detach().clone())
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self.in_channels, self.out_channels = cfg.d_in, cfg.d_out
        self.kernel_size, self.stride, self.dilation = cfg.kernel_size, cfg.stride, cfg.dilation
        self.padding, self.groups, self.padding_mode = cfg.padding, cfg.groups, cfg.padding_mode
        self.n_heads = math.prod(cfg.kernel_size)

    @classmethod
    def from_conv(cls, module: Any, *, alpha: float, band: int | str | None = "auto",
                  memory_budget: int = DEFAULT_TORCH_BUDGET) -> SeparableConvAttention:
        """The module for a ``torch.nn.Conv{1,2,3}d``, with its weights, device, dtype and mode.

        The caller checks that ``module`` is a plain convolution
        (:func:`attn_expressivity.interop.convert.convertible`).
        """
        padding = module.padding if isinstance(module.padding, str) else tuple(module.padding)
        out = cls(module.weight, module.bias, alpha=alpha, stride=tuple(module.stride),
                  padding=padding, dilation=tuple(module.dilation), groups=module.groups,
                  padding_mode=module.padding_mode, band=band, memory_budget=memory_budget)
        return out.train(module.training)

    @property
    def meta(self) -> tuple:
        """The hyper-parameters :func:`separable_conv_attention` takes, as plain values."""
        cfg = self.config
        return (cfg.groups, cfg.stride, cfg.dilation, cfg.kernel_size, cfg.pad_width,
                _TORCH_PAD_MODE[cfg.padding_mode], self.alpha, self.band, self.memory_budget)

    def forward(self, x: Any) -> Any:
        """``x`` of shape ``(N, d_in, *spatial)`` or ``(d_in, *spatial)``; the convolution's output shape."""
        return separable_conv_attention(x, self.weight, self.bias, self.meta)

    def extra_repr(self) -> str:
        cfg = self.config
        nd = cfg.ndim
        s = (f"{cfg.d_in}, {cfg.d_out}, kernel_size={cfg.kernel_size}, stride={cfg.stride}, "
             f"n_heads={self.n_heads}, alpha={self.alpha}, band={self.band!r}")
        if cfg.padding not in ("valid", (0,) * nd):
            s += f", padding={cfg.padding!r}"
        if cfg.dilation != (1,) * nd:
            s += f", dilation={cfg.dilation}"
        if cfg.groups != 1:
            s += f", groups={cfg.groups}"
        if self.bias is None:
            s += ", bias=False"
        if cfg.padding_mode != "zeros":
            s += f", padding_mode={cfg.padding_mode!r}"
        return s
