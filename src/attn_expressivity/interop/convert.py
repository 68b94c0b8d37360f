"""Whole networks: replace every convolution of a ``torch.nn.Module`` by its attention layer.

:func:`convert_model` returns a converted copy and a :class:`ConversionReport`
naming each convolution it replaced and each it did not, with the reason.
:func:`~attn_expressivity.interop.torch.convertible` is the test both it and
:func:`~attn_expressivity.interop.torch.from_torch` apply: a module is converted only when its output *is* the convolution its
weights and hyper-parameters describe. A subclass of ``Conv2d`` that overrides
``forward`` (say, to pad "same" from the input's size with ``padding=0`` on the
module) computes something else, and reading its weights as a plain convolution
would be a silent wrong conversion; so would ignoring a forward hook or a
parametrised weight. Such modules are refused (``strict=True``) or left in place
and listed (``strict=False``), never converted as if they were plain.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

from .._validation import as_alpha
from ..errors import ParameterTypeError, ParameterValueError, UnsupportedConfigurationError
from .torch import _require_torch, convertible

__all__ = ["ROUTES", "ConversionReport", "convert_model", "convertible"]

#: The routes :func:`convert_model` can convert to: the separable banded module (scales to
#: ImageNet sizes) and the two dense routes of :func:`~attn_expressivity.interop.torch.to_torch`.
ROUTES = ("separable", "sdpa", "multihead")

@dataclass
class ConversionReport:
    """What :func:`convert_model` converted and what it did not.

    Attributes
    ----------
    converted : list of dict
        One entry per converted convolution: ``name`` (its qualified name; a
        module registered under several names lists them all in ``names``),
        ``type``, ``kernel_size``, ``n_heads``, ``stride``, ``padding``,
        ``dilation``, ``groups``, ``padding_mode``, ``in_channels``,
        ``out_channels``.
    skipped : list of dict
        ``name``, ``type`` and ``reason`` of each convolution-like module left as it was.
    alpha : float
    route : str
    """

    converted: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    alpha: float = math.inf
    route: str = "separable"

    @property
    def n_heads(self) -> int:
        """Heads over every converted layer."""
        return sum(c["n_heads"] for c in self.converted)

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON dictionary (``alpha = inf`` written as the string ``"inf"``)."""
        return {"alpha": self.alpha if math.isfinite(self.alpha) else "inf", "route": self.route,
                "converted": [dict(c) for c in self.converted],
                "skipped": [dict(s) for s in self.skipped], "n_heads": self.n_heads}

    def summary(self) -> str:
        """One line per converted and skipped module."""
        lines = [f"converted {len(self.converted)} convolution(s) to attention "
                 f"({self.n_heads} heads, alpha={self.alpha}, route={self.route}); "
                 f"skipped {len(self.skipped)}"]
        for c in self.converted:
            lines.append(f"  {c['name']}: {c['type']} {tuple(c['kernel_size'])} stride "
                         f"{tuple(c['stride'])} -> {c['n_heads']} heads")
        for s in self.skipped:
            lines.append(f"  SKIPPED {s['name']}: {s['reason']}")
        return "\n".join(lines)


def _describe(name: str, module: Any, n_heads: int) -> dict[str, Any]:
    padding = module.padding if isinstance(module.padding, str) else list(module.padding)
    return {"name": name, "names": [name], "type": type(module).__name__,
            "kernel_size": list(module.kernel_size), "n_heads": n_heads,
            "stride": list(module.stride), "padding": padding,
            "dilation": list(module.dilation), "groups": module.groups,
            "padding_mode": module.padding_mode, "in_channels": module.in_channels,
            "out_channels": module.out_channels}


def _convert_one(module: Any, alpha: float, route: str, band: Any, memory_budget: int | None,
                 d_head: Any) -> Any:
    """The attention module for one plain convolution, on its device and dtype."""
    if route == "separable":
        from .torch_separable import DEFAULT_TORCH_BUDGET, SeparableConvAttention

        return SeparableConvAttention.from_conv(
            module, alpha=alpha, band=band,
            memory_budget=DEFAULT_TORCH_BUDGET if memory_budget is None else memory_budget)
    from .torch import from_torch, to_torch

    layer = from_torch(module, alpha=alpha, d_head=d_head)
    out = to_torch(layer, route=route, dtype=module.weight.dtype)
    return out.to(module.weight.device).train(module.training)


