"""PyTorch in and out: ``torch.nn.Conv{1,2,3}d`` → :class:`ConvAttention` → ``torch.nn.Module``.

* :func:`from_torch` reads a PyTorch convolution (any kernel size, stride,
  padding, dilation, groups, bias and padding mode) and returns the attention
  layer of Theorem 1 (:func:`attn_expressivity.conv_to_mhsa`).
* :func:`to_torch` turns a :class:`ConvAttention` back into a
  ``torch.nn.Module`` that takes and returns channels-first tensors
  (``NCL``, ``NCHW``, ``NCDHW``, like the convolution it expresses) and
  computes the same attention, either with
  ``torch.nn.functional.scaled_dot_product_attention`` (``route="sdpa"``) or
  with a stock ``torch.nn.MultiheadAttention`` (``route="multihead"``).

How the attention is mapped onto PyTorch's primitives. The layer's scores are
purely positional (``W_qry = W_key = 0``): for head ``h`` and query ``q``,
key ``k``, ``A^(h)_{q,k} = v^(h)ᵀ Ŵ_keyᵀ r_{k−q}``, an ``(n_q, n_k)`` matrix per
head that does not depend on the input. Both routes feed queries and keys of
zeros (so ``q·kᵀ = 0`` whatever the scaling) and pass ``β·A`` as an *additive
float mask*; softmax of ``0 + β·A`` is the layer's softmax. Hard attention
(``alpha = inf``, i.e. ``β = ∞``) cannot be written as a finite mask: the mask
is ``0`` on the row maxima of ``A`` (the target key ``q + Δ_h``) and ``−inf``
elsewhere, which is exactly the ``β → ∞`` limit (uniform weight on the maxima).
``torch.nn.MultiheadAttention`` uses the opposite convention for *boolean*
masks (``True`` means "may not attend"), so its hard mask is
``scores != rowmax``; its float masks are added, as in SDPA.

Only the queries the convolution keeps are computed: the padded image is the
key set, and the queries are the cropped, strided positions
``p = o·s + ⌊d(K−1)/2⌋`` (:meth:`ConvAttention.crop`), so the module never
builds outputs it would throw away. The mask has ``n_heads · n_out · n_padded``
entries, built on every call (it depends only on the input's spatial shape).

Weight layouts are converted here only: PyTorch's
``(d_out, d_in // groups, *kernel_size)`` ↔ the package's
``(*kernel_size, d_in // groups, d_out)`` (:func:`torch_to_kernel`,
:func:`kernel_to_torch`).

torch is imported when one of these functions is called, never at import
time; without it they raise :class:`~attn_expressivity.OptionalDependencyError`
with the command that installs it.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .._validation import as_alpha, as_float_array
from ..attention.layer import DEFAULT_MEMORY_BUDGET
from ..convolution.config import check_image
from ..convolution.reference import conv
from ..errors import (
    OptionalDependencyError,
    ParameterTypeError,
    ParameterValueError,
    ShapeError,
    UnsupportedConfigurationError,
)
from ..theorem.construction import ConvAttention, conv_to_mhsa

__all__ = ["from_torch", "to_torch", "torch_to_kernel", "kernel_to_torch", "cross_check",
           "convertible", "TORCH_REQUIREMENT"]

#: The pinned PyTorch requirement of the ``torch`` extra.
TORCH_REQUIREMENT = "torch==2.13.0"

_ROUTES = ("sdpa", "multihead", "separable")


def _require_torch() -> Any:
    """Import torch or raise :class:`OptionalDependencyError` with the install command."""
    try:
        import torch
    except ImportError as exc:
        raise OptionalDependencyError(
            "PyTorch interop needs torch, which is not installed; install it with "
            f"`pip install {TORCH_REQUIREMENT}` (or `pip install 'attn-expressivity[torch]'`)"
        ) from exc
    return torch


# --------------------------------------------------------------------------- layouts


def torch_to_kernel(weight: np.ndarray) -> np.ndarray:
    """PyTorch's kernel layout to the package's.

    Parameters
    ----------
    weight : ndarray, shape ``(d_out, d_in // groups, *kernel_size)``

    Returns
    -------
    ndarray, shape ``(*kernel_size, d_in // groups, d_out)``
        A transposed view of ``weight``.

    Raises
    ------
    ShapeError
        Fewer than three axes.
    ParameterTypeError, NonFiniteError
        A non-floating or non-finite array.

    Examples
    --------
    >>> torch_to_kernel(np.zeros((5, 2, 3, 4))).shape
    (3, 4, 2, 5)
    """
    w = as_float_array(weight, "weight")
    if w.ndim < 3:
        raise ShapeError(
            f"a PyTorch kernel has shape (d_out, d_in // groups, *kernel_size) with at least "
            f"one spatial axis, got shape {w.shape}"
        )
    nd = w.ndim - 2
    return w.transpose(tuple(range(2, nd + 2)) + (1, 0))


def kernel_to_torch(weight: np.ndarray) -> np.ndarray:
    """The package's kernel layout to PyTorch's (inverse of :func:`torch_to_kernel`).

    Parameters
    ----------
    weight : ndarray, shape ``(*kernel_size, d_in // groups, d_out)``

    Returns
    -------
    ndarray, shape ``(d_out, d_in // groups, *kernel_size)``

    Raises
    ------
    ShapeError, ParameterTypeError, NonFiniteError
        As for :func:`torch_to_kernel`.

    Examples
    --------
    >>> w = np.arange(24.0).reshape(3, 4, 2, 1)
    >>> bool((torch_to_kernel(kernel_to_torch(w)) == w).all())
    True
    """
    w = as_float_array(weight, "weight")
    if w.ndim < 3:
        raise ShapeError(
            f"a kernel has shape (*kernel_size, d_in // groups, d_out) with at least one "
            f"spatial axis, got shape {w.shape}"
        )
    nd = w.ndim - 2
    return w.transpose((nd + 1, nd) + tuple(range(nd)))


# --------------------------------------------------------------------------- torch -> ours

#: Class attributes a subclass may override without changing what the module computes:
#: construction, initialisation, printing, copying, pickling and class metadata.
_HARMLESS_OVERRIDES = frozenset({
    "__init__", "__init_subclass__", "__doc__", "__module__", "__qualname__", "__annotations__",
    "__dict__", "__weakref__", "__firstlineno__", "__static_attributes__", "__orig_bases__",
    "__parameters__", "__slots__", "__abstractmethods__", "_abc_impl", "__constants__", "_version",
    "reset_parameters", "extra_repr", "__repr__", "__getstate__", "__setstate__", "__deepcopy__",
    "__copy__", "__reduce__", "__reduce_ex__",
})


def _hooks(module: Any) -> str | None:
    """The forward or backward hooks that would run when ``module`` is called, named."""
    from torch.nn.modules import module as torch_module

    name = type(module).__name__
    if module._forward_hooks or module._forward_pre_hooks:
        return f"{name} has forward hooks"
    if module._backward_hooks or module._backward_pre_hooks:
        return f"{name} has backward hooks"
    if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
        return "global forward hooks are registered (torch.nn.modules.module.register_module_forward_hook)"
    if torch_module._global_backward_hooks or torch_module._global_backward_pre_hooks:
        return "global backward hooks are registered (torch.nn.modules.module.register_module_full_backward_hook)"
    return None


def _customisation(module: Any, base: type, *, parametrised: bool = False) -> str | None:
    """Why calling ``module`` may compute something other than ``base``'s computation on its state.

    ``module`` is an instance of ``base`` (a ``torch.nn`` class). What ``module(x)``
    runs is ``type(module).__call__`` → ``_wrapped_call_impl`` →
    ``_compiled_call_impl`` or ``_call_impl`` → the hooks and ``forward`` → the
    methods ``forward`` calls, every attribute read through ``__getattribute__``
    and ``__getattr__``. ``module`` computes what ``base`` computes when none of
    these is replaced: no hook (the module's or a global one), no instance
    attribute that shadows a method of the class, no compiled call, and no class
    between ``type(module)`` and ``base`` that overrides an attribute of ``base``
    with a function or descriptor (apart from construction, initialisation,
    printing, copying and pickling, :data:`_HARMLESS_OVERRIDES`) or defines a
    property. With ``parametrised=True`` the properties of
    ``torch.nn.utils.parametrize`` are allowed: they compute the weight the
    forward pass reads, which is also what a reader of ``module.weight`` gets.

    Returns a sentence, or None.
    """
    name = type(module).__name__
    hooks = _hooks(module)
    if hooks is not None:
        return hooks
    if module.__dict__.get("_compiled_call_impl") is not None:
        return f"{name} is called through _compiled_call_impl (module.compile() or an assignment)"
    for key in module.__dict__:
        if key != "_compiled_call_impl" and callable(getattr(type(module), key, None)):
            return f"{name} has an instance attribute {key} that replaces the method {key}"
    allowed = set(getattr(module, "parametrizations", {})) if parametrised else set()
    for cls in type(module).__mro__:
        if cls is base or cls in base.__mro__:
            break
        for key, value in vars(cls).items():
            if key in _HARMLESS_OVERRIDES or key in allowed:
                continue
            descriptor = hasattr(type(value), "__get__") or callable(value)
            if descriptor and hasattr(base, key):
                return f"{name} overrides {key}"
            if hasattr(type(value), "__set__") or hasattr(type(value), "__delete__"):
                return f"{name} defines {key} as a property"
    return None


def _conv_state(module: Any) -> str | None:
    """Why a ``ConvNd``'s attributes do not describe what its ``forward`` computes, or None."""
    nd = module.weight.dim() - 2
    name, w = type(module).__name__, module.weight
    pairs = [("in_channels", w.shape[1] * module.groups), ("out_channels", w.shape[0]),
             ("kernel_size", tuple(w.shape[2:]))]
    for attr, want in pairs:
        if getattr(module, attr) != want:
            return (f"{name}.{attr} is {getattr(module, attr)!r} but its weight of shape "
                    f"{tuple(w.shape)} and groups={module.groups} give {want!r}")
    if module.bias is not None and tuple(module.bias.shape) != (w.shape[0],):
        return f"{name}.bias has shape {tuple(module.bias.shape)}, not ({w.shape[0]},)"
    for attr in ("stride", "dilation") + (() if isinstance(module.padding, str) else ("padding",)):
        value = getattr(module, attr)
        if not (isinstance(value, tuple) and len(value) == nd
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
            return f"{name}.{attr} must be a tuple of {nd} ints, got {value!r}"
    if module.padding_mode != "zeros":
        if isinstance(module.padding, str):
            totals = [d * (k - 1) for d, k in zip(module.dilation, module.kernel_size)] \
                if module.padding == "same" else [0] * nd
            want = [p for t in reversed(totals) for p in (t // 2, t - t // 2)]
        else:
            want = [p for p in reversed(module.padding) for _ in (0, 1)]
        if list(module._reversed_padding_repeated_twice) != want:
            return (f"{name}._reversed_padding_repeated_twice is "
                    f"{list(module._reversed_padding_repeated_twice)}, which forward pads with, "
                    f"but padding={module.padding!r} describes {want}")
    return None


def convertible(module: Any) -> str | None:
    """Why ``module`` cannot be converted as a plain convolution, or None when it can.

    A module is converted only when what calling it computes is the
    convolution its weights and hyper-parameters describe. Accepted: an
    instance of ``torch.nn.Conv1d``, ``Conv2d`` or ``Conv3d``, or of a subclass
    that overrides nothing but ``__init__``, ``reset_parameters``,
    ``extra_repr``, ``__repr__`` and the copying and pickling methods (it may
    add methods and attributes of its own), with initialised floating-point
    weights, attributes that agree with the weight's shape (and a padding that
    agrees with the one ``forward`` applies), no parametrisation, no hook (the
    module's, forward or backward, or a global one), no instance attribute
    that replaces a method (``forward``, ``_conv_forward``, ``_call_impl``,
    ...) and no compiled call. Refused: everything else, among it subclasses
    that override ``forward``, ``_conv_forward``, ``__call__``, ``_call_impl``,
    ``__getattr__`` or ``__getattribute__``, or define a property.

    Parameters
    ----------
    module : torch.nn.Module

    Returns
    -------
    str or None
        None when ``module`` converts as a plain convolution; else a sentence
        naming the reason.

    Examples
    --------
    >>> import torch
    >>> class SamePad(torch.nn.Conv2d):
    ...     def forward(self, x):
    ...         return super().forward(torch.nn.functional.pad(x, (1, 1, 1, 1)))
    >>> convertible(torch.nn.Conv2d(2, 2, 3)) is None
    True
    >>> print(convertible(SamePad(2, 2, 3)))
    SamePad overrides forward: its output is not the convolution its weights and hyper-parameters describe
    """
    torch = _require_torch()
    from torch.nn.utils import parametrize

    nn = torch.nn
    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    name = type(module).__name__
    base = next((k for k in kinds if isinstance(module, k)), None)
    if base is None:
        if isinstance(module, nn.modules.conv._ConvNd):
            what = "a transposed convolution" if getattr(module, "transposed", False) else "not a Conv1d/2d/3d"
            return f"{name} is {what}: Theorem 1 is about convolutions (cross-correlations)"
        return f"{name} is not a torch.nn.Conv1d, Conv2d or Conv3d"
    if isinstance(module.weight, nn.parameter.UninitializedParameter):
        return f"{name} has uninitialised (lazy) weights; run the network once before converting it"
    if parametrize.is_parametrized(module):
        return (f"{name} has a parametrised weight (torch.nn.utils.parametrize): converting it "
                "would freeze the parametrisation")
    reason = _customisation(module, base)
    if reason is not None:
        if reason.startswith("global"):
            return f"{reason}: they would run on the converted module, which is not a convolution"
        if "hooks" in reason:
            return f"{reason}, which the converted module would not run"
        return f"{reason}: its output is not the convolution its weights and hyper-parameters describe"
    if not module.weight.is_floating_point():
        return f"{name} has {module.weight.dtype} weights; a floating-point dtype is needed"
    return _conv_state(module)


def from_torch(module: Any, *, alpha: float = math.inf, d_head: int | str | None = None,
               rank_tol: float | None = None,
               memory_budget: int = DEFAULT_MEMORY_BUDGET) -> ConvAttention:
    """The attention layer (Theorem 1) that expresses a PyTorch convolution.

    Reads the weight, bias, stride, padding (``"same"``, ``"valid"`` or
    per-axis ints), dilation, groups and padding mode of ``module`` and calls
    :func:`attn_expressivity.conv_to_mhsa`. The weights are copied to numpy in
    the module's dtype (float32 or float64).

    Parameters
    ----------
    module : torch.nn.Conv1d, torch.nn.Conv2d or torch.nn.Conv3d
        Any hyper-parameters, any ``padding_mode``; transposed convolutions are
        not convolutions in this sense and are refused.
    alpha : float, optional
        Inverse width of the heads, in ``[0, ∞]``. Default ``inf``: hard
        attention, which reproduces the convolution to rounding.
    d_head, rank_tol, memory_budget
        As for :func:`attn_expressivity.conv_to_mhsa`.

    Returns
    -------
    ConvAttention
        Takes channels-last numpy arrays ``(*batch, *spatial, d_in)``; use
        :func:`to_torch` for a module on ``(N, C, *spatial)`` tensors.

    Raises
    ------
    OptionalDependencyError
        torch is not installed.
    ParameterTypeError
        ``module`` is not a ``Conv1d``/``Conv2d``/``Conv3d``, or its weights are
        not float32/float64.
    ParameterValueError
        An uninitialised lazy module, or a bad ``alpha``/``d_head``.
    UnsupportedConfigurationError
        A subclass that overrides ``forward`` (or ``_conv_forward``), a module with
        forward hooks or a parametrised weight: its output is not the plain
        convolution its weights describe (:func:`convertible`).
    HeadDimensionError
        ``d_head`` below the rank of a kernel slice.

    Examples
    --------
    >>> import torch
    >>> m = torch.nn.Conv2d(2, 3, (3, 2), padding="same", padding_mode="reflect",
    ...                     dtype=torch.float64)
    >>> layer = from_torch(m)
    >>> layer.n_heads, layer.config.padding_mode, layer.kernel.shape
    (6, 'reflect', (3, 2, 2, 3))
    """
    torch = _require_torch()
    kinds = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    if not isinstance(module, kinds):
        raise ParameterTypeError(
            f"`module` must be a torch.nn.Conv1d, Conv2d or Conv3d, got {type(module).__name__}"
        )
    if isinstance(module.weight, torch.nn.parameter.UninitializedParameter):
        raise ParameterValueError(
            f"`module` ({type(module).__name__}) has uninitialised (lazy) weights; run it "
            "on an input once before converting it"
        )
    if module.weight.dtype not in (torch.float32, torch.float64):
        raise ParameterTypeError(
            f"`module` weights must be float32 or float64, got {module.weight.dtype}"
        )
    reason = convertible(module)
    if reason is not None:
        raise UnsupportedConfigurationError(
            f"`module` cannot be converted as a plain convolution: {reason}"
        )
    weight = torch_to_kernel(module.weight.detach().cpu().numpy())
    bias = None if module.bias is None else module.bias.detach().cpu().numpy()
    padding = module.padding if isinstance(module.padding, str) else tuple(module.padding)
    return conv_to_mhsa(
        np.ascontiguousarray(weight), bias, alpha=as_alpha(alpha), stride=tuple(module.stride),
        padding=padding, dilation=tuple(module.dilation), groups=module.groups,
        padding_mode=module.padding_mode, d_head=d_head, rank_tol=rank_tol,
        memory_budget=memory_budget,
    )


# --------------------------------------------------------------------------- ours -> torch


def to_torch(layer: ConvAttention, *, route: str = "sdpa", dtype: Any = None) -> Any:
    """A ``torch.nn.Module`` computing ``layer`` on channels-first tensors.

    The module pads its input with the convolution's padding mode, attends
    from the kept (cropped, strided) query positions to every key of the
    padded image with the positional scores as an additive mask, and applies
    ``W_out`` and the bias (module docstring). Input ``(N, d_in, *spatial)``
    (``NCL``, ``NCHW`` or ``NCDHW``; the batch axis may be left out, as with
    ``torch.nn.Conv2d``), output ``(N, d_out, *out_spatial)``: the shapes of
    the convolution ``layer`` expresses.

    Parameters
    ----------
    layer : ConvAttention
        From :func:`attn_expressivity.conv_to_mhsa` or :func:`from_torch`.
    route : {"sdpa", "multihead", "separable"}, optional
        ``"sdpa"`` (default): ``torch.nn.functional.scaled_dot_product_attention``
        with ``(n_heads, n_out, n_padded)`` float masks. ``"multihead"``: a stock
        ``torch.nn.MultiheadAttention`` (boolean mask for hard attention, where
        ``True`` means masked; float mask otherwise) followed by a
        ``torch.nn.Linear`` for ``W_out`` and the bias. ``"separable"``:
        :class:`~attn_expressivity.interop.torch_separable.SeparableConvAttention`,
        per axis and banded, whose memory does not grow with ``n_out · n_padded``;
        it holds each head's value map as the product ``W_val^(h) W_out^(h) = W_{Δ_h}``
        (the kernel slice), so it takes a layer whose scores are Lemma 2's and whose
        value/output blocks express the kernel (any layer of :func:`conv_to_mhsa`).
    dtype : torch.dtype, optional
        Default: the dtype of ``layer``'s weights (float64 or float32).

    Returns
    -------
    torch.nn.Module
        Its weights are trainable parameters initialised from ``layer``.
        Memory per call is ``O(n_heads · n_out · n_padded)`` for the mask of the
        dense routes.

    Raises
    ------
    OptionalDependencyError
        torch is not installed.
    ParameterTypeError
        ``layer`` is not a :class:`ConvAttention`, or ``dtype`` is not a
        floating torch dtype.
    ParameterValueError
        Unknown ``route``.
    UnsupportedConfigurationError
        A layer with content-dependent scores or a non-quadratic encoding;
        for ``"separable"``, also position coefficients other than Lemma 2's or
        value/output blocks that do not express the kernel.

    Examples
    --------
    >>> import torch
    >>> m = torch.nn.Conv1d(2, 3, 4, stride=2, padding=1, padding_mode="circular",
    ...                     dtype=torch.float64)
    >>> x = torch.randn(5, 2, 11, dtype=torch.float64)
    >>> attn = to_torch(from_torch(m))
    >>> with torch.no_grad():
    ...     err = (attn(x) - m(x)).abs().max().item()
    >>> attn(x).shape, err < 1e-12
    (torch.Size([5, 3, 5]), True)
    """
    torch = _require_torch()
    if not isinstance(layer, ConvAttention):
        raise ParameterTypeError(f"`layer` must be a ConvAttention, got {type(layer).__name__}")
    if not isinstance(route, str) or route not in _ROUTES:
        raise ParameterValueError(f"`route` must be one of {_ROUTES}, got {route!r}")
    if dtype is None:
        dtype = {np.dtype(np.float32): torch.float32}.get(layer.mhsa.w_val.dtype, torch.float64)
    elif not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ParameterTypeError(f"`dtype` must be a floating torch.dtype, got {dtype!r}")
    if route == "separable":
        return _separable_from_layer(layer, dtype)
    from .torch_modules import MultiheadConvAttention, SDPAConvAttention

    cls = SDPAConvAttention if route == "sdpa" else MultiheadConvAttention
    return cls(layer, dtype)


def _separable_from_layer(layer: ConvAttention, dtype: Any) -> Any:
    """The separable module of a layer of :func:`conv_to_mhsa` (checked to be one)."""
    torch = _require_torch()
    from ..attention.encoding import quadratic_head_vectors
    from ..convolution.slices import kernel_slices
    from ..theorem.factorisation import factorisation_allowance
    from .torch_modules import positional_coefficients
    from .torch_separable import SeparableConvAttention

    cfg, m = layer.config, layer.mhsa
    coef = positional_coefficients(layer)                   # refuses content terms
    finite = math.isfinite(layer.alpha)
    want = quadratic_head_vectors(layer.shifts, layer.alpha if finite else 1.0).astype(coef.dtype)
    if not (np.array_equal(coef, want) and m.beta == (1.0 if finite else math.inf)):
        raise UnsupportedConfigurationError(
            "route 'separable' computes the scores of Lemma 2 (v = -alpha (1, -2 Delta_h)); "
            f"this layer's position coefficients or beta differ (alpha = {layer.alpha})"
        )
    mats = kernel_slices(layer.kernel, cfg.groups)[layer.kernel_indices]
    w_out = m.w_out.reshape(m.n_heads, m.d_head, cfg.d_out)
    for h in range(m.n_heads):
        if not (np.abs(mats[h] - m.w_val[h] @ w_out[h]).max()
                <= factorisation_allowance(mats[h], m.w_val[h], w_out[h], layer.rank_tol)):
            raise UnsupportedConfigurationError(
                f"route 'separable' holds each head's value map as its kernel slice; head {h} "
                "has value/output blocks that do not express it"
            )
    weight = torch.as_tensor(np.ascontiguousarray(kernel_to_torch(layer.kernel)), dtype=dtype)
    bias = None if layer.bias is None else torch.as_tensor(layer.bias, dtype=dtype)
    return SeparableConvAttention(weight, bias, alpha=layer.alpha, stride=cfg.stride,
                                  padding=cfg.padding, dilation=cfg.dilation, groups=cfg.groups,
                                  padding_mode=cfg.padding_mode)


# --------------------------------------------------------------------------- cross-check


def _torch_conv(layer: ConvAttention, dtype: Any) -> Any:
    """The ``torch.nn.Conv{1,2,3}d`` with ``layer``'s kernel, bias and hyper-parameters."""
    torch = _require_torch()
    cfg = layer.config
    if cfg.ndim > 3:
        raise UnsupportedConfigurationError(
            f"PyTorch has convolution modules for 1, 2 and 3 spatial axes, the layer has {cfg.ndim}"
        )
    cls = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)[cfg.ndim - 1]
    m = cls(cfg.d_in, cfg.d_out, cfg.kernel_size, stride=cfg.stride, padding=cfg.padding,
            dilation=cfg.dilation, groups=cfg.groups, bias=layer.bias is not None,
            padding_mode=cfg.padding_mode, dtype=dtype)
    with torch.no_grad():
        m.weight.copy_(torch.as_tensor(np.ascontiguousarray(kernel_to_torch(layer.kernel)), dtype=dtype))
        if layer.bias is not None:
            m.bias.copy_(torch.as_tensor(layer.bias, dtype=dtype))
    return m


def cross_check(layer: ConvAttention, x: np.ndarray,
                routes: tuple[str, ...] = ("sdpa", "multihead")) -> dict[str, float]:
    """Run ``layer`` and the convolution it expresses in PyTorch on ``x``.

    Builds the ``torch.nn.Conv{1,2,3}d`` with ``layer``'s kernel and
    hyper-parameters and compares it with :func:`to_torch` (the ``routes``
    given) and with the package's reference :func:`attn_expressivity.conv`.

    Parameters
    ----------
    layer : ConvAttention
    x : ndarray, shape ``(*batch, *spatial, d_in)``
        Channels last, as for ``layer`` itself; moved to channels first here.
    routes : tuple of str, optional
        Any of ``"sdpa"``, ``"multihead"`` (the default pair) and ``"separable"``.

    Returns
    -------
    dict
        ``max_abs_error_<route>``: ``max |to_torch(layer, route)(x) − torch conv(x)|``
        per route; ``max_abs_error_conv``: ``max |conv(x) − torch conv(x)|``.

    Raises
    ------
    OptionalDependencyError
        torch is not installed.
    ShapeError, ParameterTypeError, NonFiniteError
        A bad ``x``.

    Examples
    --------
    >>> from attn_expressivity.convolution.instances import random_instance
    >>> w, x, b = random_instance(kernel_size=3, in_channels=2, out_channels=2, image_size=5)
    >>> errors = cross_check(conv_to_mhsa(w, b, alpha=float("inf")), x,
    ...                      routes=("sdpa", "multihead", "separable"))
    >>> sorted(errors), all(e < 1e-12 for e in errors.values())
    (['max_abs_error_conv', 'max_abs_error_multihead', 'max_abs_error_sdpa', 'max_abs_error_separable'], True)
    """
    torch = _require_torch()

    if not isinstance(layer, ConvAttention):
        raise ParameterTypeError(f"`layer` must be a ConvAttention, got {type(layer).__name__}")
    if isinstance(routes, str) or not all(isinstance(r, str) and r in _ROUTES for r in routes):
        raise ParameterValueError(f"`routes` must be a tuple of names from {_ROUTES}, got {routes!r}")
    x = as_float_array(x, "x")
    cfg = layer.config
    check_image(x, cfg)
    dtype = torch.float32 if np.result_type(x, layer.kernel) == np.float32 else torch.float64
    nd = cfg.ndim
    batch = x.shape[: x.ndim - nd - 1]
    xt = torch.as_tensor(np.moveaxis(x.reshape((-1,) + x.shape[len(batch):]), -1, 1).copy(),
                         dtype=dtype)                                         # (N, d_in, *spatial)
    ours = conv(x, layer.kernel, layer.bias, stride=cfg.stride, padding=cfg.padding,
                dilation=cfg.dilation, groups=cfg.groups, padding_mode=cfg.padding_mode)
    ours_t = torch.as_tensor(np.moveaxis(ours.reshape((-1,) + ours.shape[len(batch):]), -1, 1).copy(),
                             dtype=dtype)
    result = {}
    with torch.no_grad(), warnings.catch_warnings():
        # torch notes that "same" with an even kernel copies the input: expected here
        warnings.filterwarnings("ignore", message="Using padding='same'", category=UserWarning)
        want = _torch_conv(layer, dtype)(xt)
        for route in routes:
            got = to_torch(layer, route=route, dtype=dtype)(xt)
            result[f"max_abs_error_{route}"] = float((got - want).abs().max())
        result["max_abs_error_conv"] = float((ours_t - want).abs().max())
    return result
