"""verify_model: the bound on a converted network's outputs holds, is reasonably tight, and is never a false PASS."""

import copy
import json
import math
import pathlib
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch", reason="needs the torch extra: pip install torch==2.13.0")

import nets  # noqa: E402  (tests/interop/conftest.py puts this folder on the path)

from attn_expressivity import (  # noqa: E402
    OptionalDependencyError,
    ParameterTypeError,
    ParameterValueError,
    verify_model,
)

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")


def network(name, seed=0, dtype=torch.float64):
    factory, shape = nets.NETWORKS[name]
    torch.manual_seed(seed)
    model = nets.randomise_batchnorm(factory(), torch.Generator().manual_seed(seed + 1))
    return model.to(dtype), shape


@settings(max_examples=6, deadline=None)
@given(name=st.sampled_from(sorted(nets.NETWORKS)), seed=st.integers(0, 2**16),
       alpha=st.sampled_from([math.inf, 40.0, 16.0, 7.0, 3.0, 1.0]),
       dtype=st.sampled_from(["float64", "float32"]), scale=st.sampled_from([1e-3, 1.0, 30.0]))
def test_the_bound_is_never_violated(name, seed, alpha, dtype, scale):
    """Random networks, inputs, scales, alphas and dtypes: PASS, at the outputs and at every node."""
    model, shape = network(name, seed % 7, getattr(torch, dtype))
    x = scale * torch.randn((1,) + shape, generator=torch.Generator().manual_seed(seed),
                            dtype=getattr(torch, dtype))
    report = verify_model(model, x, alpha=alpha, progress=False)
    assert report.unknown == [] and report.violations == []
    assert report.status == "PASS" and report.max_abs_error <= report.bound
    assert report.bound == min(report.bound_coarse, report.bound_fine)


@pytest.mark.parametrize("name", sorted(nets.NETWORKS))
def test_the_bound_is_within_100x_of_the_measured_difference(name):
    """float64, alpha = 20 (the leak is what differs, rounding far below it): bound <= 100 x measured.

    (In the rounding regime, alpha >= 37 in float64, worst-case rounding bounds are 10²–10⁴ times
    the measured difference: docs/network_bounds.md.)"""
    model, shape = network(name)
    x = torch.randn((1,) + shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    report = verify_model(model, x, alpha=20.0, progress=False)
    assert report.status == "PASS"
    assert report.max_abs_error > 0 and report.bound <= 100 * report.max_abs_error
    assert len(report.layers) == len(
        [m for m in model.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)])


def test_report_table_and_strict_json():
    model, shape = network("resnet")
    report = verify_model(model, torch.randn((1,) + shape, dtype=torch.float64), alpha=math.inf,
                          progress=False)
    d = report.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert d["alpha"] == "inf" and d["holds"] is True and '"status": "PASS"' in text
    stem = report.layers[0]
    assert stem["name"] == "conv1" and stem["n_heads"] == 49 and stem["radius"] == [0, 0]
    assert stem["leak"] == 0.0 and stem["input_max"][0] == stem["input_max"][1]
    assert stem["measured"] <= stem["coarse_bound"] and stem["fine_share"] is not None
    summary = report.summary()
    assert "conv1" in summary and "a-priori bound" in summary and summary.endswith("PASS")


class LayerNormNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 2, 3, padding=1)
        self.norm = torch.nn.LayerNorm([2, 5, 5])

    def forward(self, x):
        return torch.exp(self.norm(self.conv(x)))


class DataDependent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y if bool(y.sum() > 0) else -y


