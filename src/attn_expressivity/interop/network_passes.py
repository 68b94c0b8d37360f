"""The passes behind :func:`~attn_expressivity.interop.verify_model.verify_model`.

Run a traced network while recording every node's value (:class:`Recorder`); the
coarse pass (elementwise bounds carried forward, every node checked against its
bound) and the fine pass (the outputs' difference as a sum over nodes of Jacobians
times local terms, one float64 backward pass per output element). The
derivations are on ``docs/network_bounds.md``; this module imports torch.
"""

from __future__ import annotations

import contextlib
import copy
import math
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx

from ..bounds.rounding import gamma
from .layer_bounds import SUBNORMAL64, U64, raise_sum
from .network_rules import NodeRun, Unbounded, rule_for

__all__ = ["ConvLeafTracer", "Pass", "Recorder", "coarse_pass", "fine_pass", "largest", "max_abs",
           "output_nodes", "output_tensors", "redirect", "state_versions", "sum_of_products_kernels",
           "trace"]


# --------------------------------------------------------------------------- running both networks


def _snapshot(value: Any) -> Any:
    """A copy of a node's value that later in-place operations cannot change."""
    if torch.is_tensor(value):
        return value.detach().clone()
    if isinstance(value, (tuple, list)):
        return type(value)(_snapshot(v) for v in value)
    return value


def _same_value(live: Any, recorded: Any) -> bool:
    """``live`` holds what ``recorded`` (its copy) held, NaNs included."""
    if torch.is_tensor(live):
        if not (torch.is_tensor(recorded) and live.shape == recorded.shape and live.dtype == recorded.dtype):
            return False
        if torch.equal(live, recorded):
            return True
        return live.is_floating_point() and bool(((live == recorded) | (live.isnan() & recorded.isnan())).all())
    if isinstance(live, (tuple, list)):
        return isinstance(recorded, (tuple, list)) and len(live) == len(recorded) and all(
            _same_value(a, b) for a, b in zip(live, recorded))
    return True


class Recorder(torch.fx.Interpreter):
    """Runs a traced network and keeps a copy of every node's value, keyed by node name.

    The bounds are computed from these copies, so they must be the values the
    network uses: before a node runs, every value it reads is compared with its
    copy. A value changed in place after it was recorded (``y = conv(x);
    y.mul_(2); return y``: the graph returns ``conv``'s node, the network the
    scaled tensor) is a read the graph misdescribes. ``redirects`` maps each
    such read ``(reader, node)`` to the node that produced the tensor last (the
    in-place ``mul_`` returns ``y`` itself) when that node's copy holds exactly
    what the reader reads, else to None.
    """

    def __init__(self, gm: Any) -> None:
        super().__init__(gm)
        self.values: dict[str, Any] = {}
        self.redirects: dict[tuple[str, str], str | None] = {}
        self._producer: dict[int, tuple[Any, str]] = {}   # id(tensor) -> (weak reference, node)

    def run_node(self, n: Any) -> Any:
        for m in dict.fromkeys(_occurrences(n)):
            live = self.env[m]
            if not _same_value(live, self.values[m.name]):
                self.redirects[(n.name, m.name)] = self._holder(live)
        out = super().run_node(n)
        self.values[n.name] = _snapshot(out)
        if torch.is_tensor(out):
            self._producer[id(out)] = (weakref.ref(out), n.name)
        return out

    def _holder(self, live: Any) -> str | None:
        """The last node that returned the tensor ``live`` itself, if its copy still equals ``live``."""
        entry = self._producer.get(id(live)) if torch.is_tensor(live) else None
        if entry is None or entry[0]() is not live or not _same_value(live, self.values[entry[1]]):
            return None
        return entry[1]


def redirect(gms: list[Any], redirects: dict[tuple[str, str], str]) -> None:
    """Make each reader read the node it actually reads: ``(reader, node) -> holder`` in every graph.

    Sound because the holder's recorded value is, bit for bit, what the reader
    read in each network (:class:`Recorder`), so the bounds of the rewritten
    graph are the bounds of what the networks computed.
    """
    for gm in gms:
        nodes = {n.name: n for n in gm.graph.nodes}
        for (reader, node), holder in redirects.items():
            nodes[reader].replace_input_with(nodes[node], nodes[holder])
        gm.recompile()


