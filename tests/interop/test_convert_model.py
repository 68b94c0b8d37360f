"""convert_model: every convolution of a network replaced, what was not and why, no silent wrong conversion."""

import json
import math

import pytest

torch = pytest.importorskip("torch", reason="needs the torch extra: pip install torch==2.13.0")

import nets  # noqa: E402  (tests/interop/conftest.py puts this folder on the path)

from attn_expressivity import (  # noqa: E402
    ParameterTypeError,
    ParameterValueError,
    UnsupportedConfigurationError,
    convert_model,
    from_torch,
)
from attn_expressivity.interop.torch import convertible  # noqa: E402
from attn_expressivity.interop.torch_modules import SDPAConvAttention  # noqa: E402
from attn_expressivity.interop.torch_separable import SeparableConvAttention  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")


class SamePad(torch.nn.Conv2d):
    """'Same' padding computed from the input's size in forward; ``padding=0`` on the module."""

    def forward(self, x):
        pad = [self.kernel_size[1] // 2, self.kernel_size[1] // 2,
               self.kernel_size[0] // 2, self.kernel_size[0] // 2]
        return super().forward(torch.nn.functional.pad(x, pad))


def convs(model):
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]


@pytest.mark.parametrize("name", sorted(nets.NETWORKS))
def test_every_convolution_of_every_test_network(name):
    factory, shape = nets.NETWORKS[name]
    torch.manual_seed(0)
    model = factory()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    converted, report = convert_model(model, alpha=math.inf)
    assert not convs(converted) and report.skipped == []
    assert len(report.converted) == len(convs(model))
    assert report.n_heads == sum(math.prod(m.kernel_size) for m in convs(model))
    # the original is untouched; the copy holds the same parameters under the same names
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert list(converted.state_dict()) == list(model.state_dict())
    x = torch.randn((2,) + shape)
    with torch.no_grad():
        assert converted(x).shape == model(x).shape
    json.dumps(report.to_dict(), allow_nan=False)


def test_the_stem_is_converted_too():
    torch.manual_seed(0)
    converted, report = convert_model(nets.resnet_style(), alpha=40.0)
    stem = converted.conv1
    assert isinstance(stem, SeparableConvAttention) and stem.n_heads == 49
    assert report.converted[0]["name"] == "conv1" and report.converted[0]["stride"] == [2, 2]
    assert "conv1: Conv2d (7, 7) stride (2, 2) -> 49 heads" in report.summary()