def test_what_it_cannot_bound_is_named_and_the_bound_is_unknown():
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64)
    report = verify_model(LayerNormNet().double(), x, alpha=10.0, progress=False)
    assert report.status == "UNKNOWN" and report.bound is None and not report.holds
    assert [u["node"] for u in report.unknown] == ["norm"]
    assert "LayerNorm" in report.unknown[0]["reason"]
    assert "UNKNOWN at norm" in report.summary()
    train = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 3), torch.nn.BatchNorm2d(2)).double().train()
    report = verify_model(train, x, alpha=10.0, progress=False)
    assert report.status == "UNKNOWN" and "training mode" in report.unknown[0]["reason"]
    assert train.training and float(train[1].running_mean.abs().max()) == 0.0   # left unchanged
    report = verify_model(DataDependent().double(), x, alpha=10.0, progress=False)
    assert report.status == "UNKNOWN" and report.unknown[0]["op"] == "trace"
    assert report.max_abs_error >= 0 and "symbolic_trace" in report.unknown[0]["reason"]


def test_a_wrong_layer_bound_is_caught_not_passed(monkeypatch):
    """With the route's bound replaced by zero, the measured differences exceed the bounds: FAIL."""
    import attn_expressivity.interop.network_rules as rules

    real = rules.separable_error_bound

    def zero(module, x):
        terms = real(module, x)
        return dict(terms, bound=terms["bound"] * 0)

    monkeypatch.setattr(rules, "separable_error_bound", zero)
    model, shape = network("dilated")
    report = verify_model(model, torch.randn((1,) + shape, dtype=torch.float64), alpha=6.0, progress=False)
    assert report.status == "FAIL" and report.violations
    assert report.violations[0]["measured"] > report.violations[0]["bound"]


def test_progress_needs_tqdm(monkeypatch):
    model = torch.nn.Conv1d(1, 1, 3).double()
    x = torch.randn(1, 1, 6, dtype=torch.float64)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(OptionalDependencyError, match="pip install tqdm"):
        verify_model(model, x, alpha=1.0, progress=True)
    assert verify_model(model, x, alpha=1.0).status == "PASS"          # None: no bar, no error


def test_bad_arguments():
    model = torch.nn.Conv1d(1, 1, 3)
    with pytest.raises(ParameterTypeError, match="torch.nn.Module, got str"):
        verify_model("net", torch.randn(1, 1, 5), alpha=1.0)
    with pytest.raises(ParameterTypeError, match="`x` must be a torch.Tensor"):
        verify_model(model, [1.0], alpha=1.0)
    with pytest.raises(ParameterTypeError, match=r"float32 or float64 \(the bounds need m·u < 1\), got torch.float16"):
        verify_model(model, torch.randn(1, 1, 5).half(), alpha=1.0)
    with pytest.raises(ParameterTypeError, match="is torch.float32 but `x` is torch.float64"):
        verify_model(model, torch.randn(1, 1, 5, dtype=torch.float64), alpha=1.0)
    with pytest.raises(ParameterValueError, match="alpha"):
        verify_model(model, torch.randn(1, 1, 5), alpha=float("nan"))
    with pytest.raises(ParameterValueError, match="max_outputs"):
        verify_model(model, torch.randn(1, 1, 5), alpha=1.0, max_outputs=-1)


def test_many_outputs_fall_back_to_the_coarse_bound():
    model, shape = network("conv1d")
    report = verify_model(model, torch.randn((2,) + shape, dtype=torch.float64), alpha=20.0,
                          max_outputs=3, progress=False)
    assert report.bound_fine is None and report.bound == report.bound_coarse
    assert report.status == "PASS" and "max_outputs = 3" in report.notes[0]


def layernorm_net():
    return LayerNormNet()


