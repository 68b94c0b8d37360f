"""Every convolution hyper-parameter, N-D, without PyTorch.

The oracle here is a per-pixel loop that maps every padded coordinate back
into the image by the padding mode's formula (it never calls ``np.pad`` and
shares no arithmetic with :func:`attn_expressivity.conv` or the attention
layer). PyTorch's own convolutions are the oracle of ``tests/test_torch.py``.
"""

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from attn_expressivity import (
    ParameterTypeError,
    ParameterValueError,
    ShapeError,
    conv,
    conv_to_mhsa,
    shift_set,
)
from attn_expressivity.bounds.error import error_bound

MODES = ["zeros", "reflect", "replicate", "circular"]


def source_index(t, n, mode):
    """Image index read at coordinate ``t`` of an axis of size ``n`` (None: a zero)."""
    if 0 <= t < n:
        return t
    if mode == "zeros":
        return None
    if mode == "reflect":          # mirror about the edge pixel, which is not repeated
        return -t if t < 0 else 2 * (n - 1) - t
    if mode == "replicate":
        return min(max(t, 0), n - 1)
    return t % n                   # circular


def pad_widths(padding, ks, dil):
    """Per-axis (left, right) padding, PyTorch's rules written out independently."""
    if padding == "valid":
        return [(0, 0)] * len(ks)
    if padding == "same":
        return [(d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(ks, dil)]
    p = (padding,) * len(ks) if isinstance(padding, int) else padding
    return [(q, q) for q in p]


def naive_conv(x, w, b, *, stride, padding, dilation, groups, mode):
    """out[o, c] = Σ_i Σ_j x[src(o·s + i·d − lo), j] w[i, j, c] over c's group; one pixel at a time."""
    ks = w.shape[:-2]
    nd = len(ks)
    spatial, d_in = x.shape[:-1], x.shape[-1]
    c_in, d_out = w.shape[-2], w.shape[-1]
    c_out = d_out // groups
    pads = pad_widths(padding, ks, dilation)
    out_shape = [(n + lo + hi - d * (k - 1) - 1) // s + 1
                 for n, (lo, hi), k, d, s in zip(spatial, pads, ks, dilation, stride)]
    y = np.zeros(out_shape + [d_out])
    for o in itertools.product(*[range(m) for m in out_shape]):
        for c in range(d_out):
            g = c // c_out
            acc = 0.0 if b is None else b[c]
            for i in itertools.product(*[range(k) for k in ks]):
                src = [source_index(o[a] * stride[a] + i[a] * dilation[a] - pads[a][0], spatial[a], mode)
                       for a in range(nd)]
                if any(s is None for s in src):
                    continue
                for j in range(c_in):
                    acc += x[tuple(src) + (g * c_in + j,)] * w[i + (j, c)]
            y[o + (c,)] = acc
    assert d_in == c_in * groups
    return y


def valid_for(spatial, pads, ks, dil, mode):
    """PyTorch's acceptance rules for an input, restated."""
    for n, (lo, hi), k, d in zip(spatial, pads, ks, dil):
        if n + lo + hi < d * (k - 1) + 1:
            return False
        if mode == "reflect" and max(lo, hi) >= n:
            return False
        if mode == "circular" and max(lo, hi) > n:
            return False
    return True


@st.composite
def conv_cases(draw, ndim=None, max_side=6):
    nd = draw(st.integers(1, 3)) if ndim is None else ndim
    ks = tuple(draw(st.lists(st.integers(1, 4), min_size=nd, max_size=nd)))
    dil = tuple(draw(st.lists(st.integers(1, 2), min_size=nd, max_size=nd)))
    spatial = tuple(draw(st.lists(st.integers(2, max_side if nd < 3 else 4), min_size=nd, max_size=nd)))
    groups = draw(st.sampled_from([1, 2, 3]))
    c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    mode = draw(st.sampled_from(MODES))
    padding = draw(st.one_of(
        st.sampled_from(["same", "valid"]), st.integers(0, 2),
        st.lists(st.integers(0, 2), min_size=nd, max_size=nd).map(tuple)))
    if padding == "same":
        stride = (1,) * nd
    else:
        stride = tuple(draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd)))
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(ks + (c_in, c_out * groups))
    x = rng.standard_normal(spatial + (c_in * groups,))
    b = rng.standard_normal(c_out * groups) if bias else None
    kwargs = dict(stride=stride, padding=padding, dilation=dil, groups=groups, padding_mode=mode)
    return x, w, b, kwargs


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