def state_versions(module: Any) -> dict[str, int]:
    """The version counter of every parameter and buffer: an in-place change increments it."""
    return {name: t._version for name, t in
            list(module.named_parameters(remove_duplicate=False)) + list(module.named_buffers(remove_duplicate=False))}


class ConvLeafTracer(torch.fx.Tracer):
    """``torch.fx``'s tracer, with every convolution a leaf (one ``call_module`` node).

    A subclass of ``torch.nn.Conv2d`` defined outside ``torch.nn`` is traced
    through by default, down to ``F.conv2d``, and its module would never be
    called in the graph; as a leaf it is converted (when
    :func:`~attn_expressivity.interop.torch.convertible`) and bounded.
    """

    def is_leaf_module(self, m: Any, module_qualified_name: str) -> bool:
        """A convolution, or what ``torch.fx.Tracer`` keeps as a leaf (``torch.nn``'s own modules)."""
        return isinstance(m, torch.nn.modules.conv._ConvNd) or super().is_leaf_module(
            m, module_qualified_name)


def trace(model: Any) -> Any:
    """``model`` as a ``torch.fx.GraphModule`` traced by :class:`ConvLeafTracer`."""
    tracer = ConvLeafTracer()
    graph = tracer.trace(model)
    return torch.fx.GraphModule(tracer.root, graph, type(model).__name__)


@contextlib.contextmanager
def sum_of_products_kernels():
    """Convolutions and matrix products as sums of products in the working precision.

    cuDNN (FFT and Winograd algorithms), TF32, reduced-precision float32 matrix
    products and NNPACK are switched off for the duration (the rounding model of
    :mod:`~attn_expressivity.interop.network_rules` does not cover them).
    """
    cudnn, cuda = torch.backends.cudnn, torch.backends.cuda
    saved = (cudnn.enabled, cudnn.allow_tf32, cuda.matmul.allow_tf32,
             torch.get_float32_matmul_precision())
    try:
        cudnn.enabled, cudnn.allow_tf32, cuda.matmul.allow_tf32 = False, False, False
        torch.set_float32_matmul_precision("highest")
        with torch.backends.nnpack.flags(enabled=False):
            yield
    finally:
        cudnn.enabled, cudnn.allow_tf32, cuda.matmul.allow_tf32 = saved[:3]
        torch.set_float32_matmul_precision(saved[3])


def _occurrences(node: Any) -> list[Any]:
    """The nodes among ``node``'s arguments, in order, with repetitions."""
    found: list[Any] = []
    torch.fx.node.map_arg((node.args, node.kwargs), lambda m: found.append(m) or m)
    return found


def _same(a: Any, b: Any) -> bool:
    if torch.is_tensor(a) or torch.is_tensor(b):
        return False
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def max_abs(t: Any) -> float:
    return float(t.detach().to(torch.float64).abs().max()) if t.numel() else 0.0


def output_tensors(value: Any) -> list[Any]:
    if torch.is_tensor(value):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in output_tensors(v)]
    return []


# --------------------------------------------------------------------------- the coarse pass


@dataclass
class Pass:
    """What the coarse pass leaves for the fine pass and the report."""

    bound: dict[str, Any] = field(default_factory=dict)        # e_n, elementwise (None: unknown)
    fine_scale: dict[str, float] = field(default_factory=dict)  # E'_n (module docstring)
    sources: dict[str, Any] = field(default_factory=dict)      # s_n, float64
    derivatives: dict[str, Any] = field(default_factory=dict)  # f' of pointwise nodes
    unknown: list[dict[str, Any]] = field(default_factory=list)
    violations: list[dict[str, Any]] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    backward_terms: int = 0


def _is_float(t: Any) -> bool:
    return torch.is_tensor(t) and t.is_floating_point()