def convert_model(model: Any, *, alpha: float, route: str = "separable", strict: bool = True,
                  band: int | str | None = "auto", memory_budget: int | None = None,
                  d_head: int | str | None = None) -> tuple[Any, ConversionReport]:
    """A copy of ``model`` with every convolution replaced by the attention layer of Theorem 1.

    Every ``torch.nn.Conv1d``/``Conv2d``/``Conv3d`` (stems, depthwise, dilated,
    strided, grouped, every padding mode) becomes the module that computes its
    attention layer (``n_heads = prod(kernel_size)`` heads, quadratic encoding
    with inverse width ``alpha``, Lemma 1's value maps). ``model`` itself is not
    changed; a module registered under several names is converted once and
    shared the same way in the copy. Each converted module keeps the
    convolution's device, dtype and training mode.

    Parameters
    ----------
    model : torch.nn.Module
        Any network (or a single convolution, which is then returned converted).
    alpha : float
        Inverse width ``α`` in ``[0, ∞]``; ``inf`` is hard attention.
    route : {"separable", "sdpa", "multihead"}, optional
        ``"separable"`` (default): :class:`~attn_expressivity.interop.torch_separable.SeparableConvAttention`,
        per axis and banded, memory ``O(n_out · n_heads · d_in)`` per block of rows
        (bounded by ``memory_budget``), which runs ImageNet-sized networks.
        ``"sdpa"``/``"multihead"``: :func:`~attn_expressivity.interop.torch.to_torch`'s
        dense routes, whose masks have ``n_heads · n_out · n_padded`` entries:
        small inputs only.
    strict : bool, optional
        True (default): raise when a convolution cannot be converted
        (:func:`~attn_expressivity.interop.torch.convertible` says why), so that the copy holds no convolution.
        False: leave it in place and list it in ``report.skipped``.
    band : "auto", int or None, optional
        The separable route's band (:func:`~attn_expressivity.interop.torch_separable.band_radius`).
    memory_budget : int, optional
        The separable route's bytes per block of rows (default 32 MiB).
    d_head : int, "paper" or None, optional
        The dense routes' head dimension (as for :func:`~attn_expressivity.conv_to_mhsa`).

    Returns
    -------
    model : torch.nn.Module
        The converted copy.
    report : ConversionReport

    Raises
    ------
    OptionalDependencyError
        torch is not installed.
    ParameterTypeError
        ``model`` is not a ``torch.nn.Module``.
    ParameterValueError
        A bad ``alpha``, ``route`` or ``band``.
    UnsupportedConfigurationError
        With ``strict=True``, a convolution that cannot be converted (each named,
        with the reason).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 7, stride=2, padding=3), torch.nn.ReLU(),
    ...                           torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)).eval()
    >>> attn, report = convert_model(net, alpha=float("inf"))
    >>> [c["n_heads"] for c in report.converted], report.skipped
    ([49, 9], [])
    >>> x = torch.randn(2, 3, 32, 32)
    >>> with torch.no_grad():
    ...     print(bool((attn(x) - net(x)).abs().max() < 1e-5))
    True
    """
    torch = _require_torch()
    if not isinstance(model, torch.nn.Module):
        raise ParameterTypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    alpha = as_alpha(alpha)
    if not isinstance(route, str) or route not in ROUTES:
        raise ParameterValueError(f"`route` must be one of {ROUTES}, got {route!r}")
    return _convert(model, _refusals(model), alpha=alpha, route=route, strict=strict, band=band,
                    memory_budget=memory_budget, d_head=d_head)


def _refusals(model: Any, prefix: str = "") -> dict[str, str]:
    """``{qualified name: reason}`` for every convolution of ``model`` that :func:`convertible` refuses.

    Judged on the modules themselves, not on copies: a deep copy of a module
    drops some of what changes its computation (``_compiled_call_impl``).
    """
    torch = _require_torch()
    found = {}
    for name, module in model.named_modules(remove_duplicate=False):
        if isinstance(module, torch.nn.modules.conv._ConvNd):
            reason = convertible(module)
            if reason is not None:
                found[".".join(p for p in (prefix, name) if p)] = reason
    return found


def _convert(model: Any, refused: dict[str, str], *, alpha: float, route: str, strict: bool,
             band: Any, memory_budget: int | None, d_head: Any) -> tuple[Any, ConversionReport]:
    """:func:`convert_model` on validated arguments, refusing the modules named in ``refused`` too."""
    torch = _require_torch()
    report = ConversionReport(alpha=alpha, route=route)
    copy_ = copy.deepcopy(model)
    done: dict[int, tuple[Any, dict[str, Any]]] = {}
    named: list[str] = []
    sites = [("", None, "", copy_)] + [
        (f"{parent_name}.{child_name}" if parent_name else child_name, parent, child_name, child)
        for parent_name, parent in copy_.named_modules(remove_duplicate=False)
        for child_name, child in parent._modules.items() if child is not None]   # duplicates too
    for name, parent, attr, module in sites:
        if not isinstance(module, torch.nn.modules.conv._ConvNd):
            continue
        if id(module) in done:
            new, entry = done[id(module)]
            if new is not None:
                entry["names"].append(name or "<model>")
        else:
            reason = refused.get(name) or convertible(module)
            if reason is not None:
                report.skipped.append({"name": name or "<model>", "type": type(module).__name__,
                                       "reason": reason})
                named.append(f"{name or '<model>'} ({reason})")
                done[id(module)] = (None, {})
                continue
            new = _convert_one(module, alpha, route, band, memory_budget, d_head)
            entry = _describe(name or "<model>", module, math.prod(module.kernel_size))
            report.converted.append(entry)
            done[id(module)] = (new, entry)
        if new is not None:
            if parent is None:
                copy_ = new
            else:
                setattr(parent, attr, new)
    if strict and named:
        raise UnsupportedConfigurationError(
            f"{len(named)} convolution(s) cannot be converted as plain convolutions: "
            + "; ".join(named) + ". Pass strict=False to keep them and list them in the report"
        )
    return copy_, report