@given(conv_cases())
def test_conv_equals_naive_loop_or_both_reject(case):
    x, w, b, kw = case
    ks = w.shape[:-2]
    pads = pad_widths(kw["padding"], ks, kw["dilation"])
    if not valid_for(x.shape[:-1], pads, ks, kw["dilation"], kw["padding_mode"]):
        with pytest.raises(ShapeError):
            conv(x, w, b, **kw)
        with pytest.raises(ShapeError):
            conv_to_mhsa(w, b, alpha=math.inf, **kw)(x)
        return
    want = naive_conv(x, w, b, stride=kw["stride"], padding=kw["padding"], dilation=kw["dilation"],
                      groups=kw["groups"], mode=kw["padding_mode"])
    got = conv(x, w, b, **kw)
    assert got.shape == want.shape
    assert rel_err(got, want) <= 1e-12


@given(conv_cases(), st.sampled_from([math.inf, 0.5, 3.0, 12.0]))
def test_attention_equals_conv_within_bound(case, alpha):
    """Pad → attend → crop → subsample reproduces every convolution; the bound holds."""
    x, w, b, kw = case
    pads = pad_widths(kw["padding"], w.shape[:-2], kw["dilation"])
    assume(valid_for(x.shape[:-1], pads, w.shape[:-2], kw["dilation"], kw["padding_mode"]))
    layer = conv_to_mhsa(w, b, alpha=alpha, **kw)
    nd = w.ndim - 2
    assert layer.n_heads == math.prod(w.shape[:-2])          # heads = product of kernel sizes
    assert layer.mhsa.d_p == nd + 1                          # encoding dimension ndim + 1
    np.testing.assert_array_equal(layer.shifts, shift_set(w.shape[:-2], dilation=kw["dilation"]))
    got, want = layer(x), conv(x, w, b, **kw)
    assert got.shape == want.shape
    err = float(np.abs(got - want).max())
    assert err <= error_bound(layer, x)["bound"]
    if alpha == math.inf:
        assert rel_err(got, want) <= 1e-12


def test_four_spatial_axes_same_code():
    """N-D code, not copies: a 4-D convolution with every hyper-parameter at once."""
    rng = np.random.default_rng(4)
    w = rng.standard_normal((2, 3, 1, 2, 1, 4))
    x = rng.standard_normal((2, 4, 5, 3, 4, 2))
    b = rng.standard_normal(4)
    kw = dict(stride=(1, 2, 1, 2), padding=(1, 0, 2, 1), dilation=(2, 1, 1, 1), groups=2,
              padding_mode="circular")
    want = np.stack([naive_conv(xi, w, b, stride=kw["stride"], padding=kw["padding"],
                                dilation=kw["dilation"], groups=2, mode="circular") for xi in x])
    got = conv(x, w, b, **kw)
    assert rel_err(got, want) <= 1e-12
    layer = conv_to_mhsa(w, b, alpha=math.inf, **kw)
    assert layer.n_heads == 12 and layer.mhsa.d_p == 5
    assert rel_err(layer(x), want) <= 1e-12


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("d", [1, 2, 3])
def test_even_kernel_same_pads_left_floor(k, d):
    """Even kernels with "same": ⌊d(K−1)/2⌋ on the left, the rest on the right (PyTorch)."""
    x = np.arange(9.0).reshape(9, 1)
    w = np.zeros((k, 1, 1))
    w[0] = 1.0                          # picks x[q + Δ_0], Δ_0 = −⌊d(K−1)/2⌋
    left = d * (k - 1) // 2
    want = np.array([x[q - left, 0] if q - left >= 0 else 0.0 for q in range(9)])
    np.testing.assert_array_equal(conv(x, w, padding="same", dilation=d)[:, 0], want)
    np.testing.assert_array_equal(
        conv_to_mhsa(w, alpha=math.inf, padding="same", dilation=d)(x)[:, 0], want)


