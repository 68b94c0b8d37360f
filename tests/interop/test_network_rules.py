"""Each propagation rule of verify_model: sound, and attained or nearly attained by a perturbation.

For a rule with Lipschitz constants ``L_i`` (∞-norm), ``‖f(ã) − f(a)‖ <= Σ_i L_i ‖ã_i − a_i‖``
must hold for every perturbation and be (nearly) an equality for the one built
here; the elementwise ``spread`` must bound ``|f(ã) − f(a)|`` and the ``remainder``
the linearisation error ``|f(a) − f(ã) − J_f(ã)(a − ã)|``, again nearly attained;
the local rounding terms must bound what float32 arithmetic actually does.
"""

import math
import operator

import pytest

torch = pytest.importorskip("torch", reason="needs the torch extra: pip install torch==2.13.0")
from torch import nn  # noqa: E402

from attn_expressivity.interop.network_passes import Recorder as _Recorder  # noqa: E402
from attn_expressivity.interop.network_passes import _node_run  # noqa: E402
from attn_expressivity.interop.network_rules import (  # noqa: E402
    GELU_LIP,
    SECOND_DERIVATIVE,
    SILU_LIP,
    Unbounded,
    rule_for,
)

D = torch.float64


class _One(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.m = fn if isinstance(fn, nn.Module) else None
        self.fn = None if isinstance(fn, nn.Module) else fn

    def forward(self, x):
        return self.m(x) if self.m is not None else self.fn(x)


class _Two(_One):
    def forward(self, x, y):
        return self.fn(x, y)


def step_of(fn, originals, converted):
    """The rule's Step for ``fn`` applied to ``originals`` (network a) and ``converted`` (network ã)."""
    gm = torch.fx.symbolic_trace((_One if len(originals) == 1 else _Two)(fn))
    ro, rc = _Recorder(gm), _Recorder(gm)
    with torch.no_grad():
        ro.run(*originals)
        rc.run(*converted)
    node = [n for n in gm.graph.nodes if n.op not in ("placeholder", "output", "get_attr")][-1]
    ins = [m for m in _occurrences(node) if torch.is_tensor(ro.values[m.name])
           and ro.values[m.name].is_floating_point()]
    run = _node_run(node, ins, gm, gm, ro.values, rc.values)
    return rule_for(run), ro.values[node.name], rc.values[node.name]


def _occurrences(node):
    found = []
    torch.fx.node.map_arg((node.args, node.kwargs), lambda m: found.append(m) or m)
    return found


U = 2.0**-53


def check(fn, a, c, attained=0.99):
    """Sound Lipschitz and spread bounds at (a, c); the Lipschitz bound attained to ``attained``.

    The differences are computed in float64: each carries the rounding of the two values
    it subtracts, at most ``16 u (|f(a)| + |f(ã)|)`` (a few operations, each within ``4u``).
    """
    a, c = (list(v) if isinstance(v, tuple) else [v] for v in (a, c))
    step, ya, yc = step_of(fn, a, c)
    diff = (yc - ya).abs()
    slack = 16 * U * (ya.abs() + yc.abs())
    e = [(ci - ai).abs() for ai, ci in zip(a, c)]
    lip_bound = sum(lip * float(ei.max()) for lip, ei in zip(step.lips, e))
    assert float((diff - slack).max()) <= lip_bound
    assert float(diff.max()) >= attained * lip_bound
    assert bool((diff <= step.spread(e) + slack).all())
    return step, e


def test_linear_layers_attain_their_row_sums():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1, dtype=D)
    o = int(conv.weight.abs().sum(dim=(1, 2, 3)).argmax())
    x = torch.randn(1, 3, 7, 7, dtype=D)
    delta = torch.zeros_like(x)
    delta[0, :, 2:5, 2:5] = 1e-3 * conv.weight[o].detach().sign()   # the receptive field of output (o, 3, 3)
    check(conv, x, x + delta, attained=1 - 1e-9)
    lin = nn.Linear(5, 3, dtype=D)
    o = int(lin.weight.abs().sum(dim=1).argmax())
    x = torch.randn(2, 5, dtype=D)
    check(lin, x, x + 1e-3 * lin.weight[o].detach().sign(), attained=1 - 1e-9)
    bn = nn.BatchNorm2d(3, dtype=D).eval()
    with torch.no_grad():
        bn.running_var.copy_(torch.tensor([0.5, 2.0, 1.0]))
        bn.weight.copy_(torch.tensor([1.0, -3.0, 0.2]))
    x = torch.randn(1, 3, 4, 4, dtype=D)
    check(bn, x, x + 1e-3, attained=1 - 1e-9)


