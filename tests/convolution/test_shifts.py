import pytest

from attn_expressivity import ParameterTypeError, ParameterValueError, ShapeError, shift_set
from attn_expressivity.convolution.shifts import axis_shifts


@pytest.mark.parametrize("k", range(1, 8))
def test_axis_shifts_paper_and_pytorch_same(k):
    s = axis_shifts(k)
    assert s[0] == -((k - 1) // 2) and s[-1] == k // 2
    if k % 2:  # the paper's set for odd K
        assert s.tolist() == list(range(-(k // 2), k // 2 + 1))


def test_dilated_shifts():
    assert axis_shifts(2, 2).tolist() == [-1, 1]
    assert axis_shifts(3, 2).tolist() == [-2, 0, 2]
    assert axis_shifts(4, 3).tolist() == [-4, -1, 2, 5]


def test_raster_order_and_bijection():
    s = shift_set((2, 3))
    assert s.shape == (6, 2)
    assert s.tolist() == [[0, -1], [0, 0], [0, 1], [1, -1], [1, 0], [1, 1]]
    s3 = shift_set(3, ndim=3)
    assert s3.shape == (27, 3) and len({tuple(r) for r in s3}) == 27


@pytest.mark.parametrize(
    ("args", "kwargs", "exc", "match"),
    [
        ((0,), {}, ParameterValueError, r"kernel_size.*>= 1, got 0"),
        ((2.5,), {}, ParameterTypeError, r"kernel_size.*integer, got float"),
        (((3, 3),), {"dilation": (1, 1, 1)}, ShapeError, r"dilation.*2 ints.*got 3"),
        ((3,), {"dilation": 0}, ParameterValueError, r"dilation.*>= 1"),
        (((3, 3),), {"ndim": 3}, ShapeError, r"2 axes but `ndim` is 3"),
    ],
)
def test_bad_input(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        shift_set(*args, **kwargs)
