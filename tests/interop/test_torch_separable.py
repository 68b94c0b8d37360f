"""The separable, banded torch route: exact against the numpy layer and the dense route, banded, drop-in.

Every tolerance is a bound of the package: the route's a-priori bound against
the exact convolution (:func:`separable_error_bound`), the numpy layer's
(:func:`error_bound`), a convolution's rounding, the band's dropped mass.
"""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch", reason="needs the torch extra: pip install torch==2.13.0")

from attn_expressivity import InputMismatchError, ParameterValueError, conv_to_mhsa  # noqa: E402
from attn_expressivity.bounds.error import error_bound  # noqa: E402
from attn_expressivity.interop.layer_bounds import (  # noqa: E402
    conv_magnitude,
    conv_rounding_bound,
    gradient_bounds,
    separable_error_bound,
)
from attn_expressivity.interop.torch import from_torch, to_torch, torch_to_kernel  # noqa: E402
from attn_expressivity.interop.torch_separable import (  # noqa: E402
    SeparableConvAttention,
    band_dropped_mass,
    band_radius,
)

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")

MODES = ["zeros", "reflect", "replicate", "circular"]


@st.composite
def conv_modules(draw, dtype=torch.float64):
    """A random torch convolution (1-3 axes, every hyper-parameter) and an input it accepts."""
    nd = draw(st.integers(1, 3))
    ks = tuple(draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
    dil = tuple(draw(st.lists(st.integers(1, 2), min_size=nd, max_size=nd)))
    groups = draw(st.sampled_from([1, 2]))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    padding = draw(st.one_of(st.sampled_from(["same", "valid"]), st.integers(0, 2)))
    stride = 1 if padding == "same" else draw(st.integers(1, 3))
    mode = draw(st.sampled_from(MODES))
    span = [d * (k - 1) + 1 for k, d in zip(ks, dil)]
    spatial = tuple(draw(st.integers(max(s, 3), max(s, 3) + (5 if nd < 3 else 2))) for s in span)
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    cls = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)[nd - 1]
    m = cls(c_in, c_out, ks, stride=stride, padding=padding, dilation=dil, groups=groups,
            bias=draw(st.booleans()), padding_mode=mode, dtype=dtype)
    with torch.no_grad():
        m.weight.copy_(torch.randn(m.weight.shape, generator=gen, dtype=dtype))
        if m.bias is not None:
            m.bias.copy_(torch.randn(m.bias.shape, generator=gen, dtype=dtype))
    x = torch.randn((2, c_in) + spatial, generator=gen, dtype=dtype)
    return m, x


def accepts(m, x):
    try:
        with torch.no_grad():
            m(x)
    except (RuntimeError, ValueError, NotImplementedError):
        return False
    return True


def exact_conv(m, x):
    """The convolution in float64 (exact up to its own rounding, bounded by conv_rounding_bound)."""
    m64 = type(m)(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                  dilation=m.dilation, groups=m.groups, bias=m.bias is not None,
                  padding_mode=m.padding_mode, dtype=torch.float64)
    m64.load_state_dict({k: v.double() for k, v in m.state_dict().items()})
    with torch.no_grad():
        return m64(x.double()), conv_rounding_bound(m64, x.double())


@settings(max_examples=15)
@given(conv_modules(), st.sampled_from([math.inf, 40.0, 9.0, 3.0, 0.8, 0.0]))
def test_against_the_convolution_within_the_route_bound(case, alpha):
    m, x = case
    assume(accepts(m, x))
    attn = SeparableConvAttention.from_conv(m, alpha=alpha)
    with torch.no_grad():
        got = attn(x)
    want, rounding = exact_conv(m, x)
    bound = separable_error_bound(attn, x)["bound"] + rounding
    assert got.shape == want.shape
    assert bool(((got - want).abs() <= bound).all())


@settings(max_examples=12)
@given(conv_modules(), st.sampled_from([math.inf, 30.0, 5.0, 1.5]))
def test_same_attention_as_the_numpy_layer_and_the_dense_route(case, alpha):
    """The separable route, the numpy layer and the SDPA route agree within the sum of their bounds."""
    m, x = case
    assume(accepts(m, x))
    layer = from_torch(m, alpha=alpha)
    attn = SeparableConvAttention.from_conv(m, alpha=alpha, band=None)       # the whole image
    xn = np.moveaxis(x.numpy(), 1, -1)
    with torch.no_grad():
        ours = attn(x)
        dense = to_torch(layer, route="sdpa")(x)
    numpy_layer = torch.from_numpy(np.moveaxis(layer(xn), -1, 1).copy())
    want, rounding = exact_conv(m, x)
    ours_bound = separable_error_bound(attn, x)["bound"] + rounding
    numpy_bound = error_bound(layer, xn)["bound"]          # includes the convolution's rounding
    assert bool(((ours - numpy_layer).abs() <= ours_bound + numpy_bound).all())
    assert bool(((ours - dense).abs() <= ours_bound + numpy_bound).all())