@pytest.mark.parametrize("module,at,lip", [
    (nn.ReLU(), 1.0, 1.0), (nn.ReLU6(), 3.0, 1.0), (nn.LeakyReLU(-2.0), -1.0, 2.0),
    (nn.GELU(), math.sqrt(2), GELU_LIP), (nn.SiLU(), 2.399357280515467, SILU_LIP),
    (nn.Sigmoid(), 0.0, 0.25), (nn.Tanh(), 0.0, 1.0), (nn.Hardswish(), 3.0 - 5e-7, 1.5),
    (nn.Hardsigmoid(), 0.5, 1 / 6)])
def test_pointwise_constants_are_their_true_lipschitz_constants(module, at, lip):
    """Attained at the point of largest slope, never exceeded on a fine grid."""
    eps = 1e-6
    a = torch.tensor([at - eps / 2], dtype=D)
    step, _ = check(module, a, a + eps, attained=1 - 1e-5)
    assert step.lips[0] == pytest.approx(lip, rel=1e-9)
    grid = torch.linspace(-12, 12, 200001, dtype=D)
    slopes = (module(grid[1:]) - module(grid[:-1])).abs() / (grid[1] - grid[0])
    assert float(slopes.max()) <= step.lips[0] * (1 + 1e-9)


@pytest.mark.parametrize("name,module", [("gelu", nn.GELU()), ("silu", nn.SiLU()),
                                         ("sigmoid", nn.Sigmoid()), ("tanh", nn.Tanh())])
def test_curvature_constants_bound_the_second_derivative(name, module):
    """sup |f''| on a fine grid: below the constant, and within 0.1 % of it."""
    grid = torch.linspace(-12, 12, 100001, dtype=D).requires_grad_(True)
    g, = torch.autograd.grad(module(grid).sum(), grid, create_graph=True)
    h, = torch.autograd.grad(g.sum(), grid)
    assert float(h.abs().max()) <= SECOND_DERIVATIVE[name] and float(h.abs().max()) >= 0.999 * SECOND_DERIVATIVE[name]


def linearisation_error(module, x, xc, derivative=None):
    """|f(x) − f(x~) − f'(x~)(x − x~)| elementwise, and the float64 rounding of computing it.

    ``f'`` is the rule's derivative when it has one (what the fine pass uses), else autograd's."""
    xc = xc.clone().requires_grad_(True)
    y = module(xc)
    g, = torch.autograd.grad(y.sum(), xc)
    if derivative is not None:
        g = derivative(xc.detach())
    fx, xc = module(x), xc.detach()
    r = (fx - y.detach() - g * (x - xc)).abs()
    return r, 16 * U * (fx.abs() + y.detach().abs() + (g * (x - xc)).abs())


@pytest.mark.parametrize("module,centre,attained", [
    (nn.ReLU(), 0.0, 0.99), (nn.ReLU6(), 6.0, 0.99), (nn.Hardsigmoid(), 3.0, 0.99),
    (nn.Hardswish(), -3.0, 0.45), (nn.LeakyReLU(0.2), 0.0, 0.99),
    (nn.GELU(), 0.0, 0.99), (nn.SiLU(), 0.0, 0.99), (nn.Tanh(), -0.6585, 0.99),
    (nn.Sigmoid(), 1.3169, 0.99)])
