"""How each operation of a network carries a difference forward: the rules of :func:`verify_model`.

Two networks run the same graph: the original (values ``a``) and the converted
one (values ``ã``). At a node ``n = f(m)``

    ã_n − a_n = [fl(f̃(ã_m)) − f(ã_m)] − [fl(f(a_m)) − f(a_m)] + [f(ã_m) − f(a_m)],

with ``f̃ = f`` except at a converted convolution, where ``f̃`` is its attention
layer. The first two brackets are the node's **local** terms: the converted
network's error at its own input (the route's a-priori bound at a converted
layer, rounding elsewhere) and the original network's rounding at its input.
The third, the **propagation**, is bounded three ways by the rule of ``f``:

* ``lips``: Lipschitz constants in the ``∞``-norm (the largest absolute entry
  over the whole tensor), ``‖f(ã) − f(a)‖ <= Σ_i L_i ‖ã_i − a_i‖``;
* ``spread``: elementwise, ``|f(ã) − f(a)| <= spread(e)`` for inputs with
  ``|ã_i − a_i| <= e_i`` elementwise (``|W| * e`` for a convolution, ``L e`` for
  a pointwise function, 0 where both values lie where the function is flat);
* ``remainder``: ``f(ã) − f(a) = J_f(ã)(ã − a) − R`` with ``|R| <= remainder(e)``
  (0 for affine maps; a bound at kinks and products).

A :class:`Step` is what a rule returns for one node. ``docs/network_bounds.md``
derives every constant and rounding term; the assumptions the rounding terms
rest on are listed in :data:`ASSUMPTIONS`.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..bounds.rounding import gamma
from .layer_bounds import (
    U64,
    conv_magnitude,
    conv_rounding_bound,
    raise_sum,
    separable_error_bound,
    underflow_unit_of,
)
from .torch import _conv_state, _customisation

__all__ = ["ASSUMPTIONS", "GELU_LIP", "SECOND_DERIVATIVE", "SILU_LIP", "NodeRun", "Step",
           "Unbounded", "rule_for"]

#: ``sup |GELU'| = Φ(√2) + √2 φ(√2) = 1.12890414518…``, rounded up.
GELU_LIP = 1.1289041452
#: ``sup |SiLU'| = σ(x*)(1 + x*(1 − σ(x*)))`` at the root ``x* = 2.39935…`` of
#: ``2 + x(1 − 2σ(x)) = 0``: ``1.09983932012…``, rounded up.
SILU_LIP = 1.0998393202
#: ``sup |f''|``, rounded up: GELU ``2φ(0) = 0.79788…``, SiLU 1/2, sigmoid ``√3/18 = 0.09622…``,
#: tanh ``4/(3√3) = 0.76980…``, Hardswish 1/3 (between its kinks).
SECOND_DERIVATIVE = {"gelu": 0.7978845609, "silu": 0.5000000001, "sigmoid": 0.0962250449,
                     "tanh": 0.7698003590, "hardswish": 0.3333333334}

#: What the rounding terms assume beyond the standard model of floating-point arithmetic.
ASSUMPTIONS = (
    "IEEE arithmetic, round to nearest, subnormal results kept (no flush to zero); fused "
    "multiply-adds allowed",
    "a convolution or matrix product computes each output as a sum of products in some "
    "order (direct, or im2col and a matrix product); on CUDA, verify_model switches cuDNN "
    "and TF32 off, whose FFT/Winograd algorithms and reduced precision this model does not cover",
    "exp, erf, tanh and sigmoid are within 4 ulps (8u) of the exact value, relative to it",
)


class Unbounded(Exception):  # noqa: N818 - a signal, not an error of the caller
    """No rule bounds this node: the network bound is unknown (the message says why)."""


@dataclass
class NodeRun:
    """One node of the graph with the recorded values of both networks.

    ``inputs`` lists the node's floating-point tensor inputs as
    ``(original, converted)`` pairs in argument order (with repetitions);
    ``args``/``kwargs`` are the arguments with the original network's values;
    ``call(tensors)`` evaluates the node's operation with ``tensors`` in place of
    those inputs; ``module``/``converted_module`` are the two networks' modules
    of a ``call_module`` node.
    """

    node: Any
    inputs: list[tuple[Any, Any]]
    out: tuple[Any, Any]
    call: Callable[[list[Any]], Any]
    module: Any = None
    converted_module: Any = None
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    @property
    def u(self) -> float:
        return float(torch.finfo(self.out[0].dtype).eps) / 2.0

    @property
    def eta(self) -> float:
        """The dtype's smallest subnormal: ``k`` operations that underflow add at most ``k η``
        (:mod:`~attn_expressivity.interop.layer_bounds`)."""
        return underflow_unit_of(self.out[0].dtype)


@dataclass
class Step:
    """The bound of one node (module docstring).

    Attributes
    ----------
    lips : list of float
        Lipschitz constant per tensor input, ``∞``-norm.
    spread : callable
        ``spread(e_inputs) -> Tensor``: elementwise bound of ``|f(ã) − f(a)|``.
    local : float or Tensor
        Float64, broadcastable to the output: both networks' rounding and, at a
        converted layer, the route's error.
    remainder : callable or None
        ``remainder(e_inputs) -> float or Tensor``: the linearisation's
        remainder at ``ã`` (None: 0, an affine map).
    backward_terms : int
        The longest inner product in the node's backward pass.
    concat : bool
        The output's difference is the largest of the inputs', not their sum.
    layer : dict or None
        At a converted layer, the route's terms for the report.
    derivative : callable or None
        For a pointwise function, ``f'`` in float64 (a one-sided value at a
        kink): the fine pass linearises with it rather than with PyTorch's
        backward formula (``hardsigmoid``'s, for one, uses ``1/6`` rounded to
        float32 even in float64).
    """

    lips: list[float]
    spread: Callable[[list[Any]], Any]
    local: Any = 0.0
    remainder: Callable[[list[Any]], Any] | None = None
    backward_terms: int = 2
    concat: bool = False
    layer: dict[str, Any] | None = None
    derivative: Callable[[Any], Any] | None = None


def _abs64(t: Any) -> Any:
    return t.detach().to(torch.float64).abs()


def _out_rounding(run: NodeRun, ops: int = 1) -> Any:
    """``ops`` roundings of each network's result: ``γ_ops (|out| + |out~|) / (1 − γ_ops) + 2 ops η``."""
    g = gamma(ops, run.u)
    return (_abs64(run.out[0]) + _abs64(run.out[1])) * (g / (1.0 - g)) * (1 + 4 * U64) + 2 * ops * run.eta


