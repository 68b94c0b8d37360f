"""The reference convolution against scipy (an independent oracle)."""

import itertools

import numpy as np
import pytest
from scipy import signal

from attn_expressivity import (
    NonFiniteError,
    ParameterTypeError,
    ParameterValueError,
    ShapeError,
    conv,
)


def scipy_conv2d(x, w, b, pad):
    """Cross-correlation via scipy.signal.correlate on a zero-padded image."""
    (pt, pb), (pl, pr) = pad
    xp = np.pad(x, ((pt, pb), (pl, pr), (0, 0)))
    kh, kw, d_in, d_out = w.shape
    out = np.zeros((xp.shape[0] - kh + 1, xp.shape[1] - kw + 1, d_out))
    for o in range(d_out):
        for c in range(d_in):
            out[:, :, o] += signal.correlate(xp[:, :, c], w[:, :, c, o], mode="valid")
    return out + (0 if b is None else b)


@pytest.mark.parametrize(("kh", "kw"), [(1, 1), (3, 3), (2, 2), (4, 3), (5, 2)])
@pytest.mark.parametrize("padding", ["same", "valid", 1, (2, 0)])
def test_conv_matches_scipy(kh, kw, padding):
    rng = np.random.default_rng(kh * 10 + kw)
    x = rng.standard_normal((7, 5, 3))
    w = rng.standard_normal((kh, kw, 3, 2))
    b = rng.standard_normal(2)
    if padding == "same":
        pad = tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in (kh, kw))
    elif padding == "valid":
        pad = ((0, 0), (0, 0))
    else:
        p = (padding, padding) if isinstance(padding, int) else padding
        pad = tuple((q, q) for q in p)
    got = conv(x, w, b, padding=padding)
    want = scipy_conv2d(x, w, b, pad)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_same_output_shape_even_kernel():
    x = np.zeros((6, 7, 1))
    assert conv(x, np.zeros((4, 2, 1, 3))).shape == (6, 7, 3)


def test_batch_axes():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 7, 2))
    w = rng.standard_normal((3, 3, 2, 4))
    y = conv(x, w)
    for i, j in itertools.product(range(2), range(3)):
        np.testing.assert_array_equal(y[i, j], conv(x[i, j], w))


def test_1d_and_3d_against_scipy():
    rng = np.random.default_rng(2)
    x1, w1 = rng.standard_normal((11, 1)), rng.standard_normal((3, 1, 1))
    np.testing.assert_allclose(conv(x1, w1, padding="valid")[:, 0],
                               signal.correlate(x1[:, 0], w1[:, 0, 0], mode="valid"), atol=1e-13)
    x3, w3 = rng.standard_normal((5, 4, 3, 1)), rng.standard_normal((3, 2, 2, 1, 1))
    np.testing.assert_allclose(conv(x3, w3, padding="valid")[..., 0],
                               signal.correlate(x3[..., 0], w3[..., 0, 0], mode="valid"), atol=1e-13)


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "kwargs", "exc", "match"),
    [
        ((5, 5, 2), (3, 2), {}, ShapeError, r"at least one spatial axis"),
        ((5, 2), (3, 3, 2, 1), {}, ShapeError, r"2 spatial axes"),
        ((5, 5, 3), (3, 3, 2, 1), {}, ShapeError, r"channel mismatch.*3 channels.*d_in = 2"),
        ((2, 2, 1), (3, 3, 1, 1), {"padding": "valid"}, ShapeError, r"kernel larger than the padded input"),
        ((5, 5, 2), (3, 3, 2, 1), {"padding": "full"}, ParameterValueError, r"'same', 'valid'"),
        ((5, 5, 2), (3, 3, 2, 1), {"padding": -1}, ParameterValueError, r"padding.*>= 0"),
        ((5, 5, 2), (3, 3, 2, 1), {"padding": 1.5}, ParameterTypeError, r"padding.*integer"),
        ((5, 5, 2), (3, 3, 2, 1), {"padding_mode": "mirror"}, ParameterValueError, r"padding_mode.*'mirror'"),
        ((5, 5, 2), (3, 3, 2, 1), {"stride": 2}, ParameterValueError, r"'same' is not supported for strided"),
        ((5, 5, 2), (3, 3, 1, 3), {"groups": 2}, ParameterValueError, r"groups.*divide.*3"),
        ((5, 5, 2), (3, 3, 2, 1), {"stride": 0, "padding": 0}, ParameterValueError, r"stride.*>= 1"),
        ((5, 5, 2), (3, 3, 2, 1), {"padding": 5, "padding_mode": "reflect"}, ShapeError, r"reflect padding needs pad < input size"),
    ],
)
def test_bad_input(x_shape, w_shape, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        conv(np.ones(x_shape), np.ones(w_shape), **kwargs)


def test_nonfinite_and_integer_inputs():
    w = np.ones((3, 3, 1, 1))
    x = np.ones((4, 4, 1))
    x[1, 2, 0] = np.nan
    with pytest.raises(NonFiniteError, match=r"`x` must hold only finite values, got nan at index \(1, 2, 0\)"):
        conv(x, w)
    with pytest.raises(NonFiniteError, match=r"`weight`.*inf"):
        conv(np.ones((4, 4, 1)), np.full((3, 3, 1, 1), np.inf))
    with pytest.raises(ParameterTypeError, match=r"`x` must be a real floating-point array.*int64"):
        conv(np.ones((4, 4, 1), dtype=np.int64), w)
    with pytest.raises(ShapeError, match=r"`bias` must have shape \(1,\)"):
        conv(np.ones((4, 4, 1)), w, np.ones(2))
