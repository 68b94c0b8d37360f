"""PyTorch as the oracle and as the target: conv vs F.conv{1,2,3}d, from_torch / to_torch.

Tests that need torch skip when it is not installed; CI installs it.
"""

import math
import sys

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from attn_expressivity import (
    AttnExpressivityError,
    OptionalDependencyError,
    ParameterTypeError,
    ParameterValueError,
    ShapeError,
    UnsupportedConfigurationError,
    conv,
    conv_to_mhsa,
)
from attn_expressivity.bounds.error import error_bound
from attn_expressivity.interop.torch import kernel_to_torch, torch_to_kernel

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - CI has torch
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="needs the torch extra: pip install torch==2.13.0")

# PyTorch notes that even kernels with padding="same" copy the input; expected here.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")

MODES = ["zeros", "reflect", "replicate", "circular"]


def test_missing_torch_raises_with_pip_command(monkeypatch):
    import attn_expressivity

    monkeypatch.setitem(sys.modules, "torch", None)        # makes `import torch` fail
    for call in (lambda: attn_expressivity.from_torch(object()),
                 lambda: attn_expressivity.to_torch(conv_to_mhsa(np.ones((1, 1, 1)), alpha=1.0))):
        with pytest.raises(OptionalDependencyError, match=r"pip install torch==2\.13\.0") as info:
            call()
        assert isinstance(info.value, ImportError) and isinstance(info.value, AttnExpressivityError)


def test_layout_conversion_round_trip():
    w = np.random.default_rng(0).standard_normal((5, 2, 3, 4))      # (d_out, d_in/g, kh, kw)
    k = torch_to_kernel(w)
    assert k.shape == (3, 4, 2, 5)
    assert k[1, 2, 0, 4] == w[4, 0, 1, 2]
    np.testing.assert_array_equal(kernel_to_torch(k), w)
    with pytest.raises(ShapeError, match=r"at least one spatial axis, got shape \(5, 2\)"):
        torch_to_kernel(np.ones((5, 2)))
    with pytest.raises(ParameterTypeError, match=r"floating-point.*int64"):
        kernel_to_torch(np.ones((1, 1, 1), dtype=np.int64))