def test_the_silent_wrong_conversion_is_refused():
    """A Conv2d subclass that pads 'same' in forward, padding=0 on the module: refused, never read as plain."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(SamePad(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 4, 3, padding=1))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert model(x).shape == (1, 4, 64, 64)                  # the subclass keeps 64×64
    with pytest.raises(UnsupportedConfigurationError, match=r"0 \(SamePad overrides forward"):
        convert_model(model, alpha=math.inf)
    with pytest.raises(UnsupportedConfigurationError, match="SamePad overrides forward"):
        from_torch(model[0])
    converted, report = convert_model(model, alpha=math.inf, strict=False)
    assert [s["name"] for s in report.skipped] == ["0"] and "overrides forward" in report.skipped[0]["reason"]
    assert type(converted[0]) is SamePad and isinstance(converted[2], SeparableConvAttention)
    with torch.no_grad():
        assert converted(x).shape == (1, 4, 64, 64)
        assert float((converted(x) - model(x)).abs().max()) < 1e-5
    assert "SKIPPED 0: SamePad overrides forward" in report.summary()


def test_other_modules_that_are_not_plain_convolutions():
    from torch.nn.utils import parametrizations

    hooked = torch.nn.Conv2d(2, 2, 3)
    hooked.register_forward_hook(lambda m, i, o: o * 2)
    cases = {
        "transposed": torch.nn.ConvTranspose2d(2, 2, 3),
        "hooks": hooked,
        "parametrised": parametrizations.weight_norm(torch.nn.Conv2d(2, 2, 3)),
        "lazy": torch.nn.LazyConv2d(2, 3),
        "conv_forward": type("Std", (torch.nn.Conv1d,), {"_conv_forward": lambda s, x, w, b: x})(2, 2, 3),
    }
    reasons = {k: convertible(m) for k, m in cases.items()}
    assert "transposed convolution" in reasons["transposed"]
    assert "forward hooks" in reasons["hooks"]
    assert "parametrised weight" in reasons["parametrised"]
    assert "uninitialised (lazy)" in reasons["lazy"]
    assert "overrides _conv_forward" in reasons["conv_forward"]
    model = torch.nn.Sequential(*cases.values())
    _, report = convert_model(model, alpha=1.0, strict=False)
    assert report.converted == [] and len(report.skipped) == 5
    with pytest.raises(UnsupportedConfigurationError, match="5 convolution"):
        convert_model(model, alpha=1.0)
    assert convertible(torch.nn.Linear(2, 2)) == "Linear is not a torch.nn.Conv1d, Conv2d or Conv3d"


def test_shared_modules_root_modules_and_modes():
    conv = torch.nn.Conv2d(2, 2, 3, padding=1, dtype=torch.float64)
    model = torch.nn.Sequential(conv, torch.nn.ReLU(), conv)            # one module, two places
    converted, report = convert_model(model, alpha=5.0)
    assert converted[0] is converted[2] and len(report.converted) == 1
    assert report.converted[0]["names"] == ["0", "2"]
    assert converted[0].weight.dtype == torch.float64
    single, report = convert_model(torch.nn.Conv1d(1, 1, 3).train(), alpha=5.0)
    assert isinstance(single, SeparableConvAttention) and single.training
    assert report.converted[0]["name"] == "<model>"


def test_dense_routes():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(3, 2, 1)).double()
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    for route in ("sdpa", "multihead"):
        converted, report = convert_model(model, alpha=math.inf, route=route)
        assert report.route == route
        with torch.no_grad():
            assert float((converted(x) - model(x)).abs().max()) < 1e-12
    assert isinstance(convert_model(model, alpha=1.0, route="sdpa")[0][0], SDPAConvAttention)


def test_bad_arguments():
    with pytest.raises(ParameterTypeError, match="torch.nn.Module, got list"):
        convert_model([], alpha=1.0)
    with pytest.raises(ParameterValueError, match=r"`route` must be one of .*'flash'"):
        convert_model(torch.nn.Conv2d(1, 1, 1), alpha=1.0, route="flash")
    with pytest.raises(ParameterValueError, match="alpha"):
        convert_model(torch.nn.Conv2d(1, 1, 1), alpha=-2.0)


# ----------------------------------------------------------------- every way to customise a convolution


class _CallOverride(torch.nn.Conv2d):
    def __call__(self, *args, **kwargs):
        return super().__call__(*args, **kwargs) * 2


class _CallImplOverride(torch.nn.Conv2d):
    def _call_impl(self, *args, **kwargs):
        return super()._call_impl(*args, **kwargs) * 2

    __call__ = _call_impl


class _GetattrOverride(torch.nn.Conv2d):
    def __getattr__(self, name):
        value = super().__getattr__(name)
        return value * 2 if name == "weight" else value


class _GetattributeOverride(torch.nn.Conv2d):
    def __getattribute__(self, name):
        value = super().__getattribute__(name)
        return 2 if name == "dilation" else value


class _WeightProperty(torch.nn.Conv2d):
    """The weight the forward pass reads is a property over the stored one."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stored = torch.nn.Parameter(self.weight.detach().clone())
        del self.weight

    @property
    def weight(self):
        return self.stored * 2