def test_remainders_are_sound_and_nearly_attained(module, centre, attained):
    """Sound on random points around a kink or the curvature's peak; attained by the worst pair:
    x~ just past the kink and x at distance e before it (a kink), or both about the peak (curvature)."""
    torch.manual_seed(1)
    eps = 1e-3
    xc = centre + 4 * eps * torch.randn(4000, dtype=D)
    x = xc + eps * (2 * torch.rand(4000, dtype=D) - 1)
    step, e = check(module, x, xc, attained=0.0)
    r, slack = linearisation_error(module, x, xc, step.derivative)
    assert bool((r <= step.remainder(e) + slack).all())
    kink = "ReLU" in type(module).__name__ or "Hard" in type(module).__name__
    xc1 = torch.tensor([centre + (1e-9 if kink else 0.0)], dtype=D)
    x1 = xc1 - eps if kink else xc1 + eps
    step1, e1 = check(module, x1, xc1, attained=0.0)
    r1, _ = linearisation_error(module, x1, xc1, step1.derivative)
    assert float(r1) >= attained * float(step1.remainder(e1).max()) * (1.0 if kink else 1.0)


def test_max_pooling_remainder_is_attained_by_a_swap():
    pool = nn.MaxPool1d(2)
    eps, tiny = 1e-3, 1e-9
    xc = torch.tensor([[[0.0, tiny]]], dtype=D)                 # the converted network: index 1 wins
    x = torch.tensor([[[eps, tiny - eps]]], dtype=D)             # the original: index 0 wins
    step, e = check(pool, x, xc, attained=0.0)
    xg = xc.clone().requires_grad_(True)
    g, = torch.autograd.grad(pool(xg).sum(), xg)                # routes to the converted winner
    r = (pool(x) - pool(xc) - (g * (x - xc)).sum()).abs()
    assert float(r) == pytest.approx(2 * eps - tiny, rel=1e-6)
    assert float(step.remainder(e).max()) >= float(r)
    wide = torch.tensor([[[0.0, 1.0]]], dtype=D)                # won by far more than 2e: linear
    assert float(rule_for_pool(pool, wide + 1e-3, wide).remainder([torch.full_like(wide, 1e-3)]).max()) == 0.0


def rule_for_pool(pool, a, c):
    return step_of(pool, [a], [c])[0]


def test_sums_products_and_scalars():
    torch.manual_seed(2)
    x, y = torch.rand(3, 4, dtype=D) + 0.5, torch.rand(3, 4, dtype=D) + 0.5
    check(operator.add, (x, y), (x + 1e-3, y + 1e-3), attained=1 - 1e-9)
    # x~y~ − xy = y~ e_x + x e_y exactly for positive perturbations: the spread is attained
    step, e = check(operator.mul, (x, y), (x + 1e-3, y + 2e-3), attained=0.5)
    assert torch.allclose(step.spread(e), ((x + 1e-3) * (y + 2e-3) - x * y), rtol=1e-12, atol=0)
    assert float(step.remainder(e).max()) == pytest.approx(2e-6, rel=1e-9)
    check(lambda t: 3.0 * t, x, x + 1e-3, attained=1 - 1e-9)
    check(lambda t: t / 4.0, x, x + 1e-3, attained=1 - 1e-9)
    check(lambda t, v: torch.cat([t, v]), (x, y), (x + 1e-3, y + 2e-3), attained=0.5)


def test_averages_and_selections():
    torch.manual_seed(3)
    x = torch.randn(1, 2, 6, 6, dtype=D)
    for fn in (nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1), nn.MaxPool2d(3, 2, 1), lambda t: t.mean((2, 3)),
               lambda t: torch.flatten(t, 1), lambda t: t[:, :1], lambda t: t.reshape(2, -1)):
        check(fn, x, x + 1e-3, attained=1 - 1e-9)