def _row_sum_max(w: Any, rows: int) -> float:
    """``max_o Σ |W_o|``: the ``∞→∞`` norm of a linear map, raised."""
    a = w.detach().to(torch.float64).abs().reshape(rows, -1)
    return raise_sum(float(a.sum(dim=1).max()), a.shape[1])


def _largest(t: Any) -> float:
    if torch.is_tensor(t):
        return float(t.max()) if t.numel() else 0.0
    return float(t)


# --------------------------------------------------------------------------- linear layers


def conv_step(run: NodeRun) -> Step:
    """A convolution: converted (the route's bound) or kept (its rounding in both networks)."""
    from .torch_separable import SeparableConvAttention

    conv, (x, xc) = run.module, run.inputs[0]
    state = _conv_state(conv)
    if state is not None:
        raise Unbounded(state)
    # an unbatched input (C, *spatial) is a batch of one
    batch = (lambda t: t) if x.dim() == conv.weight.dim() else (lambda t: t.unsqueeze(0))  # noqa: E731
    shape = run.out[0].shape
    local = conv_rounding_bound(conv, batch(x))
    layer = None
    if type(run.converted_module) is type(conv):
        local = local + conv_rounding_bound(conv, batch(xc))
    elif isinstance(run.converted_module, SeparableConvAttention):
        terms = separable_error_bound(run.converted_module, batch(xc))
        local = local + terms["bound"]
        layer = dict(terms, n_heads=run.converted_module.n_heads,
                     kernel_size=list(conv.kernel_size), stride=list(conv.stride))
    else:
        raise Unbounded(f"no a-priori bound for {type(run.converted_module).__name__} "
                        "(verify_model bounds the 'separable' route)")
    local = local.reshape(shape)

    def spread(e: list[Any]) -> Any:               # |W| * e, the padding mode's copies included
        return conv_magnitude(batch(e[0]), conv.weight, None, stride=conv.stride, padding=conv.padding,
                              dilation=conv.dilation, groups=conv.groups,
                              padding_mode=conv.padding_mode).reshape(shape)
    terms = math.prod(conv.weight.shape[2:]) * conv.weight.shape[0] // conv.groups + 2
    return Step([_row_sum_max(conv.weight, conv.weight.shape[0])], spread, local, None, terms,
                layer=layer)


