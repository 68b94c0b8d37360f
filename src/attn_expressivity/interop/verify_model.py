"""Whole networks checked against a bound: :func:`verify_model`.

:func:`verify_model` traces a network with ``torch.fx`` (so additions and
products written in ``forward`` are part of the dataflow graph), converts every
convolution with :func:`~attn_expressivity.interop.convert.convert_model`
(the separable route), runs both networks on one input while recording every
node's value, and bounds ``max |converted(x) − original(x)|`` over every output
element a priori, from the two networks' recorded values, the converted
layers' bounds and the rules of :mod:`attn_expressivity.interop.network_rules`
(``docs/network_bounds.md`` derives them):

* the **coarse** bound carries a scalar ``E_n >= ‖ã_n − a_n‖_∞`` through the
  graph with each node's Lipschitz constants and local terms; every node's
  measured difference is checked against its ``E_n`` as well;
* the **fine** bound linearises the original network at the converted
  network's values: the difference at the outputs is exactly
  ``Σ_n J_n σ_n``, ``J_n`` the Jacobian of the outputs with respect to node
  ``n`` at ``ã`` and ``|σ_n|`` at most node ``n``'s local terms plus the
  linearisation's remainder, so ``|Δ out_j| <= Σ_n Σ_e |J_n[j, e]| s_n[e]``: one
  backward pass (float64) per output element, plus the rounding of those
  gradients.

The reported ``bound`` is the smaller of the two. A node no rule bounds (an
unsupported module, a function, a training-mode BatchNorm) is named in
``unknown`` and makes the bound unknown: the status is then ``"UNKNOWN"``,
never a PASS.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any

from .._validation import as_alpha
from ..errors import (
    InputMismatchError,
    OptionalDependencyError,
    ParameterTypeError,
    ParameterValueError,
)
from .convert import _convert, _refusals
from .torch import _require_torch

__all__ = ["ModelVerifyReport", "model_from_factory", "verify_model"]


def _json_float(v: float | None) -> float | str | None:
    if v is None or math.isfinite(v):
        return v
    return "inf" if v > 0 else "-inf" if v < 0 else "nan"


@dataclass
class ModelVerifyReport:
    """The outcome of :func:`verify_model`.

    Attributes
    ----------
    status : {"PASS", "FAIL", "UNKNOWN"}
        PASS: the measured difference is within the bound at the outputs and at
        every node. FAIL: it is not somewhere. UNKNOWN: some node has no rule,
        so there is no bound.
    bound : float or None
        A-priori bound on ``max |converted(x) − original(x)|`` over every output
        element: the smaller of ``bound_coarse`` and ``bound_fine``.
    bound_coarse, bound_fine : float or None
    max_abs_error : float
        The measured ``max |converted(x) − original(x)|``.
    max_abs_output : float
        ``max |original(x)|``, for scale.
    layers : list of dict
        One row per converted convolution: its name, kernel, stride, heads,
        band radius, the largest input and output magnitudes of both networks,
        the route's leak and rounding terms, its local bound, the coarse bound
        and the measured difference at its output, and its share of the fine bound.
    unknown : list of dict
        Nodes no rule bounds (``node``, ``op``, ``target``, ``reason``).
    violations : list of dict
        Nodes whose measured difference exceeds their coarse bound.
    skipped : list of dict
        Convolutions :func:`convert_model` left in place, with the reason.
    notes, assumptions : list of str
    """

    status: str
    bound: float | None
    bound_coarse: float | None
    bound_fine: float | None
    max_abs_error: float
    max_abs_output: float
    alpha: float
    dtype: str
    device: str
    input_shape: list[int]
    route: str = "separable"
    layers: list[dict[str, Any]] = field(default_factory=list)
    unknown: list[dict[str, Any]] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        """``status == "PASS"``."""
        return self.status == "PASS"

    @property
    def ratio(self) -> float | None:
        """``bound / max_abs_error`` (None without a bound, inf when the error is 0)."""
        if self.bound is None:
            return None
        return self.bound / self.max_abs_error if self.max_abs_error > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON dictionary: infinities are the strings ``"inf"``/``"-inf"``."""
        def clean(v: Any) -> Any:
            if isinstance(v, float):
                return _json_float(v)
            if isinstance(v, dict):
                return {k: clean(w) for k, w in v.items()}
            if isinstance(v, (list, tuple)):
                return [clean(w) for w in v]
            return v
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d.update(holds=self.holds, ratio=self.ratio)
        return clean(d)

    def summary(self) -> str:
        """A human-readable report with the per-layer table."""
        fmt = lambda v: "n/a" if v is None else f"{v:.3e}"  # noqa: E731
        lines = [f"verify_model: {len(self.layers)} convolution(s) converted (alpha={self.alpha}, "
                 f"route={self.route}), input {tuple(self.input_shape)}, {self.dtype} on {self.device}",
                 f"  {'layer':<28} {'heads':>5} {'r':>3} {'max|in|':>10} {'max|out|':>10} "
                 f"{'local bnd':>10} {'E (coarse)':>10} {'measured':>10}"]
        for row in self.layers:
            lines.append(f"  {row['name'][:28]:<28} {row['n_heads']:>5} {max(row['radius']):>3} "
                         f"{row['input_max'][1]:>10.3e} {row['output_max'][1]:>10.3e} "
                         f"{row['local_bound']:>10.3e} {fmt(row['coarse_bound']):>10} "
                         f"{row['measured']:>10.3e}")
        lines += [f"  max |converted - original| at the outputs  {self.max_abs_error:.3e}  "
                  f"(max |original| {self.max_abs_output:.3e})",
                  f"  a-priori bound                             {fmt(self.bound)}  "
                  f"(coarse {fmt(self.bound_coarse)}, fine {fmt(self.bound_fine)})"]
        for u in self.unknown:
            lines.append(f"  UNKNOWN at {u['node']} ({u['op']} {u['target']}): {u['reason']}")
        for v in self.violations:
            lines.append(f"  VIOLATION at {v['node']}: measured {v['measured']:.3e} > bound {v['bound']:.3e}")
        for s in self.skipped:
            lines.append(f"  kept as a convolution: {s['name']}: {s['reason']}")
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"  {self.status}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- the entry point


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _bar_factory(progress: bool | None) -> Any:
    """``make(total, description)``: a tqdm bar (on stderr) or one that shows nothing."""
    import sys

    if progress is False:
        return lambda total, desc: _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress:
            raise OptionalDependencyError(
                "progress=True needs tqdm, which is not installed; install it with "
                "`pip install tqdm` (or `pip install 'attn-expressivity[progress]'`)") from None
        return lambda total, desc: _NoBar()
    if progress is None and not sys.stderr.isatty():
        return lambda total, desc: _NoBar()
    return lambda total, desc: tqdm(total=total, desc=desc, leave=False)