@pytest.mark.parametrize("fn,shape", [
    (nn.Conv2d(3, 4, 3, padding=1), (2, 3, 9, 9)), (nn.Linear(50, 7), (3, 50)),
    (nn.BatchNorm2d(3).eval(), (2, 3, 5, 5)), (nn.GELU(), (4000,)), (nn.SiLU(), (4000,)),
    (nn.Sigmoid(), (4000,)), (nn.Tanh(), (4000,)), (nn.Hardswish(), (4000,)), (nn.Hardsigmoid(), (4000,)),
    (nn.LeakyReLU(0.1), (4000,)), (nn.AvgPool2d(3), (2, 3, 9, 9)), (nn.AdaptiveAvgPool2d(1), (2, 3, 9, 9)),
    (lambda t: t.mean(1), (5, 300)), (operator.add, ((4000,), (4000,))), (operator.mul, ((4000,), (4000,)))])
def test_local_rounding_terms_bound_float32(fn, shape):
    """The local term of one network bounds the float32 result's distance from float64's."""
    torch.manual_seed(4)
    shapes = shape if isinstance(shape[0], tuple) else (shape,)
    xs = [3 * torch.randn(s) for s in shapes]
    if isinstance(fn, nn.BatchNorm2d):
        with torch.no_grad():
            fn.running_mean.copy_(torch.randn(3))
            fn.running_var.copy_(torch.rand(3) + 0.1)
            fn.weight.copy_(torch.randn(3))
            fn.bias.copy_(torch.randn(3))
    step, y32, _ = step_of(fn, xs, xs)
    fn64 = fn.double() if isinstance(fn, nn.Module) else fn
    with torch.no_grad():
        y64 = fn64(*[x.double() for x in xs])
    one_network = step.local / 2                     # both networks ran the same input here
    assert bool(((y32.double() - y64).abs() <= one_network + 1e-12 * y64.abs()).all())
    if isinstance(fn, nn.Module):
        fn.float()


@pytest.mark.parametrize("fn,reason", [
    (nn.LayerNorm(4), "LayerNorm"), (torch.exp, "function exp"), (nn.GELU("tanh"), "approximate='tanh'"),
    (nn.Dropout(0.5).train(), "training mode"), (lambda t: t / t, "division by a tensor"),
    (lambda t: t.to(torch.float32), "changes the dtype"), (nn.BatchNorm1d(4).train(), "training mode")])
def test_what_has_no_rule_says_why(fn, reason):
    x = torch.rand(3, 4, dtype=D) + 0.5
    if isinstance(fn, nn.Module):
        fn.double()
    with pytest.raises(Unbounded, match=reason):
        step_of(fn, [x], [x])


def test_the_rules_derivatives_and_why_not_autograds():
    """The fine pass linearises pointwise functions with the rule's f'; PyTorch's backward of
    hardsigmoid uses 1/6 rounded to float32 even in float64 (off by 5e-9)."""
    from attn_expressivity.interop import network_rules as rules

    x = torch.linspace(-8, 8, 20001, dtype=D)
    for rule, module in [(rules._gelu, nn.GELU()), (rules._silu, nn.SiLU()), (rules._tanh, nn.Tanh()),
                         (rules._sigmoid, nn.Sigmoid()), (rules._hardswish, nn.Hardswish()),
                         (rules._hardsigmoid, nn.Hardsigmoid()), (rules._relu, nn.ReLU())]:
        xg = x.clone().requires_grad_(True)
        g, = torch.autograd.grad(module(xg).sum(), xg)
        exact = (module(x + 1e-7) - module(x - 1e-7)) / 2e-7           # away from kinks
        smooth = (x.abs() - 3).abs() > 1e-3
        assert float((rule.derivative(x) - exact)[smooth & (x.abs() > 1e-3)].abs().max()) < 1e-7
        if module.__class__ is nn.Hardsigmoid:
            assert float((g - rule.derivative(x)).abs().max()) > 1e-9