def linear_step(run: NodeRun) -> Step:
    lin = run.module
    n, w = lin.in_features, _abs64(lin.weight)
    g = gamma(n + 1, run.u)
    bias = None if lin.bias is None else _abs64(lin.bias)
    local = sum(raise_sum(F.linear(_abs64(x), w, bias), n + 1) for x in run.inputs[0]) * g
    return Step([_row_sum_max(lin.weight, lin.out_features)],
                lambda e: raise_sum(F.linear(e[0], w), n),
                local * (1 + 4 * U64) + 2 * (n + 1) * run.eta, None, lin.out_features + 2)


def batchnorm_step(run: NodeRun) -> Step:
    """Eval-mode BatchNorm: ``y = (x − μ) γ/√(σ² + ε) + β = α x + β'`` per channel."""
    bn = run.module
    if bn.training or bn.running_mean is None:
        raise Unbounded(f"{type(bn).__name__} in training mode (or without running statistics) "
                        "normalises with batch statistics; call model.eval()")
    var = bn.running_var.detach().to(torch.float64)
    weight = torch.ones_like(var) if bn.weight is None else bn.weight.detach().to(torch.float64)
    bias = torch.zeros_like(var) if bn.bias is None else bn.bias.detach().to(torch.float64)
    shape = (1, -1) + (1,) * (run.out[0].dim() - 2)
    scale = ((weight.abs() / torch.sqrt(var + bn.eps)) * (1 + 8 * U64)).reshape(shape)  # |α|, raised
    shift = bn.running_mean.detach().to(torch.float64).abs().reshape(shape) * scale \
        + bias.abs().reshape(shape)
    local = sum(_abs64(x) * scale + shift for x in run.inputs[0]) * gamma(8, run.u)
    return Step([float(scale.max())], lambda e: e[0] * scale, local * (1 + 4 * U64) + 16 * run.eta,
                None, 6)


def averaging_step(run: NodeRun, window: int) -> Step:
    """A linear map with non-negative weights over ``window`` inputs per output (pooling, means).

    Its ``∞→∞`` norm is the largest output on an input of ones; applied to
    ``|x|`` it bounds the sum of the absolute terms, hence the rounding.
    """
    with torch.no_grad():
        lip = float(run.call([torch.ones_like(run.inputs[0][0], dtype=torch.float64)]).max())
        mags = [raise_sum(run.call([_abs64(x)]), window) for x in run.inputs[0]]
    local = (mags[0] + mags[1]) * gamma(window + 2, run.u) * (1 + 4 * U64) + 2 * (window + 2) * run.eta
    return Step([lip * (1 + 16 * U64)], lambda e: raise_sum(run.call([e[0]]), window), local,
                None, window + 2)


def _spatial_axes(kind: Any) -> int:
    """1, 2 or 3: the spatial axes of a pooling module or function, from its (torch base) class's
    or its own name (``MaxPool2d``, ``avg_pool3d``); the input may be batched or not."""
    names = [c.__name__ for c in type(kind).__mro__] if isinstance(kind, nn.Module) else [kind.__name__]
    for name in names:
        if name[-2:] in ("1d", "2d", "3d"):
            return int(name[-2])
    raise Unbounded(f"cannot tell how many spatial axes {names[0]} pools over")