def test_depthwise():
    """groups = d_in = d_out: every channel convolved with its own kernel."""
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((6, 7, 3)), rng.standard_normal((3, 3, 1, 3))
    got = conv(x, w, groups=3, padding_mode="reflect")
    for c in range(3):
        np.testing.assert_allclose(got[..., c], conv(x[..., c:c + 1], w[..., c:c + 1],
                                                     padding_mode="reflect")[..., 0], rtol=0, atol=1e-14)
    layer = conv_to_mhsa(w, alpha=math.inf, groups=3, padding_mode="reflect")
    assert layer.d_head == 3         # each W_Δ is diagonal 3×3 of full rank
    assert rel_err(layer(x), got) <= 1e-12


@pytest.mark.parametrize(
    ("w_shape", "x_shape", "kwargs", "exc", "match"),
    [
        ((3, 1, 1), (8, 1), {"padding": "same", "stride": 2}, ParameterValueError,
         r"padding='same' is not supported for strided convolutions.*got stride \(2,\)"),
        ((3, 3, 1, 1), (8, 8, 1), {"padding": "same", "stride": (1, 2)}, ParameterValueError,
         r"strided"),
        ((3, 1, 1), (8, 1), {"padding": "full"}, ParameterValueError, r"'same', 'valid'.*'full'"),
        ((3, 1, 1), (8, 1), {"padding": -1}, ParameterValueError, r"`padding` must be >= 0, got -1"),
        ((3, 3, 1, 1), (8, 8, 1), {"padding": (1, 2, 3)}, ShapeError, r"sequence of 2 ints.*3 values"),
        ((3, 1, 1), (8, 1), {"padding_mode": "symmetric"}, ParameterValueError, r"padding_mode.*'symmetric'"),
        ((3, 1, 4), (8, 2), {"groups": 3}, ParameterValueError, r"`groups` \(3\) must divide.*\(4\)"),
        ((3, 1, 1), (8, 1), {"stride": 0}, ParameterValueError, r"`stride` must be >= 1, got 0"),
        ((3, 1, 1), (8, 1), {"dilation": 1.0}, ParameterTypeError, r"`dilation` must be an integer"),
        ((5, 1, 1), (2, 1), {"padding": 2, "padding_mode": "reflect"}, ShapeError,
         r"reflect padding needs pad < input size.*size 2"),
        ((7, 1, 1), (2, 1), {"padding": 3, "padding_mode": "circular"}, ShapeError,
         r"circular padding needs pad <= input size"),
        ((3, 3, 3, 1, 1), (2, 2, 2, 1), {"padding": "valid"}, ShapeError, r"kernel larger"),
        ((2, 1, 1), (3, 1), {"padding": "same", "dilation": 5, "padding_mode": "reflect"}, ShapeError,
         r"reflect padding"),
    ],
)
def test_rejected_like_pytorch(w_shape, x_shape, kwargs, exc, match):
    """PyTorch's rejection rules, with messages that say what was expected and given."""
    w, x = np.ones(w_shape), np.ones(x_shape)
    with pytest.raises(exc, match=match):
        conv(x, w, **kwargs)
    with pytest.raises(exc, match=match):
        conv_to_mhsa(w, alpha=1.0, **kwargs)(x)


@pytest.mark.parametrize("argv", [
    ["--ndim", "1", "--kernel-size", "4", "--padding-mode", "reflect", "--dilation", "2"],
    ["--kernel-size", "3x5", "--image-size", "9x11", "--stride", "2x1", "--padding", "1x2",
     "--padding-mode", "replicate", "--groups", "2", "--no-bias"],
    ["--ndim", "3", "--kernel-size", "2", "--image-size", "5x4x3", "--padding", "valid", "--alpha", "inf"],
    ["--kernel-size", "2x2", "--padding", "same", "--dilation", "2", "--padding-mode", "circular", "--alpha", "4"],
])
def test_cli_verify_every_hyperparameter(argv, capsys):
    from attn_expressivity.cli import main

    assert main(["verify", "--in-channels", "2", "--out-channels", "4", "--image-size", "7", *argv]) == 0
    assert "PASS: the error is within the bound" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "match"), [
    (["--kernel-size", "3", "--stride", "2"], "padding='same' is not supported for strided"),
    (["--ndim", "3", "--kernel-size", "3x5"], "sequence of 3 ints"),
    (["--padding-mode", "symmetric"], "padding_mode"),
])
def test_cli_verify_rejects_like_pytorch(argv, match, capsys):
    from attn_expressivity.cli import main

    assert main(["verify", "--image-size", "6", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err