def _caller(node: Any, module: Any, values: dict) -> Any:
    """``call(tensors)``: the node's operation with ``tensors`` for its floating-point tensor inputs."""
    def call(tensors: list[Any]) -> Any:
        it = iter(tensors)
        pick = lambda m: next(it) if _is_float(values[m.name]) else values[m.name]  # noqa: E731
        args = torch.fx.node.map_arg(node.args, pick)
        kwargs = torch.fx.node.map_arg(node.kwargs, pick)
        with torch.no_grad():
            if node.op == "call_module":
                return module(*args, **kwargs)
            if node.op == "call_method":
                return getattr(args[0], node.target)(*args[1:], **kwargs)
            return node.target(*args, **kwargs)
    return call


def _node_run(node: Any, ins: list[Any], gm: Any, cgm: Any, vo: dict, vc: dict) -> NodeRun:
    value = lambda m: vo[m.name]  # noqa: E731
    module = cmodule = None
    if node.op == "call_module":
        module, cmodule = gm.get_submodule(node.target), cgm.get_submodule(node.target)
    return NodeRun(node, [(vo[m.name], vc[m.name]) for m in ins], (vo[node.name], vc[node.name]),
                   call=_caller(node, module, vo), module=module, converted_module=cmodule,
                   args=torch.fx.node.map_arg(node.args, value),
                   kwargs=torch.fx.node.map_arg(node.kwargs, value))


def _unknown(state: Pass, node: Any, reason: str) -> None:
    target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    state.unknown.append({"node": node.name, "op": node.op, "target": target, "reason": reason})
    state.bound[node.name] = None


def _exact_value(state: Pass, node: Any, a: Any, c: Any) -> None:
    """A node whose value is not a floating-point tensor: both networks must agree on it."""
    same = torch.equal(a, c) if torch.is_tensor(a) and torch.is_tensor(c) and a.shape == c.shape \
        else _same(a, c)
    if same:
        state.bound[node.name] = torch.zeros(a.shape, dtype=torch.float64, device=a.device) \
            if torch.is_tensor(a) else 0.0
        state.fine_scale[node.name] = 0.0
    else:
        _unknown(state, node, "a value that is not a floating-point tensor and differs "
                              "between the networks")


def _visit(state: Pass, node: Any, gm: Any, cgm: Any, vo: dict, vc: dict) -> None:
    """The bounds of one node, from its inputs' (module docstring of :mod:`network_rules`)."""
    a, c = vo[node.name], vc[node.name]
    if not (_is_float(a) and _is_float(c)):
        _exact_value(state, node, a, c)
        return
    ins = [m for m in _occurrences(node) if _is_float(vo[m.name])]
    if any(state.bound.get(m.name) is None for m in _occurrences(node)):
        state.bound[node.name] = None                  # downstream of an unknown node
        return
    if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(c).all())):
        _unknown(state, node, "non-finite values")
        return
    try:
        step = rule_for(_node_run(node, ins, gm, cgm, vo, vc))
        e_in = [state.bound[m.name] for m in ins]
        spread = step.spread(e_in) if ins else 0.0
        # a remainder is a few float64 products, each of which may underflow by half of 2^-1074
        source = step.local if step.remainder is None else \
            step.local + step.remainder(e_in) + 4 * SUBNORMAL64
    except Unbounded as exc:
        _unknown(state, node, str(exc))
        return
    up = 1 + 64 * U64
    # the float64 underflow of computing the bound: half of 2^-1074 per operation, at most as many
    # operations per element as the inputs have elements, and a few
    slack = (sum(vo[m.name].numel() for m in ins) + 8) * SUBNORMAL64
    e_out = torch.broadcast_to((spread + step.local) * up + slack, a.shape).to(torch.float64).contiguous()
    state.bound[node.name] = e_out
    combine = max if step.concat else sum
    f_in = [state.fine_scale[m.name] for m in ins]
    state.fine_scale[node.name] = (combine((lip * f for lip, f in zip(step.lips, f_in)), start=0.0)
                                   if not step.concat else max(f_in, default=0.0)) * up \
        + largest(source) * up
    state.sources[node.name] = source
    if step.derivative is not None:
        state.derivatives[node.name] = (step.derivative, ins[0].name)
    state.backward_terms += step.backward_terms + len(node.users)
    diff = (c.detach().to(torch.float64) - a.detach().to(torch.float64)).abs()
    if bool((diff > e_out).any()):
        worst = int(torch.argmax(diff - e_out))
        state.violations.append({"node": node.name, "measured": float(diff.flatten()[worst]),
                                 "bound": float(e_out.flatten()[worst])})
    if step.layer is not None:
        state.layers.append(_layer_row(node, step, ins, vo, vc, largest(diff), largest(e_out)))