@pytest.mark.parametrize("alpha,radius", [(1.0, 1), (0.6, 2), (2.5, 0)])
def test_the_band_drops_at_most_its_mass(alpha, radius):
    """|banded − whole image| <= 2 · dropped mass · S + both routes' rounding, and the mass bound holds."""
    torch.manual_seed(3)
    m = torch.nn.Conv2d(3, 4, 3, padding=1, dtype=torch.float64)
    x = torch.randn(2, 3, 11, 9, dtype=torch.float64)
    band, full = (SeparableConvAttention.from_conv(m, alpha=alpha, band=b) for b in (radius, None))
    with torch.no_grad():
        diff = (band(x) - full(x)).abs().amax(dim=(0, 2, 3))
    mass = band_dropped_mass(alpha, radius, 2)
    # the exact mass outside the band, for an interior target on the 11-pixel axis
    z = np.arange(-10, 11)
    axis = np.exp(-alpha * z**2) / np.exp(-alpha * z**2).sum()
    outside = 1 - axis[np.abs(z) <= radius].sum() ** 2
    assert outside <= mass <= 2.5 * outside + 1e-300
    terms_b, terms_f = separable_error_bound(band, x), separable_error_bound(full, x)
    rounding = (terms_b["rounding_term"] + terms_f["rounding_term"]).amax(dim=(0, 2, 3))
    assert bool((diff <= 2 * mass * terms_b["scale"] + rounding).all())
    assert float(diff.max()) > 0.01 * 2 * mass * float(terms_b["scale"].max())   # the band matters


def test_band_radius_choices():
    assert band_radius(40.0, torch.float32, "auto", 100) == 1          # 40 r² <= 87.3
    assert band_radius(40.0, torch.float64, "auto", 100) == 4          # 40 r² <= 708.4
    assert band_radius(math.inf, torch.float64, "auto", 10) == 0
    assert band_radius(1e-3, torch.float64, "auto", 10) == 9           # capped by the axis
    assert band_radius(5.0, torch.float64, None, 7) == 6 and band_radius(5.0, torch.float64, 2, 7) == 2
    # every weight kept by "auto" is a normal number of the dtype
    for dtype in (torch.float32, torch.float64):
        r = band_radius(7.0, dtype, "auto", 1000)
        assert math.exp(-7.0 * r * r) >= torch.finfo(dtype).tiny > math.exp(-7.0 * (r + 1) ** 2)


def test_only_the_kept_queries_and_no_dense_weights():
    """A 7×7/2 stem on 64×64: the products see only the strided outputs; no allocation of
    n_heads × n_out × n_padded entries (it would be 49 · 32² · 70² · 8 bytes = 1.9 GB)."""
    from torch.profiler import ProfilerActivity, profile

    m = torch.nn.Conv2d(3, 8, 7, stride=2, padding=3, dtype=torch.float64)
    attn = SeparableConvAttention.from_conv(m, alpha=20.0)
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], record_shapes=True,
                                  profile_memory=True) as prof:
        attn(x)
    events = prof.key_averages(group_by_input_shape=True)
    products = [e for e in events if e.key in ("aten::bmm", "aten::mm", "aten::matmul")]
    assert products and all(32 * 32 in sum(e.input_shapes, []) for e in products)
    largest = max(e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0)
    assert largest <= 8 * 49 * 3 * 32 * 32 * 2            # the stacked heads of one sample, twice


@settings(max_examples=12)
@given(conv_modules(), st.sampled_from([math.inf, 25.0, 6.0, 1.0]), st.sampled_from(["float64", "float32"]))
def test_gradients_within_their_bound(case, alpha, dtype):
    m, x = case
    dt = getattr(torch, dtype)
    m, x = m.to(dt), x.to(dt)
    assume(accepts(m, x))
    attn = SeparableConvAttention.from_conv(m, alpha=alpha)
    x = x.clone().requires_grad_(True)
    y = m(x)
    g = torch.randn_like(y)
    params = [m.weight] + ([m.bias] if m.bias is not None else [])
    want = torch.autograd.grad(y, [x] + params, g)
    got = torch.autograd.grad(attn(x), [x, attn.weight] + ([attn.bias] if attn.bias is not None else []), g)
    b = gradient_bounds(attn, x, g)
    assert bool(((got[0] - want[0]).abs().double() <= b["input"]).all())
    assert bool(((got[1] - want[1]).abs().double() <= b["weight"]).all())
    if m.bias is not None:
        assert float((got[2] - want[2]).abs().max()) <= b["bias"]