def _pool_window(run: NodeRun) -> int:
    """The most inputs one output of a pooling module averages over (the input may be unbatched)."""
    m = run.module
    nd = _spatial_axes(m)
    if isinstance(m, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)):
        spatial = run.inputs[0][0].shape[-nd:]
        out = m.output_size if isinstance(m.output_size, tuple) else (m.output_size,) * nd
        return math.prod(-(-s // (o or s)) + 1 for s, o in zip(spatial, out))
    k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size,) * nd
    return math.prod(k)


# --------------------------------------------------------------------------- pointwise functions


@dataclass(frozen=True)
class _Pointwise:
    """A pointwise function: its Lipschitz constant, flat pieces, kinks, curvature and rounding.

    ``flat`` = ``(lo, hi)``: the function is constant on ``x <= lo`` and on
    ``x >= hi`` (``±inf`` for none), so two values there have equal images.
    ``kinks`` = ``((point, jump), ...)``: where the derivative jumps, and by how
    much at most (one-sided derivatives included). ``curvature``: ``sup |f''|``
    between kinks. ``rounding(|x|, |y|, u)``: one network's rounding bound,
    relative; each function is at most 12 operations (the largest ``γ_k`` of the
    rounding bounds), so their underflow adds ``12 η`` per network.
    """

    lip: float
    derivative: Callable[[Any], Any]
    flat: tuple[float, float] = (-math.inf, math.inf)
    kinks: tuple[tuple[float, float], ...] = ()
    curvature: float = 0.0
    rounding: Callable[[Any, Any, float], Any] | None = None

    def __call__(self, run: NodeRun) -> Step:
        x = run.inputs[0][1].detach().to(torch.float64)      # the converted network's input
        lo, hi = self.flat

        def spread(e: list[Any]) -> Any:
            # both values in a flat piece (x~ <= lo − e or x~ >= hi + e) have equal images
            moving = (x > lo - e[0]) & (x < hi + e[0])
            return e[0] * self.lip * moving

        def remainder(e: list[Any]) -> Any:
            # f(x) − f(x~) − f'(x~)(x − x~): half the curvature times e², plus, within e of a
            # kink, the derivative's jump (and its drift on the way) times e
            r = 0.5 * self.curvature * e[0] * e[0]
            for point, jump in self.kinks:
                near = (x - point).abs() <= e[0]
                r = r + near * (jump + self.curvature * e[0]) * e[0]
            return r * (1 + 4 * U64)
        local = 0.0
        if self.rounding is not None:
            local = sum(self.rounding(_abs64(x_), _abs64(y_), run.u)
                        for x_, y_ in zip(run.inputs[0], run.out)) * (1 + 4 * U64) + 24 * run.eta
        rem = remainder if (self.kinks or self.curvature) else None
        return Step([self.lip], spread, local, rem, 12, derivative=self.derivative)


def _g_in(k: int) -> Callable[[Any, Any, float], Any]:
    """Rounding ``γ_k |x|``: absolute, in the input's magnitude."""
    return lambda x, y, u: gamma(k, u) * x


def _g_out(k: int) -> Callable[[Any, Any, float], Any]:
    """Rounding ``γ_k |y| / (1 − γ_k)``: relative to the computed output."""
    return lambda x, y, u: gamma(k, u) / (1 - gamma(k, u)) * y


def _gelu_d(x: Any) -> Any:
    return 0.5 * (1.0 + torch.erf(x * (0.5 ** 0.5))) + x * torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _silu_d(x: Any) -> Any:
    s = torch.sigmoid(x)
    return s * (1.0 + x * (1.0 - s))


_relu = _Pointwise(1.0, lambda x: (x > 0).to(x.dtype), flat=(0.0, math.inf), kinks=((0.0, 1.0),))
_relu6 = _Pointwise(1.0, lambda x: ((x > 0) & (x < 6)).to(x.dtype), flat=(0.0, 6.0),
                    kinks=((0.0, 1.0), (6.0, 1.0)))
_gelu = _Pointwise(GELU_LIP, _gelu_d, curvature=SECOND_DERIVATIVE["gelu"], rounding=_g_in(10))
_silu = _Pointwise(SILU_LIP, _silu_d, curvature=SECOND_DERIVATIVE["silu"], rounding=_g_in(12))
_sigmoid = _Pointwise(0.25 * (1 + 1e-15), lambda x: torch.sigmoid(x) * (1.0 - torch.sigmoid(x)),
                      curvature=SECOND_DERIVATIVE["sigmoid"], rounding=_g_out(12))
_tanh = _Pointwise(1.0, lambda x: 1.0 - torch.tanh(x) ** 2, curvature=SECOND_DERIVATIVE["tanh"],
                   rounding=_g_out(10))
# Hardswish x·relu6(x+3)/6: f' = 0, (2x+3)/6, 1 on x < −3, |x| < 3, x > 3 (jumps 1/2 at ±3)
_hardswish = _Pointwise(1.5, lambda x: torch.where(x < -3, torch.zeros_like(x),
                                                  torch.where(x > 3, torch.ones_like(x), (2 * x + 3) / 6)),
                        flat=(-3.0, math.inf), kinks=((-3.0, 0.5), (3.0, 0.5)),
                        curvature=SECOND_DERIVATIVE["hardswish"],
                        rounding=lambda x, y, u: gamma(3, u) * (x * (x + 3.0) / 6.0 + 2.0 * y))
# Hardsigmoid relu6(x+3)/6: slope 1/6 on |x| < 3, flat outside
_hardsigmoid = _Pointwise(1.0 / 6.0 * (1 + 1e-15), lambda x: ((x > -3) & (x < 3)).to(x.dtype) / 6.0,
                          flat=(-3.0, 3.0),
                          kinks=((-3.0, 1.0 / 6.0 * (1 + 1e-15)), (3.0, 1.0 / 6.0 * (1 + 1e-15))),
                          rounding=lambda x, y, u: gamma(3, u) * ((x + 3.0) / 6.0 + 2.0 * y))


def _leaky(run: NodeRun) -> Step:
    s = float(run.module.negative_slope) if run.module is not None else float(
        run.kwargs.get("negative_slope", run.args[1] if len(run.args) > 1 else 0.01))
    # the slope is rounded to the dtype, then multiplied: two roundings
    return _Pointwise(max(1.0, abs(s)), lambda x: torch.where(x > 0, torch.ones_like(x), torch.full_like(x, s)),
                      kinks=((0.0, abs(1.0 - s)),), rounding=_g_out(2))(run)


def _gelu_step(run: NodeRun) -> Step:
    approx = run.module.approximate if run.module is not None else run.kwargs.get("approximate", "none")
    if approx != "none":
        raise Unbounded(f"GELU(approximate={approx!r}) has no rule (its Lipschitz constant "
                        "differs from the exact GELU's)")
    return _gelu(run)


# --------------------------------------------------------------------------- max pooling


def _max_margin(x: Any, kernel, stride, padding, dilation, out_shape) -> Any | None:
    """Largest minus second largest value of every window; None when the windows do not match ``out_shape``.

    ``x`` is ``(N, C, *spatial)`` and ``out_shape`` the pooled shape.
    """
    nd = len(kernel)
    spans = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    needs = [(o - 1) * s + span for o, s, span in zip(out_shape[2:], stride, spans)]
    sizes = [n + 2 * p for n, p in zip(x.shape[2:], padding)]
    # the padding, and (ceil_mode) room for a last window that hangs over the edge, on every
    # axis before any is unfolded (unfold appends an axis, which F.pad would then pad instead)
    pad = [(p, p + max(0, need - size)) for p, need, size in zip(padding, needs, sizes)]
    v = F.pad(x.detach().to(torch.float64), [w for lo_hi in reversed(pad) for w in lo_hi],
              value=-math.inf)
    for i in range(nd):
        v = v.narrow(2 + i, 0, needs[i]).unfold(2 + i, spans[i], stride[i])
    v = v[(Ellipsis,) + tuple(slice(None, None, d) for d in dilation)].flatten(-nd)
    if tuple(v.shape[:-1]) != tuple(out_shape):
        return None
    if v.shape[-1] < 2:
        return torch.full(v.shape[:-1], math.inf, dtype=torch.float64, device=v.device)
    top = v.topk(2, dim=-1).values
    return top[..., 0] - top[..., 1]


def maxpool_step(run: NodeRun) -> Step:
    """Max pooling: exact, 1-Lipschitz; linear at ``ã`` on windows won by more than ``2e``."""
    m = run.module
    if getattr(m, "return_indices", False) or run.kwargs.get("return_indices"):
        raise Unbounded("max pooling with return_indices=True has no rule")
    margin = None
    if isinstance(m, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
        nd = _spatial_axes(m)
        tup = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v,) * nd  # noqa: E731
        x, out = run.inputs[0][1], run.out[1].shape
        if x.dim() == nd + 1:                                   # unbatched
            x, out = x.unsqueeze(0), (1,) + tuple(out)
        margin = _max_margin(x, tup(m.kernel_size), tup(m.stride or m.kernel_size),
                             tup(m.padding), tup(m.dilation), out)
        if margin is not None:
            margin = margin.reshape(run.out[1].shape)

    def remainder(e: list[Any]) -> Any:
        # a window whose winner leads by more than 2e wins in both networks
        reach = 2.0 * run.call([e[0]])
        return reach if margin is None else reach * (margin <= reach)
    return Step([1.0], lambda e: run.call([e[0]]), 0.0, remainder, 2)


# --------------------------------------------------------------------------- arithmetic


def _scalar_operand(run: NodeRun) -> float | None:
    """The number in a binary operation with one tensor operand (None when both are tensors)."""
    if len(run.inputs) == 2:
        return None
    operands = [a for a in run.args[:2] if not torch.is_tensor(a)]
    if len(operands) != 1 or isinstance(operands[0], bool) or not isinstance(operands[0], (int, float)):
        raise Unbounded(f"{_name(run.node)} with operands {run.args[:2]!r} has no rule")
    return float(operands[0])


def add_step(run: NodeRun) -> Step:
    """``x ± α y`` or ``x ± c``: Lipschitz ``(1, |α|)``; the sum's rounding, and the number's own
    (``c`` or ``α`` rounded to the dtype, ``α y`` rounded once more)."""
    c = _scalar_operand(run)
    alpha = abs(float(run.kwargs.get("alpha", 1.0)))
    local = _out_rounding(run)
    if c is not None:
        local = local + 2.0 * run.u * abs(c) + 2 * run.eta
    if alpha != 1.0 and len(run.inputs) == 2:
        g = gamma(3, run.u)
        local = local + sum((_abs64(x) + alpha * _abs64(y)) * g for x, y in zip(*run.inputs)) \
            + 6 * run.eta
    if len(run.inputs) == 2:
        return Step([1.0, alpha], lambda e: e[0] + alpha * e[1], local, None, 2)
    return Step([1.0], lambda e: e[0], local, None, 2)


def mul_step(run: NodeRun) -> Step:
    """``x y``: ``x~y~ − xy = y~(x~ − x) + x(y~ − y)``; linearised at ``ã``, the remainder is ``e_x e_y``."""
    c = _scalar_operand(run)
    if c is not None:                              # c rounded to the dtype, then the product
        local = _out_rounding(run, 2)
        if 0 < abs(c) < torch.finfo(run.out[0].dtype).tiny:
            # fl(c) = c (1 + δ) + ε, |ε| <= η/2: the product carries ε x in each network
            local = local + (_abs64(run.inputs[0][0]) + _abs64(run.inputs[0][1])) * run.eta
        return Step([abs(c)], lambda e: abs(c) * e[0], local, None, 2)
    (x, xc), (y, yc) = run.inputs
    ax, ayc = _abs64(x), _abs64(yc)
    lips = [max(_largest(ayc), _largest(_abs64(y))), max(_largest(ax), _largest(_abs64(xc)))]
    return Step(lips, lambda e: ayc * e[0] + ax * e[1], _out_rounding(run),
                lambda e: e[0] * e[1] * (1 + 4 * U64), 2)


def div_step(run: NodeRun) -> Step:
    """``x / c``: Lipschitz ``1/|c|``; ``c`` rounded to the dtype, then the quotient. A
    ``rounding_mode`` (floor, trunc) makes the map a step function: no rule."""
    mode = run.kwargs.get("rounding_mode", run.args[2] if len(run.args) > 2 else None)
    if mode is not None:
        raise Unbounded(f"division with rounding_mode={mode!r} is a step function; no rule bounds it")
    if len(run.inputs) != 1 or not (run.args and torch.is_tensor(run.args[0])):
        raise Unbounded("division by a tensor has no rule")
    c = _scalar_operand(run)
    if c == 0:
        raise Unbounded("division by zero")
    if abs(c) < torch.finfo(run.out[0].dtype).tiny:
        raise Unbounded(f"division by {c!r}, below the normal range of {run.out[0].dtype}: "
                        "its rounding is not relative")
    k = 1.0 / abs(c) * (1 + 2 * U64)
    return Step([k], lambda e: k * e[0], _out_rounding(run, 2), None, 2)


def mean_step(run: NodeRun) -> Step:
    x = run.inputs[0][0]
    dims = run.args[1] if len(run.args) > 1 else run.kwargs.get("dim")
    if dims is None:
        dims = tuple(range(x.dim()))
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return averaging_step(run, math.prod(x.shape[d] for d in dims))


def _name(node: Any) -> str:
    t = node.target
    return t if isinstance(t, str) else getattr(t, "__name__", repr(t))


# --------------------------------------------------------------------------- dispatch


def _view(run: NodeRun) -> Step:
    """Exact reshaping, selection or copying: the value comes from the first tensor input."""
    return Step([1.0] + [0.0] * (len(run.inputs) - 1),
                lambda e: run.call([e[0]] + [torch.zeros_like(t) for t in e[1:]]), 0.0, None, 1)


def _concat(run: NodeRun) -> Step:
    return Step([1.0] * len(run.inputs), lambda e: run.call(list(e)), 0.0, None, 1, concat=True)


def _negate(run: NodeRun) -> Step:
    """``−x``: exact, Lipschitz 1."""
    return Step([1.0], lambda e: e[0], 0.0, None, 1)


def _dropout(run: NodeRun) -> Step:
    training = run.module.training if run.module is not None else bool(
        run.kwargs.get("training", run.args[2] if len(run.args) > 2 else True))
    p = run.module.p if run.module is not None else float(
        run.kwargs.get("p", run.args[1] if len(run.args) > 1 else 0.5))
    if training and p > 0:
        raise Unbounded("dropout in training mode is random; call model.eval()")
    return Step([1.0], lambda e: e[0], 0.0, None, 1)


def _convert_dtype(run: NodeRun) -> Step:
    if run.out[0].dtype != run.inputs[0][0].dtype:
        raise Unbounded(f"{_name(run.node)} changes the dtype ({run.inputs[0][0].dtype} -> "
                        f"{run.out[0].dtype}), which no rule bounds")
    return Step([1.0], lambda e: e[0], 0.0, None, 1)


def _module_pool(run: NodeRun) -> Step:
    return averaging_step(run, _pool_window(run))


def _functional_pool(run: NodeRun) -> Step:
    fn, rest, kw = run.node.target, run.args[1:], run.kwargs
    x, nd = run.inputs[0][0], _spatial_axes(run.node.target)
    if "adaptive" in fn.__name__:
        out = rest[0] if rest else kw["output_size"]
        out = out if isinstance(out, (tuple, list)) else (out,) * nd
        window = math.prod(-(-s // (o or s)) + 1 for s, o in zip(x.shape[-nd:], out))
    else:
        k = rest[0] if rest else kw["kernel_size"]
        window = math.prod(k) if isinstance(k, (tuple, list)) else k ** nd
    return averaging_step(run, window)


_MODULES: list[tuple[tuple[type, ...], Callable[[NodeRun], Step]]] = [
    ((nn.Conv1d, nn.Conv2d, nn.Conv3d), conv_step),
    ((nn.Linear,), linear_step),
    ((nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d), batchnorm_step),
    ((nn.ReLU,), _relu), ((nn.ReLU6,), _relu6), ((nn.LeakyReLU,), _leaky),
    ((nn.GELU,), _gelu_step), ((nn.SiLU,), _silu), ((nn.Sigmoid,), _sigmoid), ((nn.Tanh,), _tanh),
    ((nn.Hardswish,), _hardswish), ((nn.Hardsigmoid,), _hardsigmoid),
    ((nn.Identity, nn.Flatten, nn.Unflatten), _view),
    ((nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout), _dropout),
    ((nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
      nn.AdaptiveMaxPool3d), maxpool_step),
    ((nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
      nn.AdaptiveAvgPool3d), _module_pool),
]

_FUNCTIONS: dict[Any, Callable[[NodeRun], Step]] = {
    operator.add: add_step, operator.iadd: add_step, torch.add: add_step,
    operator.sub: add_step, operator.isub: add_step, torch.sub: add_step,
    operator.mul: mul_step, operator.imul: mul_step, torch.mul: mul_step,
    operator.truediv: div_step, operator.itruediv: div_step, torch.div: div_step,
    operator.neg: _negate, torch.neg: _negate, torch.negative: _negate, operator.getitem: _view,
    torch.flatten: _view, torch.reshape: _view, torch.permute: _view, torch.transpose: _view,
    torch.squeeze: _view, torch.unsqueeze: _view, torch.clone: _view,
    torch.cat: _concat, torch.concat: _concat, torch.stack: _concat,
    torch.relu: _relu, F.relu: _relu, torch.relu_: _relu, F.relu6: _relu6,
    F.leaky_relu: _leaky, F.gelu: _gelu_step, F.silu: _silu, torch.sigmoid: _sigmoid,
    F.sigmoid: _sigmoid, torch.tanh: _tanh, F.tanh: _tanh, F.hardswish: _hardswish,
    F.hardsigmoid: _hardsigmoid, F.dropout: _dropout, torch.mean: mean_step,
    F.avg_pool1d: _functional_pool, F.avg_pool2d: _functional_pool, F.avg_pool3d: _functional_pool,
    F.adaptive_avg_pool1d: _functional_pool, F.adaptive_avg_pool2d: _functional_pool,
    F.adaptive_avg_pool3d: _functional_pool,
    F.max_pool1d: maxpool_step, F.max_pool2d: maxpool_step, F.max_pool3d: maxpool_step,
    F.adaptive_max_pool1d: maxpool_step, F.adaptive_max_pool2d: maxpool_step,
    F.adaptive_max_pool3d: maxpool_step,
}

_METHODS: dict[str, Callable[[NodeRun], Step]] = {
    **{name: _view for name in ("view", "reshape", "flatten", "permute", "transpose", "t",
                                "contiguous", "squeeze", "unsqueeze", "expand", "expand_as",
                                "clone", "detach", "view_as", "reshape_as")},
    "neg": _negate, "negative": _negate,
    "relu": _relu, "relu_": _relu, "sigmoid": _sigmoid, "sigmoid_": _sigmoid, "tanh": _tanh,
    "add": add_step, "add_": add_step, "sub": add_step, "sub_": add_step,
    "mul": mul_step, "mul_": mul_step, "div": div_step, "div_": div_step, "mean": mean_step,
    "to": _convert_dtype, "type": _convert_dtype, "float": _convert_dtype, "double": _convert_dtype,
}


def rule_for(run: NodeRun) -> Step:
    """The :class:`Step` of one node; :class:`Unbounded` when no rule applies (the message says why)."""
    node = run.node
    if node.op == "call_module":
        for kinds, rule in _MODULES:
            base = next((k for k in kinds if isinstance(run.module, k)), None)
            if base is not None:
                reason = _customisation(run.module, base, parametrised=True)
                if reason is not None:
                    raise Unbounded(f"module {node.target!r} is not a plain {base.__name__}: {reason}")
                return rule(run)
        raise Unbounded(f"module {node.target!r} ({type(run.module).__name__}) has no rule")
    if node.op == "call_function":
        rule = _FUNCTIONS.get(node.target)
        if rule is None:
            raise Unbounded(f"function {_name(node)} has no rule")
        return rule(run)
    if node.op == "call_method":
        rule = _METHODS.get(node.target)
        if rule is None:
            raise Unbounded(f"method .{node.target}() has no rule")
        return rule(run)
    raise Unbounded(f"node {node.name} ({node.op}) has no rule")