def test_cli_exit_codes_and_json(monkeypatch, capsys):
    """0 on PASS, 1 when the bound is unknown (or violated), 2 for bad usage; --json is strict JSON."""
    from attn_expressivity import cli

    monkeypatch.syspath_prepend(str(pathlib.Path(__file__).parent))
    assert cli.main(["verify-model", "nets:conv1d_net", "--input-size", "2x23", "--alpha", "20"]) == 0
    out = capsys.readouterr().out
    assert "a-priori bound" in out and out.rstrip().endswith("PASS")
    assert cli.main(["verify-model", "nets:conv3d_net", "--input-size", "1x5x7x6", "--alpha", "inf",
                     "--dtype", "float32", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["status"] == "PASS" and d["alpha"] == "inf" and d["dtype"] == "float32"
    assert d["max_abs_error"] <= d["bound"] and len(d["layers"]) == 2
    assert cli.main(["verify-model", "test_verify_model:layernorm_net", "--input-size", "2x5x5"]) == 1
    assert capsys.readouterr().out.rstrip().endswith("UNKNOWN")


def test_cli_without_torch_is_one_line(monkeypatch, capsys):
    from attn_expressivity import cli

    monkeypatch.setitem(sys.modules, "torch", None)
    assert cli.main(["verify-model", "nets:resnet_style", "--input-size", "3x32x32"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install torch==2.13.0" in err and "Traceback" not in err


# ----------------------------------------------------------------- values changed in place


class _Scaled(torch.nn.Module):
    """``y = conv(x); y.mul_(1000); return y``: the graph's output node is the convolution's."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        y.mul_(1000.0)
        return y


class _InPlaceResidual(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 4, 3, padding=1)
        self.down = torch.nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        out = self.conv(x)
        out.add_(self.down(x))                  # not reassigned: the graph reads `conv`
        return out


class _NormalisesItsInput(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)

    def forward(self, x):
        x.sub_(0.5).div_(2.0)
        return self.conv(x)


class _ChangesItsScale(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        self.scale.mul_(2.0)
        return self.conv(x) * self.scale


class _ChangesItsWeight(torch.nn.Module):
    """The convolution's weight changes after the convolution ran: the rules would read the new one."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        self.conv.weight.mul_(1e-3)
        return y


def _true_error(model, x, alpha):
    from attn_expressivity import convert_model

    converted, _ = convert_model(model, alpha=alpha)
    with torch.no_grad():
        return float((converted(x.clone()) - model(x.clone())).abs().max())


class _ScaledThroughAView(torch.nn.Module):
    """The change goes through a view: no node of the graph ever held the tensor returned."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        y[:, :1].mul_(1000.0)
        return y


@pytest.mark.parametrize("cls,alpha", [(_Scaled, 6.0), (_InPlaceResidual, 3.0), (_NormalisesItsInput, 30.0)])
def test_a_value_changed_in_place_is_read_from_the_node_that_changed_it(cls, alpha):
    """The graph reads the recorded ``conv`` node, the network the tensor changed after it:
    the bound is that of what the network returns, and the measured error the true one."""
    torch.manual_seed(0)
    model = cls().double().eval()
    x = torch.randn(2, model.conv.in_channels, 8, 8, dtype=torch.float64)
    true = _true_error(copy.deepcopy(model), x.clone(), alpha)
    report = verify_model(model, x, alpha=alpha, progress=False)
    assert report.max_abs_error == pytest.approx(true, rel=1e-12)
    assert report.status == "PASS" and true <= report.bound and report.unknown == []


def test_a_value_changed_through_a_view_is_unknown():
    torch.manual_seed(0)
    model = _ScaledThroughAView().double().eval()
    x = torch.randn(2, 2, 8, 8, dtype=torch.float64)
    report = verify_model(model, x, alpha=6.0, progress=False)
    assert report.status == "UNKNOWN" and report.bound is None
    assert report.unknown[0]["node"] == "conv" and "in place" in report.unknown[0]["reason"]
    assert report.max_abs_error == pytest.approx(_true_error(model, x, 6.0), rel=1e-12)


def test_the_callers_input_and_model_are_left_alone():
    torch.manual_seed(0)
    model = _NormalisesItsInput().double().eval()
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    x0, state = x.clone(), copy.deepcopy(model.state_dict())
    report = verify_model(model, x, alpha=30.0, progress=False)
    assert torch.equal(x, x0) and report.status == "PASS"
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_a_forward_pass_that_changes_the_models_state_is_unknown():
    x = torch.randn(1, 2, 6, 6, dtype=torch.float64)
    model = _ChangesItsScale().double().eval()
    report = verify_model(model, x, alpha=20.0, progress=False)
    assert report.status == "UNKNOWN" and [u["node"] for u in report.unknown] == ["scale"]
    assert float(model.scale.detach()) == 1.0
    model = _ChangesItsWeight().double().eval()
    weight = model.conv.weight.detach().clone()
    report = verify_model(model, x, alpha=20.0, progress=False)
    assert report.status == "UNKNOWN" and [u["node"] for u in report.unknown] == ["conv.weight"]
    assert "changed conv.weight in place" in report.unknown[0]["reason"]
    assert torch.equal(model.conv.weight, weight)


def test_in_place_operations_that_keep_the_dataflow_still_pass():
    """``out += identity`` and ``ReLU(inplace=True)`` (the test ResNet has both) stay PASS."""
    model, shape = network("resnet")
    report = verify_model(model, torch.randn((1,) + shape, dtype=torch.float64), alpha=12.0,
                          progress=False)
    assert report.status == "PASS" and report.unknown == []


# ----------------------------------------------------------------- nothing converted, bad arguments


def test_nothing_converted_is_not_a_pass():
    """A parametrised convolution is kept (and bounded as a convolution): nothing to check."""
    from torch.nn.utils import parametrizations

    conv = parametrizations.weight_norm(torch.nn.Conv2d(2, 3, 3, padding=1).double())
    report = verify_model(torch.nn.Sequential(conv, torch.nn.ReLU()),
                          torch.randn(1, 2, 6, 6, dtype=torch.float64), alpha=10.0, progress=False)
    assert report.status == "UNKNOWN" and not report.holds and report.layers == []
    assert report.bound is not None and report.skipped[0]["name"] == "0"
    assert "0 convolution(s) converted" in report.summary()
    assert "nothing was converted" in report.summary()


def test_progress_must_be_a_bool_or_none():
    with pytest.raises(ParameterTypeError, match="`progress` must be True, False or None, got 'yes'"):
        verify_model(torch.nn.Conv1d(1, 1, 3), torch.randn(1, 1, 5), alpha=1.0, progress="yes")


# ----------------------------------------------------------------- false FAILs and false UNKNOWNs


class _Two(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(3, 3, 3, padding=1)
        self.fn = fn

    def forward(self, x):
        return self.fn(self, x)


def _two(fn, alpha=6.0):
    torch.manual_seed(0)
    model = _Two(fn).double().eval()
    x = torch.randn(1, 2, 8, 8, dtype=torch.float64)
    return verify_model(model, x, alpha=alpha, progress=False)


def test_detach_is_linearised_as_the_identity():
    """conv2(conv(x).detach()): the fine pass must not see a zero Jacobian through detach."""
    report = _two(lambda s, x: s.conv2(s.conv(x).detach()))
    assert report.status == "PASS" and report.max_abs_error <= report.bound_fine


@pytest.mark.parametrize("fn", [lambda s, x: torch.div(s.conv(x), 0.1, rounding_mode="floor"),
                                lambda s, x: s.conv(x).div(0.1, rounding_mode="trunc")])
def test_division_with_a_rounding_mode_is_unknown(fn):
    report = _two(fn)
    assert report.status == "UNKNOWN" and "rounding_mode" in report.unknown[0]["reason"]


@pytest.mark.parametrize("fn", [lambda s, x: -s.conv(x), lambda s, x: torch.neg(s.conv(x)),
                                lambda s, x: s.conv(x).neg()])
def test_negation_has_its_rule(fn):
    report = _two(fn)
    assert report.status == "PASS" and report.unknown == []


# ----------------------------------------------------------------- crashes


def test_no_local_terms_and_no_convolution():
    """An all-zero input to a bias-free convolution; a network with no convolution at all."""
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1, bias=False)).double()
    report = verify_model(model, torch.zeros(1, 2, 5, 5, dtype=torch.float64), alpha=10.0,
                          progress=False)
    assert report.status == "PASS" and report.max_abs_error == 0.0 and report.bound >= 0.0
    report = verify_model(torch.nn.Identity(), torch.randn(1, 3, 3, dtype=torch.float64), alpha=10.0,
                          progress=False)
    assert report.status == "UNKNOWN" and "no convolution" in report.summary()


def test_ceil_mode_max_pooling_and_unbatched_inputs():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.MaxPool2d(2, ceil_mode=True),
                                torch.nn.AdaptiveAvgPool2d(1)).double()
    report = verify_model(model, torch.randn(1, 2, 5, 5, dtype=torch.float64), alpha=8.0, progress=False)
    assert report.status == "PASS"
    report = verify_model(model, torch.randn(2, 6, 6, dtype=torch.float64), alpha=8.0, progress=False)
    assert report.status == "PASS" and report.max_abs_error > 0


def test_the_model_failing_on_its_input_is_an_input_error():
    from attn_expressivity import InputMismatchError

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3)).double()
    with pytest.raises(InputMismatchError, match="the model fails on `x`"):
        verify_model(model, torch.randn(1, 2, 8, 8, dtype=torch.float64), alpha=1.0, progress=False)
    with pytest.raises(ParameterValueError, match="meta"):
        verify_model(model.to("meta"), torch.randn(1, 3, 8, 8, dtype=torch.float64, device="meta"),
                     alpha=1.0, progress=False)


@pytest.mark.parametrize("argv,words", [
    (["nets:resnet_style", "--input-size", "2x32x32"], "the model fails on `x`"),
    (["nets:conv1d_net", "--input-size", "2x23", "--device", "cuda"], "--device"),
    (["nets:conv1d_net", "--input-size", "2x23", "--device", "meta"], "meta"),
    (["nets:conv1d_net", "--input-size", "2x23", "--device", "tpu"], "--device")])
def test_cli_bad_model_input_or_device_is_one_line_and_exit_2(monkeypatch, capsys, argv, words):
    from attn_expressivity import cli

    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("a CUDA device is available here")
    monkeypatch.syspath_prepend(str(pathlib.Path(__file__).parent))
    assert cli.main(["verify-model"] + argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "Traceback" not in err


def test_cli_identity_is_not_a_pass(capsys):
    from attn_expressivity import cli

    assert cli.main(["verify-model", "torch.nn:Identity", "--input-size", "3x3"]) == 1
    captured = capsys.readouterr()
    assert captured.out.rstrip().endswith("UNKNOWN") and captured.err == ""


# ----------------------------------------------------------------- underflow


def test_subnormal_values_are_bounded():
    """float64 subnormal data through a bias-free convolution: the underflow terms are not zero."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv1d(2, 2, 1, bias=False)).double()
    x = torch.randn(1, 2, 8, dtype=torch.float64) * 1e-310
    report = verify_model(model, x, alpha=10.0, progress=False)
    assert report.max_abs_error > 0 and report.violations == []
    assert report.status == "PASS" and report.layers[0]["underflow"] > 0


def test_a_convolutions_rounding_bound_counts_underflow():
    """float32 subnormal data: the products underflow, an error no relative term bounds."""
    from attn_expressivity.interop.layer_bounds import conv_rounding_bound

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False)
    x = torch.randn(2, 3, 6, 6) * 1e-40
    with torch.no_grad():
        got = conv(x).double()
        # float32 products are exact in float64, and its sums' rounding is far below float32's η
        exact = torch.nn.functional.conv2d(x.double(), conv.weight.double(), padding=1)
    err = (got - exact).abs()
    assert float(err.max()) > 0
    assert bool((err <= conv_rounding_bound(conv, x)).all())