def test_gradients_are_the_attentions_not_the_convolutions():
    """At a small alpha the two gradients differ, by less than the bound and more than rounding."""
    torch.manual_seed(0)
    m = torch.nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
    attn = SeparableConvAttention.from_conv(m, alpha=3.0)
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    gx_conv, = torch.autograd.grad(m(x), x, g)
    gx_attn, = torch.autograd.grad(attn(x), x, g)
    diff = (gx_attn - gx_conv).abs()
    assert 1e-3 < float(diff.max()) and bool((diff <= gradient_bounds(attn, x, g)["input"]).all())


# --------------------------------------------------------------------------- drop-in behaviour


def test_to_dtype_and_device_unbatched_and_extra_repr():
    torch.manual_seed(1)
    m = torch.nn.Conv1d(4, 6, 5, stride=2, padding=2, groups=2, padding_mode="circular")
    attn = SeparableConvAttention.from_conv(m, alpha=30.0)
    assert repr(attn) == ("SeparableConvAttention(4, 6, kernel_size=(5,), stride=(2,), n_heads=5, "
                          "alpha=30.0, band='auto', padding=(2,), groups=2, padding_mode='circular')")
    x = torch.randn(4, 13)                                  # unbatched (C, L), as nn.Conv1d accepts
    with torch.no_grad():
        assert attn(x).shape == m(x).shape == (6, 7)
        a64, m64 = attn.to(torch.float64), m.to(torch.float64)
        assert a64.weight.dtype == torch.float64 and a64.to("cpu") is a64
        want, rounding = exact_conv(m64, x.double()[None])
        got = a64(x.double())[None]
    bound = separable_error_bound(a64, x.double()[None])["bound"] + rounding
    assert bool(((got - want).abs() <= bound).all())


@pytest.mark.parametrize("bad", ["dtype", "channels", "rank", "size"])
def test_refuses_what_the_convolution_refuses_with_runtime_error(bad):
    m = torch.nn.Conv2d(3, 4, 3)
    attn = SeparableConvAttention.from_conv(m, alpha=10.0)
    x = {"dtype": torch.randn(1, 3, 8, 8, dtype=torch.float64), "channels": torch.randn(1, 2, 8, 8),
         "rank": torch.randn(1, 1, 3, 8, 8), "size": torch.randn(1, 3, 2, 8)}[bad]
    with pytest.raises(RuntimeError):
        m(x)
    with pytest.raises(RuntimeError) as info:
        attn(x)
    assert isinstance(info.value, InputMismatchError)
    if bad == "dtype":
        assert "input type (torch.float64) and weight type (torch.float32) should be the same" in str(info.value)


def test_state_dict_is_the_convolutions():
    """The keys and layouts are the convolution's: a convolution's checkpoint loads unchanged."""
    torch.manual_seed(2)
    m, other = torch.nn.Conv2d(3, 4, (3, 2), padding=1), torch.nn.Conv2d(3, 4, (3, 2), padding=1)
    attn = SeparableConvAttention.from_conv(m, alpha=math.inf)
    assert list(attn.state_dict()) == list(m.state_dict()) == ["weight", "bias"]
    attn.load_state_dict(other.state_dict())
    x = torch.randn(2, 3, 7, 6)
    with torch.no_grad():
        want, rounding = exact_conv(other, x)
        assert bool(((attn(x) - want).abs() <= rounding + separable_error_bound(attn, x)["bound"]).all())
    # head h (raster order) carries the kernel slice at its index: W_val W_out = W_Δ
    layer = from_torch(other, alpha=math.inf)
    w = torch_to_kernel(attn.weight.detach().numpy())
    np.testing.assert_array_equal(w, layer.kernel)


def test_fx_trace_records_one_call_and_compile_traces_without_breaks():
    torch.manual_seed(4)
    net = torch.nn.Sequential(SeparableConvAttention.from_conv(torch.nn.Conv2d(3, 4, 3, stride=2, padding=1),
                                                               alpha=20.0), torch.nn.ReLU())
    x = torch.randn(2, 3, 9, 9)
    gm = torch.fx.symbolic_trace(net)
    calls = [n.target.__name__ for n in gm.graph.nodes if n.op == "call_function"]
    assert calls == ["separable_conv_attention"]
    torch._dynamo.reset()
    compiled = torch.compile(net, backend="eager", fullgraph=True)     # fullgraph: no graph break
    xg = x.clone().requires_grad_(True)
    with torch.no_grad():
        want = net(x)
    bound = separable_error_bound(net[0], x)["bound"]         # each within it of the convolution
    assert torch.equal(gm(x), want) and bool(((compiled(xg) - want).abs() <= 2 * bound).all())
    compiled(xg).sum().backward()
    assert xg.grad is not None and xg.grad.shape == x.shape


@pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")
def test_jit_trace_works_and_script_does_not():
    """docs/torch.md: torch.jit.trace records one input shape; torch.jit.script cannot compile the module."""
    attn = SeparableConvAttention.from_conv(torch.nn.Conv2d(2, 2, 3, padding=1), alpha=math.inf)
    x = torch.randn(1, 2, 6, 6)
    with pytest.warns(torch.jit.TracerWarning):
        traced = torch.jit.trace(attn, x)
    assert torch.equal(traced(x), attn(x))
    with pytest.raises(RuntimeError):
        torch.jit.script(attn)


def test_constructor_errors():
    w = torch.randn(4, 2, 3, 3)
    with pytest.raises(ParameterValueError, match=r"`band` must be 'auto', an int >= 0 or None, got -1"):
        SeparableConvAttention(w, alpha=1.0, band=-1)
    with pytest.raises(ParameterValueError, match=r"`bias` must be None or a tensor of shape \(4,\)"):
        SeparableConvAttention(w, torch.zeros(3), alpha=1.0)
    with pytest.raises(TypeError, match=r"floating torch.Tensor of shape"):
        SeparableConvAttention(np.ones((4, 2, 3, 3)), alpha=1.0)
    with pytest.raises(ValueError, match="alpha"):
        SeparableConvAttention(w, alpha=-1.0)


def test_to_torch_separable_route_and_its_checks():
    rng = np.random.default_rng(0)
    layer = conv_to_mhsa(rng.standard_normal((3, 3, 2, 4)), rng.standard_normal(4), alpha=12.0,
                         padding=1, stride=2)
    module = to_torch(layer, route="separable")
    assert isinstance(module, SeparableConvAttention) and module.weight.dtype == torch.float64
    x = rng.standard_normal((2, 9, 8, 2))
    with torch.no_grad():
        got = np.moveaxis(module(torch.from_numpy(np.moveaxis(x, -1, 1).copy())).numpy(), 1, -1)
    assert np.abs(got - layer(x)).max() <= 2 * error_bound(layer, x)["bound"]
    layer.mhsa.v[0, 1] += 1.0                                   # an edited score
    with pytest.raises(NotImplementedError, match="Lemma 2"):
        to_torch(layer, route="separable")


def test_conv_magnitude_is_the_sum_of_absolute_terms():
    m = torch.nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect", dtype=torch.float64).requires_grad_(False)
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    mag = conv_magnitude(x, m.weight, m.bias, stride=m.stride, padding=m.padding,
                         dilation=m.dilation, groups=m.groups, padding_mode=m.padding_mode)
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(x.abs(), (1, 1, 1, 1), mode="reflect"),
                                     m.weight.abs(), m.bias.abs())
    assert bool((mag >= ref).all()) and float((mag - ref).abs().max()) < 1e-12


@pytest.mark.filterwarnings("ignore::DeprecationWarning")      # inductor's own imports
def test_inductor_gradients_are_the_eager_ones():
    """torch.compile's default back-end: output and gradients within the bounds of eager mode's.

    Compiled and eager, each is within the route's (gradients: gradient_bounds) bound of the
    convolution's, so they are within twice that of each other. (Overlapping Tensor.unfold
    windows, stride 2 and no padding, made inductor's backward give wrong input gradients, off
    by O(1), and corrupt memory in PyTorch 2.13 on the CPU; the module stacks strided slices
    when it is being compiled.)"""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, stride=2, padding=0)
    attn = SeparableConvAttention.from_conv(conv, alpha=20.0)
    x = torch.randn(2, 3, 17, 17)
    torch._dynamo.reset()
    compiled = torch.compile(attn)
    xc, xe = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    yc = compiled(xc)
    g = torch.ones_like(yc)
    yc.backward(g)
    gw_compiled, attn.weight.grad = attn.weight.grad.clone(), None
    ye = attn(xe)
    ye.backward(g)
    with torch.no_grad():
        want, rounding = exact_conv(conv, x)
    out_bound = separable_error_bound(attn, x)["bound"] + rounding
    grads = gradient_bounds(attn, x, g)
    assert bool(((yc - ye).abs() <= 2 * out_bound).all())
    assert bool(((xc.grad - xe.grad).abs().double() <= 2 * grads["input"]).all())
    assert bool(((gw_compiled - attn.weight.grad).abs().double() <= 2 * grads["weight"]).all())