def _check_arguments(model: Any, x: Any, alpha: float, max_outputs: int, progress: Any) -> float:
    torch = _require_torch()
    if not isinstance(model, torch.nn.Module):
        raise ParameterTypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    if not torch.is_tensor(x):
        raise ParameterTypeError(f"`x` must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64):
        raise ParameterTypeError(
            f"`x` must be float32 or float64 (the bounds need m·u < 1), got {x.dtype}")
    if x.is_meta:
        raise ParameterValueError("`x` is on the meta device, which holds no values; give a real input")
    for name, p in list(model.named_parameters()) + list(model.named_buffers()):
        if p.is_floating_point() and p.dtype != x.dtype:
            raise ParameterTypeError(
                f"the model's {name} is {p.dtype} but `x` is {x.dtype}; convert one of them "
                f"(model.to({x.dtype}))")
        if p.is_meta:
            raise ParameterValueError(
                f"the model's {name} is on the meta device, which holds no values; load its weights")
    if isinstance(max_outputs, bool) or not isinstance(max_outputs, int) or max_outputs < 0:
        raise ParameterValueError(f"`max_outputs` must be an int >= 0, got {max_outputs!r}")
    if progress is not None and not isinstance(progress, bool):
        raise ParameterTypeError(f"`progress` must be True, False or None, got {progress!r}")
    return as_alpha(alpha)


def verify_model(model: Any, x: Any, *, alpha: float, band: int | str | None = "auto",
                 max_outputs: int = 256, progress: bool | None = None) -> ModelVerifyReport:
    """Convert every convolution of ``model``, run both networks on ``x``, and bound their difference.

    Parameters
    ----------
    model : torch.nn.Module
        Traceable by ``torch.fx`` (every convolution is a leaf of the trace,
        subclasses of ``Conv2d`` included); in eval mode where BatchNorm and
        Dropout are concerned (in training mode they get no rule and the
        bound is unknown). Left unchanged: the runs use copies.
    x : Tensor
        The input, float32 or float64 like the model's parameters, on the
        model's device. Left unchanged: each network runs on a copy.
    alpha : float
        Inverse width of the heads, in ``[0, ∞]``.
    band : "auto", int or None, optional
        The separable route's band (:func:`~attn_expressivity.interop.torch_separable.band_radius`).
    max_outputs : int, optional
        The fine bound takes one backward pass per output element; above this
        many elements only the coarse bound is computed (and a note says so).
    progress : bool or None, optional
        A tqdm progress bar on stderr: None shows one when tqdm is installed and
        stderr is a terminal; True requires tqdm (the ``progress`` extra).

    Returns
    -------
    ModelVerifyReport
        ``"UNKNOWN"`` (never a PASS) where the bound cannot be trusted, each
        reason in ``unknown``: a node no rule bounds; a value changed in place
        after it was computed and then read where no node of the graph holds
        what was read; a parameter or buffer changed by the forward pass; or
        no convolution converted (nothing to check; ``notes`` says so).

    Raises
    ------
    ParameterTypeError
        A model that is not a ``torch.nn.Module``, an input that is not a
        float32/float64 tensor, parameters of another dtype, or a ``progress``
        that is not a bool or None.
    ParameterValueError
        A bad ``alpha``, ``band`` or ``max_outputs``; an input or parameters on
        the meta device.
    InputMismatchError
        The model itself fails on ``x`` (a wrong channel count, size or device).
    OptionalDependencyError
        ``progress=True`` without tqdm.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
    ...                           torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ...                           torch.nn.Linear(4, 3)).double().eval()
    >>> report = verify_model(net, torch.randn(2, 2, 9, 9, dtype=torch.float64), alpha=12.0)
    >>> report.status, report.max_abs_error <= report.bound
    ('PASS', True)
    """
    alpha = _check_arguments(model, x, alpha, max_outputs, progress)
    torch = _require_torch()
    from . import network_passes as passes  # imports torch.fx

    bars = _bar_factory(progress)
    t0 = time.perf_counter()
    original, prefix = copy.deepcopy(model), ""
    if passes.ConvLeafTracer().is_leaf_module(original, ""):
        original, prefix = torch.nn.Sequential(original), "0"   # a lone torch.nn layer: one node
    refused = _refusals(model, prefix)            # judged on the caller's modules, not on copies
    try:
        gm = passes.trace(original)
    except Exception as exc:  # noqa: BLE001 - any tracing failure means: no graph, no bound
        return _untraceable(original, refused, x, alpha, band, exc)
    cgm, conversion = _convert(gm, refused, alpha=alpha, route="separable", strict=False, band=band,
                               memory_budget=None, d_head=None)
    rec_o, rec_c, outs, changed = _run_both(gm, cgm, x)
    t1 = time.perf_counter()
    bar = bars(len(gm.graph.nodes), "coarse bound (node by node)")
    with torch.no_grad(), passes.sum_of_products_kernels():
        state = passes.coarse_pass(gm, cgm, rec_o.values, rec_c.values, bar)
    bar.close()
    t2 = time.perf_counter()
    state.unknown.extend(changed)
    report = _report(gm, x, alpha, rec_o.values, outs, state, conversion)
    if report.bound_coarse is not None:
        outputs = [n.name for n in passes.output_nodes(gm) if torch.is_tensor(rec_o.values[n.name])]
        with passes.sum_of_products_kernels():
            fine, shares, note = passes.fine_pass(gm, rec_c.values, state, outputs, max_outputs, bars)
        if note:
            report.notes.append(note)
        report.bound_fine = fine
        if fine is not None:
            report.bound = min(report.bound, fine)
        for row in report.layers:
            row["fine_share"] = shares.get(row["node"]) if fine is not None else None
    _settle(report, conversion)
    report.seconds = {"run": t1 - t0, "coarse": t2 - t1, "fine": time.perf_counter() - t2}
    return report


def _run_both(gm: Any, cgm: Any, x: Any) -> tuple[Any, Any, tuple[list, list], list[dict]]:
    """Both networks run on copies of ``x``, recorded: the recorders, their outputs, and what the
    runs changed in place (values read after a change, parameters and buffers)."""
    torch = _require_torch()
    from . import network_passes as passes

    rec_o, rec_c = passes.Recorder(gm), passes.Recorder(cgm)
    before = passes.state_versions(gm), passes.state_versions(cgm)
    with torch.no_grad(), passes.sum_of_products_kernels():
        try:
            out_o = rec_o.run(x.clone())
        except Exception as exc:  # noqa: BLE001 - the caller's model refuses the caller's input
            raise InputMismatchError(
                f"the model fails on `x` of shape {tuple(x.shape)} ({x.dtype}, {x.device}): "
                f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
        out_c = rec_c.run(x.clone())
    changed: dict[str, dict[str, Any]] = {}
    same = {key: h for key, h in rec_o.redirects.items() if h is not None and rec_c.redirects.get(key) == h}
    passes.redirect([gm, cgm], same)        # the reads of values changed in place, each from its producer
    for (reader, node) in set(rec_o.redirects) | set(rec_c.redirects):
        if (reader, node) not in same:
            who = "the output" if reader == "output" else reader
            changed.setdefault(node, {
                "node": node, "op": "in-place", "target": reader,
                "reason": f"its value was changed in place after it was computed and before {who} "
                          "read it, and no node of the graph holds what was read"})
    for module, versions in zip((gm, cgm), before):
        after = passes.state_versions(module)
        for name in (n for n, v in versions.items() if after.get(n) != v):
            changed.setdefault(name, {
                "node": name, "op": "in-place", "target": name,
                "reason": f"the forward pass changed {name} in place; the bounds read it afterwards"})
    return rec_o, rec_c, (passes.output_tensors(out_o), passes.output_tensors(out_c)), list(changed.values())


def _measure(outs: tuple[list, list]) -> tuple[float, float]:
    """``max |converted − original|`` and ``max |original|`` over the outputs the networks returned."""
    torch = _require_torch()
    from . import network_passes as passes

    measured = max((float((c.to(torch.float64) - a.to(torch.float64)).abs().max())
                    for a, c in zip(*outs) if a.numel()), default=0.0)
    return measured, max((passes.max_abs(a) for a in outs[0]), default=0.0)


def _report(gm: Any, x: Any, alpha: float, vo: dict, outs: tuple[list, list], state: Any,
            conversion: Any) -> ModelVerifyReport:
    torch = _require_torch()
    from . import network_passes as passes
    from .network_rules import ASSUMPTIONS

    outputs = [n.name for n in passes.output_nodes(gm) if torch.is_tensor(vo[n.name])]
    measured, scale = _measure(outs)
    coarse = [state.bound.get(n) for n in outputs]
    bound = None if state.unknown or any(e is None for e in coarse) else max(
        (passes.largest(e) for e in coarse), default=0.0)
    return ModelVerifyReport(
        status="UNKNOWN", bound=bound, bound_coarse=bound, bound_fine=None,
        max_abs_error=measured, max_abs_output=scale, alpha=alpha, dtype=str(x.dtype).replace("torch.", ""),
        device=str(x.device), input_shape=list(x.shape), layers=state.layers,
        unknown=state.unknown, violations=state.violations, skipped=conversion.skipped,
        assumptions=list(ASSUMPTIONS))


def _settle(report: ModelVerifyReport, conversion: Any) -> None:
    """The status: PASS only with a bound, no violation, and some convolution converted and run."""
    if not report.layers:
        kept = len(conversion.skipped)
        report.notes.append(
            "nothing was converted: " + (f"the network's {kept} convolution(s) were kept "
                                         "(see the reasons above)" if kept else
                                         "the network has no convolution that ran as attention")
            + "; there is no attention layer to check")
    if report.bound is None or not report.layers:
        report.status = "UNKNOWN"
    elif report.max_abs_error <= report.bound and not report.violations:
        report.status = "PASS"
    else:
        report.status = "FAIL"


def _untraceable(original: Any, refused: dict[str, str], x: Any, alpha: float, band: Any,
                 exc: Exception) -> ModelVerifyReport:
    """No graph: the measured difference only, and the bound unknown."""
    torch = _require_torch()
    from . import network_passes as passes

    converted, conversion = _convert(original, refused, alpha=alpha, route="separable", strict=False,
                                     band=band, memory_budget=None, d_head=None)
    with torch.no_grad(), passes.sum_of_products_kernels():
        try:
            out_o = original(x.clone())
        except Exception as err:  # noqa: BLE001 - the caller's model refuses the caller's input
            raise InputMismatchError(f"the model fails on `x` of shape {tuple(x.shape)}: "
                                     f"{type(err).__name__}: {err}".splitlines()[0]) from None
        outs = passes.output_tensors(out_o), passes.output_tensors(converted(x.clone()))
    measured, scale = _measure(outs)
    report = ModelVerifyReport(
        status="UNKNOWN", bound=None, bound_coarse=None, bound_fine=None, max_abs_error=measured,
        max_abs_output=scale, alpha=alpha, dtype=str(x.dtype).replace("torch.", ""),
        device=str(x.device), input_shape=list(x.shape), skipped=conversion.skipped)
    report.unknown.append({"node": "<model>", "op": "trace", "target": type(original).__name__,
                           "reason": f"torch.fx.symbolic_trace cannot trace the model: "
                                     f"{type(exc).__name__}: {exc}".splitlines()[0]})
    return report


def model_from_factory(spec: str) -> Any:
    """The ``torch.nn.Module`` a factory ``"package.module:function"`` returns when called with no argument.

    Raises
    ------
    ParameterValueError
        A malformed ``spec``, a module that cannot be imported, a missing or
        failing factory, or a result that is not a ``torch.nn.Module``.

    Examples
    --------
    >>> model_from_factory("torch.nn:Identity")
    Identity()
    """
    import importlib

    torch = _require_torch()
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ParameterValueError(f"a factory is written 'package.module:function', got {spec!r}")
    module_name, attr = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any failure to import the user's module
        raise ParameterValueError(
            f"cannot import {module_name!r} (is it on PYTHONPATH?): {type(exc).__name__}: {exc}"
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ParameterValueError(f"{module_name!r} has no callable {attr!r}")
    try:
        model = factory()
    except Exception as exc:  # noqa: BLE001 - the user's factory failed
        raise ParameterValueError(f"{spec}() raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, torch.nn.Module):
        raise ParameterValueError(f"{spec}() returned {type(model).__name__}, not a torch.nn.Module")
    return model