def largest(t: Any) -> float:
    if torch.is_tensor(t):
        return float(t.max()) if t.numel() else 0.0
    return float(t)


def _layer_row(node: Any, step: Any, ins: list[Any], vo: dict, vc: dict, measured: float,
               coarse: float) -> dict[str, Any]:
    t = step.layer
    return {"name": node.target, "node": node.name, "n_heads": t["n_heads"],
            "kernel_size": t["kernel_size"], "stride": t["stride"], "radius": t["radius"],
            "input_max": [max_abs(vo[ins[0].name]), max_abs(vc[ins[0].name])],
            "output_max": [max_abs(vo[node.name]), max_abs(vc[node.name])],
            "leak": t["leak"], "leak_term": float(t["leak_term"].max()), "underflow": t["underflow"],
            "rounding_term": float(t["rounding_term"].max()),
            "local_bound": largest(step.local), "coarse_bound": coarse, "measured": measured,
            "fine_share": None}


def coarse_pass(gm: Any, cgm: Any, vo: dict, vc: dict, bar: Any) -> Pass:
    state = Pass()
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "get_attr"):
            v = vo[node.name]
            state.bound[node.name] = torch.zeros(v.shape, dtype=torch.float64, device=v.device) \
                if torch.is_tensor(v) else 0.0
            state.fine_scale[node.name] = 0.0
        elif node.op != "output":
            _visit(state, node, gm, cgm, vo, vc)
        bar.update(1)
    return state


# --------------------------------------------------------------------------- the fine pass


#: Methods that are the identity map but cut the gradient: linearised as the identity.
_IDENTITIES = ("detach",)