@st.composite
def torch_cases(draw):
    nd = draw(st.integers(1, 3))
    ks = tuple(draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
    dil = tuple(draw(st.lists(st.integers(1, 2), min_size=nd, max_size=nd)))
    spatial = tuple(draw(st.lists(st.integers(2, 7 if nd < 3 else 4), min_size=nd, max_size=nd)))
    groups = draw(st.sampled_from([1, 2, 3]))
    c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    mode = draw(st.sampled_from(MODES))
    padding = draw(st.one_of(
        st.sampled_from(["same", "valid"]), st.integers(0, 2),
        st.lists(st.integers(0, 2), min_size=nd, max_size=nd).map(tuple)))
    stride = (1,) * nd if padding == "same" else tuple(
        draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    gen = torch.Generator().manual_seed(seed)
    cls = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)[nd - 1]
    m = cls(c_in * groups, c_out * groups, ks, stride=stride, padding=padding, dilation=dil,
            groups=groups, bias=bias, padding_mode=mode, dtype=torch.float64)
    with torch.no_grad():
        m.weight.copy_(torch.randn(m.weight.shape, generator=gen, dtype=torch.float64))
        if bias:
            m.bias.copy_(torch.randn(m.bias.shape, generator=gen, dtype=torch.float64))
    x = torch.randn((2, c_in * groups) + spatial, generator=gen, dtype=torch.float64)
    return m, x


def to_numpy(x):
    """(N, C, *spatial) tensor → (N, *spatial, C) array."""
    return np.moveaxis(x.detach().numpy(), 1, -1)


def run_torch(m, x):
    """m(x), or None when PyTorch refuses the input."""
    try:
        with torch.no_grad():
            return m(x)
    except (RuntimeError, ValueError, NotImplementedError):
        return None


def two_sum_orders(x, w, b=None, **opts):
    """Bound on |conv − torch conv| from the theory: both compute each output as an inner
    product of length m = prod(K)·d_in/groups + 1 (bias included), so each is within
    γ_m (|x| * |W| + |b|) of the exact value, in any summation order (Higham, §3.1)."""
    from attn_expressivity.bounds import gamma

    m = math.prod(w.shape[:-1]) + 1                  # prod(K) · d_in/groups, plus the bias
    mag = conv(np.abs(x), np.abs(w), None if b is None else np.abs(b), **opts)
    return 2 * gamma(m, 2.0**-53) * float(mag.max())


def options(m):
    return dict(stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups,
                padding_mode=m.padding_mode)


@needs_torch
@given(st.data())
def test_conv_equals_torch_or_both_reject(data):
    m, x = data.draw(torch_cases())
    want = run_torch(m, x)
    w = torch_to_kernel(m.weight.detach().numpy())
    b = None if m.bias is None else m.bias.detach().numpy()
    if want is None:
        with pytest.raises(ShapeError):
            conv(to_numpy(x), w, b, **options(m))
        return
    got = conv(to_numpy(x), w, b, **options(m))
    want = to_numpy(want)
    assert got.shape == want.shape
    assert float(np.abs(got - want).max()) <= two_sum_orders(to_numpy(x), w, b, **options(m))


@needs_torch
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize(
    "kw", [dict(padding="same", dilation=2, groups=2), dict(padding=1, stride=2, groups=1),
           dict(padding="valid", stride=3, dilation=(1, 2, 1), groups=4)])
def test_conv_equals_functional_conv(nd, kw):
    """Against torch.nn.functional.conv{1,2,3}d directly (zero padding), float64."""
    rng = np.random.default_rng(nd)
    kw = {k: (v[:nd] if isinstance(v, tuple) else v) for k, v in kw.items()}
    ks, g = (4, 3, 2)[:nd], kw["groups"]
    w = rng.standard_normal(ks + (4 // g, 4))
    x, b = rng.standard_normal((2,) + (7, 6, 5)[:nd] + (4,)), rng.standard_normal(4)
    fn = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
    want = fn(torch.as_tensor(np.moveaxis(x, -1, 1).copy()), torch.as_tensor(kernel_to_torch(w).copy()),
              torch.as_tensor(b), **kw)
    got = conv(x, w, b, **kw)
    assert got.shape == to_numpy(want).shape
    assert np.abs(got - to_numpy(want)).max() <= two_sum_orders(x, w, b, **kw)


@needs_torch
@given(st.data(), st.sampled_from([math.inf, 0.5, 3.0, 12.0]), st.sampled_from(["sdpa", "multihead"]))
def test_round_trip_within_bound(data, alpha, route):
    """to_torch(from_torch(m))(x) equals m(x) within verify's bound, through both routes."""
    m, x = data.draw(torch_cases())
    want = run_torch(m, x)
    assume(want is not None)
    layer = conv_to_mhsa(torch_to_kernel(m.weight.detach().numpy()),
                         None if m.bias is None else m.bias.detach().numpy(), alpha=alpha, **options(m))
    from attn_expressivity import from_torch, to_torch

    converted = from_torch(m, alpha=alpha)
    np.testing.assert_array_equal(converted.mhsa.w_val, layer.mhsa.w_val)
    module = to_torch(converted, route=route)
    with torch.no_grad():
        got = module(x)
    assert got.shape == want.shape and got.dtype == torch.float64
    bound = error_bound(converted, to_numpy(x))["bound"]
    assert float((got - want).abs().max()) <= bound
    # and it is the same attention as the numpy layer, batch element by element
    assert float(np.abs(to_numpy(got) - converted(to_numpy(x))).max()) <= 2 * bound


@needs_torch
def test_hard_attention_masks_and_mha_convention():
    """β = ∞: a 0/−inf float mask for SDPA, a boolean True-means-masked mask for MultiheadAttention."""
    from attn_expressivity import to_torch

    layer = conv_to_mhsa(np.random.default_rng(1).standard_normal((3, 1, 2)), alpha=math.inf)
    sdpa, mha = to_torch(layer), to_torch(layer, route="multihead")
    scores = sdpa.positional_scores((7,), (5,))                  # padded 7 keys, 5 queries (valid)
    assert scores.shape == (3, 5, 7)
    mask = sdpa.float_mask(scores)
    for h, delta in enumerate((-1, 0, 1)):
        for q in range(5):
            target = q + 1 + delta                               # query q + ⌊(K−1)/2⌋ in padded coords
            row = mask[h, q]
            assert row[target] == 0 and bool(torch.isinf(row).sum() == 6)
    x = torch.randn(3, 1, 5, dtype=torch.float64)
    with torch.no_grad():
        a, b = sdpa(x), mha(x)
    want = conv(to_numpy(x), layer.kernel)
    bound = error_bound(layer, to_numpy(x))["bound"]
    assert np.abs(to_numpy(a) - want).max() <= bound and np.abs(to_numpy(b) - want).max() <= bound
    assert isinstance(mha.attention, torch.nn.MultiheadAttention)


@needs_torch
def test_float32_unbatched_and_every_rank():
    from attn_expressivity import from_torch, to_torch

    torch.manual_seed(0)
    for cls, spatial in ((torch.nn.Conv1d, (9,)), (torch.nn.Conv2d, (6, 5)), (torch.nn.Conv3d, (4, 5, 3))):
        m = cls(2, 4, 2, padding="same", groups=2, padding_mode="replicate")   # float32
        layer = from_torch(m, alpha=20.0)
        assert layer.kernel.dtype == np.float32
        module = to_torch(layer)
        x = torch.randn((2,) + spatial)
        with torch.no_grad():
            got, want = module(x), m(x)
        assert got.dtype == torch.float32 and got.shape == want.shape == (4,) + spatial
        assert float((got - want).abs().max()) <= error_bound(layer, np.moveaxis(x.numpy(), 0, -1))["bound"]


@needs_torch
def test_cross_check_helper():
    from attn_expressivity.convolution.instances import random_instance
    from attn_expressivity.interop.torch import cross_check

    w, x, b = random_instance(kernel_size=(2, 3, 2), in_channels=2, out_channels=4, image_size=5,
                              groups=2, batch=(2,), seed=3)
    layer = conv_to_mhsa(w, b, alpha=8.0, stride=(2, 1, 1), padding=1, groups=2, padding_mode="circular")
    errs = cross_check(layer, x)
    bound = error_bound(layer, x)["bound"]
    assert set(errs) == {"max_abs_error_sdpa", "max_abs_error_multihead", "max_abs_error_conv"}
    assert errs["max_abs_error_sdpa"] <= bound and errs["max_abs_error_multihead"] <= bound
    assert errs["max_abs_error_conv"] <= two_sum_orders(x, w, b, stride=(2, 1, 1), padding=1,
                                                        groups=2, padding_mode="circular")


@needs_torch
def test_same_with_stride_rejected_like_torch():
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        torch.nn.Conv2d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(ParameterValueError, match="padding='same' is not supported for strided convolutions"):
        conv(np.ones((5, 5, 1)), np.ones((3, 3, 1, 1)), stride=2, padding="same")


@needs_torch
def test_interop_errors():
    from attn_expressivity import from_torch, to_torch

    layer = conv_to_mhsa(np.ones((3, 3, 2, 2)), alpha=1.0)
    module = to_torch(layer)
    cases = [
        (lambda: from_torch(torch.nn.Linear(2, 2)), ParameterTypeError, r"Conv1d, Conv2d or Conv3d, got Linear"),
        (lambda: from_torch(torch.nn.ConvTranspose2d(2, 2, 3)), ParameterTypeError, r"got ConvTranspose2d"),
        (lambda: from_torch(torch.nn.LazyConv2d(2, 3)), ParameterValueError, r"uninitialised \(lazy\)"),
        (lambda: from_torch(torch.nn.Conv2d(2, 2, 3, dtype=torch.float16)), ParameterTypeError,
         r"float32 or float64, got torch.float16"),
        (lambda: to_torch(layer.mhsa), ParameterTypeError, r"ConvAttention, got MultiHeadSelfAttention"),
        (lambda: to_torch(layer, route="flash"), ParameterValueError, r"`route` must be one of.*'flash'"),
        (lambda: to_torch(layer, dtype=torch.int32), ParameterTypeError, r"floating torch.dtype"),
        (lambda: module(torch.ones(1, 2, 5, 5)), ParameterTypeError, r"dtype torch.float64, got torch.float32"),
        (lambda: module(torch.ones(1, 3, 5, 5, dtype=torch.float64)), ShapeError, r"3 channels.*d_in = 2"),
        (lambda: module(torch.ones(5, 5, dtype=torch.float64)), ShapeError, r"2 spatial axes, got shape \(5, 5\)"),
        (lambda: module(np.ones((1, 2, 5, 5))), ParameterTypeError, r"torch.Tensor, got ndarray"),
        (lambda: to_torch(conv_to_mhsa(np.ones((3, 1, 1)), alpha=1.0, padding="valid"))(
            torch.ones(1, 1, 2, dtype=torch.float64)), ShapeError, r"kernel larger"),
    ]
    for call, exc, match in cases:
        with pytest.raises(exc, match=match):
            call()


@needs_torch
def test_content_terms_unsupported():
    from attn_expressivity import to_torch

    layer = conv_to_mhsa(np.ones((3, 1, 1)), alpha=1.0)
    layer.mhsa.w_qry = np.ones_like(layer.mhsa.w_qry)
    layer.mhsa.w_key = np.ones_like(layer.mhsa.w_key)
    with pytest.raises(UnsupportedConfigurationError, match="purely positional"):
        to_torch(layer)


@needs_torch
@pytest.mark.parametrize("argv", [
    [],
    ["--ndim", "1", "--kernel-size", "4", "--padding-mode", "reflect", "--dilation", "2"],
    ["--ndim", "3", "--kernel-size", "2x3x2", "--image-size", "5", "--stride", "2x1x2",
     "--padding", "1x0x2", "--padding-mode", "circular", "--groups", "2", "--alpha", "6"],
])
def test_cli_verify_torch(argv, capsys):
    import json

    from attn_expressivity.cli import main

    small = ["--in-channels", "2", "--out-channels", "4", "--image-size", "7"]
    assert main(["verify", "--torch", *small, *argv]) == 0
    assert "PASS: PyTorch errors <= bound" in capsys.readouterr().out
    assert main(["verify", "--torch", "--json", *small, *argv]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["torch"]["holds"] is True
    assert max(report["torch"][k] for k in ("max_abs_error_sdpa", "max_abs_error_multihead")) <= report["torch"]["bound"]


@needs_torch
def test_cli_verify_torch_fails_beyond_bound(monkeypatch, capsys):
    import attn_expressivity.interop.torch as interop
    from attn_expressivity.cli import main

    monkeypatch.setattr(interop, "cross_check", lambda layer, x: {
        "max_abs_error_sdpa": 1.0, "max_abs_error_multihead": 0.0, "max_abs_error_conv": 0.0})
    assert main(["verify", "--torch", "--image-size", "6"]) == 1
    assert "FAIL: PyTorch errors > bound" in capsys.readouterr().out


def test_cli_verify_torch_without_torch_is_usage_error(monkeypatch, capsys):
    from attn_expressivity.cli import main

    monkeypatch.setitem(sys.modules, "torch", None)
    assert main(["verify", "--torch", "--image-size", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install torch==2.13.0" in err