class _PlainSubclass(torch.nn.Conv2d):
    """Overrides only what does not take part in the computation: converted like a Conv2d."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.note = "mine"

    def reset_parameters(self):
        torch.nn.init.zeros_(self.weight)
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def extra_repr(self):
        return "plain " + super().extra_repr()

    def helper(self):
        return self.note


def _customised():
    """name -> (a factory of a customised Conv2d(2, 3, 3, padding=1), words its reason contains)."""
    import types

    def conv():
        return torch.nn.Conv2d(2, 3, 3, padding=1)

    def instance_forward():
        c = conv()
        c.forward = types.MethodType(lambda self, x: torch.nn.functional.conv2d(
            x, self.weight, self.bias, padding=2, dilation=2), c)
        return c

    def instance_conv_forward():
        c = conv()
        c._conv_forward = lambda x, w, b: torch.nn.functional.conv2d(x, 2 * w, b, padding=1)
        return c

    def instance_call_impl():
        c = conv()
        c._call_impl = types.MethodType(lambda self, x: torch.nn.Conv2d.forward(self, x) * 2, c)
        return c

    def compiled_call():
        c = conv()
        c._compiled_call_impl = lambda x: torch.nn.Conv2d.forward(c, x) * 2
        return c

    def backward_hook():
        c = conv()
        c.register_full_backward_hook(lambda m, gi, go: (gi[0] * 2,))
        return c

    def kwargs_pre_hook():
        c = conv()
        c.register_forward_pre_hook(lambda m, a, k: ((a[0] * 2,), k), with_kwargs=True)
        return c

    def reflect_padding_mutated():
        c = torch.nn.Conv2d(2, 3, 3, padding=1, padding_mode="reflect")
        c._reversed_padding_repeated_twice = [2, 2, 2, 2]
        return c

    def channels_mutated():
        c = conv()
        c.in_channels = 4
        return c

    return {
        "instance forward": (instance_forward, "forward"),
        "instance _conv_forward": (instance_conv_forward, "_conv_forward"),
        "instance _call_impl": (instance_call_impl, "_call_impl"),
        "instance _compiled_call_impl": (compiled_call, "_compiled_call_impl"),
        "subclass __call__": (lambda: _CallOverride(2, 3, 3, padding=1), "overrides __call__"),
        "subclass _call_impl": (lambda: _CallImplOverride(2, 3, 3, padding=1), "overrides"),
        "subclass __getattr__": (lambda: _GetattrOverride(2, 3, 3, padding=1), "overrides __getattr__"),
        "subclass __getattribute__": (lambda: _GetattributeOverride(2, 3, 3, padding=1),
                                      "overrides __getattribute__"),
        "weight property": (lambda: _WeightProperty(2, 3, 3, padding=1), "weight"),
        "backward hook": (backward_hook, "backward hooks"),
        "pre-hook with kwargs": (kwargs_pre_hook, "forward hooks"),
        "padding mutated": (reflect_padding_mutated, "_reversed_padding_repeated_twice"),
        "channels mutated": (channels_mutated, "in_channels"),
    }


@pytest.mark.parametrize("name", sorted(_customised()))
def test_a_customised_convolution_is_never_converted_as_plain(name):
    """Instance overrides, subclass overrides of the call path, hooks, mutated state: refused."""
    from attn_expressivity import verify_model

    factory, words = _customised()[name]
    conv = factory().double().eval()
    reason = convertible(conv)
    assert reason is not None and words in reason
    model = torch.nn.Sequential(conv)
    with pytest.raises(UnsupportedConfigurationError, match="cannot be converted"):
        convert_model(model, alpha=math.inf)
    with pytest.raises(UnsupportedConfigurationError):
        from_torch(conv)
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    report = verify_model(model, x, alpha=20.0, progress=False)
    assert report.status != "PASS" and report.layers == []


def test_global_hooks_refuse_every_conversion():
    from torch.nn.modules.module import register_module_forward_hook

    handle = register_module_forward_hook(lambda m, i, o: None)
    try:
        assert "global forward hooks" in convertible(torch.nn.Conv2d(2, 3, 3))
    finally:
        handle.remove()
    assert convertible(torch.nn.Conv2d(2, 3, 3)) is None


def test_a_subclass_that_changes_nothing_it_computes_is_converted():
    from attn_expressivity import verify_model

    torch.manual_seed(0)
    conv = _PlainSubclass(2, 3, 3, padding=1).double()
    torch.nn.init.normal_(conv.weight)
    assert convertible(conv) is None
    plain = type("Empty", (torch.nn.Conv2d,), {})(3, 3, 3, padding=1).double()
    assert convertible(plain) is None
    model = torch.nn.Sequential(conv, torch.nn.ReLU(), plain)
    converted, report = convert_model(model, alpha=math.inf)
    assert len(report.converted) == 2 and report.skipped == []
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert float((converted(x) - model(x)).abs().max()) < 1e-12
    # verify_model treats them as the convolutions they are, not as their traced insides
    report = verify_model(model, x, alpha=20.0, progress=False)
    assert report.status == "PASS" and len(report.layers) == 2 and report.unknown == []