def _linearised(gm64: Any, vc: dict, derivatives: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Every node's value, equal to the converted network's, with the original's Jacobian.

    Node ``n = f(m)`` gets ``ã_n + (f(l_m) − f(l_m).detach())``: its value is
    exactly ``ã_n`` (``v − v = 0``), its gradient is ``f``'s at its inputs'
    values ``ã_m``, evaluated in float64 on the original modules. A pointwise
    function gets ``ã_n + f'(ã_m) (l_m − l_m.detach())`` with the rule's own
    ``f'`` instead of PyTorch's backward formula, and ``.detach()`` (the
    identity, whose backward is zero) ``ã_n + (l_m − l_m.detach())``. Inputs are
    cloned so that in-place operations leave them alone.

    Also returns the nodes whose floating-point value does not depend, for
    autograd, on inputs that require gradients: there the Jacobian would be
    taken as zero, which the fine bound must not do.
    """
    lin: dict[str, Any] = {}
    cuts: list[str] = []
    take = lambda m: lin[m.name].clone() if torch.is_tensor(lin[m.name]) else lin[m.name]  # noqa: E731
    tracked = lambda m: torch.is_tensor(lin[m.name]) and lin[m.name].requires_grad  # noqa: E731
    for node in gm64.graph.nodes:
        value = vc[node.name]
        floating = torch.is_tensor(value) and value.is_floating_point()
        if node.op == "placeholder":
            lin[node.name] = value.detach().to(torch.float64).requires_grad_(True) if floating else value
        elif node.op == "get_attr":          # constants: tracked too, so nothing downstream is dropped
            v = _attr(gm64, node.target)
            lin[node.name] = v.detach().clone().requires_grad_(True) \
                if torch.is_tensor(v) and v.is_floating_point() else v
        elif node.name in derivatives:
            derivative, source = derivatives[node.name]
            arg = lin[source]
            slope = derivative(vc[source].detach().to(torch.float64))
            lin[node.name] = value.detach().to(torch.float64) + slope * (arg - arg.detach())
        elif node.op == "call_method" and node.target in _IDENTITIES and floating:
            arg = lin[node.args[0].name]
            lin[node.name] = value.detach().to(torch.float64) + (arg - arg.detach())
        elif node.op in ("call_module", "call_function", "call_method"):
            out = _call(gm64, node, torch.fx.node.map_arg(node.args, take),
                        torch.fx.node.map_arg(node.kwargs, take))
            if torch.is_tensor(out) and out.is_floating_point() and out.requires_grad:
                out = value.detach().to(torch.float64) + (out - out.detach())
            elif floating:
                if any(tracked(m) for m in _occurrences(node)):
                    cuts.append(node.name)
                out = value.detach().to(torch.float64)
            lin[node.name] = out
    return lin, cuts


def _call(gm: Any, node: Any, args: Any, kwargs: Any) -> Any:
    if node.op == "call_module":
        return gm.get_submodule(node.target)(*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    return getattr(args[0], node.target)(*args[1:], **kwargs)


def _attr(module: Any, target: str) -> Any:
    for part in target.split("."):
        module = getattr(module, part)
    return module.detach() if torch.is_tensor(module) else module


def fine_pass(gm: Any, vc: dict, state: Pass, outputs: list[str], max_outputs: int,
               bar_factory: Any) -> tuple[float | None, dict[str, float], str | None]:
    """``max_j Σ_n Σ_e |J_n[j, e]| s_n[e]`` plus the gradients' rounding (module docstring)."""
    n_out = sum(state.bound[name].numel() for name in outputs)
    if n_out > max_outputs:
        return None, {}, (f"fine bound skipped: {n_out} output elements > max_outputs = "
                          f"{max_outputs} (one backward pass each); the bound is the coarse one")
    gm64 = copy.deepcopy(gm).to(torch.float64)
    with torch.enable_grad():
        lin, cuts = _linearised(gm64, vc, state.derivatives)
        if cuts:
            return None, {}, (f"fine bound skipped: the gradient does not flow through {cuts[0]}, "
                              "so its Jacobian is unknown; the bound is the coarse one")
        flat = torch.cat([lin[name].reshape(-1) for name in outputs])
        names = [n for n, s in state.sources.items()
                 if torch.is_tensor(lin.get(n)) and lin[n].requires_grad and largest(s) > 0]
        tensors = [lin[n] for n in names]
        best, shares = 0.0, {}
        bar = bar_factory(n_out, "fine bound (one backward pass per output)")
        for j in range(n_out):
            if not (tensors and flat[j].requires_grad):     # no local term reaches this output
                bar.update(1)
                continue
            grads = torch.autograd.grad(flat[j], tensors, retain_graph=True, allow_unused=True)
            parts = {}
            for name, g in zip(names, grads):
                if g is not None:
                    s = state.sources[name]
                    # the products |g| s may underflow: half of 2^-1074 each
                    parts[name] = raise_sum(float((g.abs() * s).sum()), g.numel()) \
                        + (g.numel() + 2) * SUBNORMAL64
            total = raise_sum(math.fsum(parts.values()), len(parts))
            if total > best:
                best, shares = total, parts
            bar.update(1)
        bar.close()
    # the gradients' own rounding: within γ_K of the absolute chain, which E' bounds
    k = state.backward_terms + len(state.sources) + 2
    out_scale = max(state.fine_scale[name] for name in outputs)
    return (best + gamma(k, U64) * out_scale + 8 * SUBNORMAL64) * (1 + 8 * U64), shares, None


def output_nodes(gm: Any) -> list[Any]:
    out = next(n for n in gm.graph.nodes if n.op == "output")
    found: list[Any] = []
    torch.fx.node.map_arg(out.args, lambda m: found.append(m) or m)
    return list(dict.fromkeys(found))
