"""The shipped testing tools: strategies, the assertion helper and the profiles."""

import math
import sys

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import attn_expressivity.theorem.construction as construction
from attn_expressivity import (
    ParameterTypeError,
    ParameterValueError,
    ShapeError,
    conv,
    conv_to_mhsa,
    shift_set,
)
from attn_expressivity.convolution.config import make_config
from attn_expressivity.testing import (
    PROFILES,
    ReproductionReport,
    assert_reproduces_conv,
    conv_configs,
    conv_options,
    images,
    kernels,
    min_image_shape,
    register_profiles,
)


@given(cfg=conv_configs(), data=st.data())
def test_strategies_are_valid_together_and_small(cfg, data):
    x = data.draw(images(cfg, batch_shape=(2,)), label="x")
    w = data.draw(kernels(cfg), label="weight")
    assert w.shape == cfg.kernel_size + (cfg.d_in // cfg.groups, cfg.d_out)
    assert x.shape[0] == 2 and x.shape[-1] == cfg.d_in and x.dtype == np.float64
    assert cfg.ndim in (1, 2, 3) and max(cfg.kernel_size) <= 3 and max(cfg.d_in, cfg.d_out) <= 4
    assert cfg.groups <= 2 and max(cfg.stride) <= 2 and max(cfg.dilation) <= 2
    low = min_image_shape(cfg)
    assert all(lo <= s <= lo + 4 for lo, s in zip(low, x.shape[1:-1]))
    nonzero = np.abs(np.concatenate([x.ravel(), w.ravel()]))
    assert np.all((nonzero == 0) | ((nonzero >= 2.0**-16) & (nonzero <= 1)))
    y = conv(x, w, **conv_options(cfg))                # no error: the configuration is valid
    assert y.shape == (2,) + cfg.output_shape(tuple(x.shape[1:-1])) + (cfg.d_out,)


@given(cfg=conv_configs(), data=st.data())
def test_min_image_shape_is_the_minimum(cfg, data):
    """One pixel less on any axis is refused by the reference convolution."""
    low = min_image_shape(cfg)
    axis = data.draw(st.integers(0, cfg.ndim - 1), label="axis")
    conv(np.zeros(low + (cfg.d_in,)), np.zeros(cfg.kernel_size + (cfg.d_in // cfg.groups, cfg.d_out)),
         **conv_options(cfg))
    if low[axis] > 1:
        smaller = low[:axis] + (low[axis] - 1,) + low[axis + 1:]
        with pytest.raises(ShapeError):
            conv(np.zeros(smaller + (cfg.d_in,)),
                 np.zeros(cfg.kernel_size + (cfg.d_in // cfg.groups, cfg.d_out)), **conv_options(cfg))


def test_bounds_can_be_raised_and_fixed():
    from hypothesis import find

    big = find(conv_configs(ndim=2, max_kernel_size=5, max_channels=8, max_groups=4),
               lambda c: max(c.kernel_size) == 5 and c.groups == 4,
               settings=settings(max_examples=2000, database=None))
    assert big.d_in % 4 == 0 and big.d_out % 4 == 0
    only = find(conv_configs(ndim=3, padding_modes=["circular"]), lambda c: True)
    assert only.ndim == 3 and only.padding_mode == "circular"
    x = find(images(only, dtype=np.float32, batch_shape=(1, 2)), lambda x: True)
    assert x.dtype == np.float32 and x.shape[:2] == (1, 2)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: conv_configs(ndim=0), ParameterValueError, r"`ndim` must be >= 1, got 0"),
        (lambda: conv_configs(ndim=[]), ParameterValueError, r"`ndim` must be an int >= 1 or a non-empty"),
        (lambda: conv_configs(max_kernel_size=2.5), ParameterTypeError, r"`max_kernel_size` must be an integer"),
        (lambda: conv_configs(padding_modes=["mirror"]), ParameterValueError, r"`padding_modes` must hold"),
        (lambda: images("3x3"), ParameterTypeError, r"`config` must be a ConvConfig.*got str"),
        (lambda: images(make_config((3, 1, 1)), dtype=np.int64), ParameterTypeError,
         r"`dtype` must be float32 or float64, got int64"),
        (lambda: kernels(make_config((3, 1, 1)), max_abs=0.0), ParameterValueError,
         r"need 0 < min_abs <= max_abs < inf"),
        (lambda: images(make_config((3, 1, 1)), max_extra=-1), ParameterValueError,
         r"`max_extra` must be >= 0, got -1"),
    ],
)
def test_strategy_arguments_are_validated(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --------------------------------------------------------------------------- the assertion


def test_returns_a_report_with_the_worst_element():
    rng = np.random.default_rng(1)
    w, x, b = rng.standard_normal((3, 2, 2, 3)), rng.standard_normal((2, 7, 5, 2)), rng.standard_normal(3)
    report = assert_reproduces_conv(w, x, b, alpha=25.0, padding=1, stride=2)
    assert isinstance(report, ReproductionReport) and report.holds and report.method == "elementwise"
    # the element-by-element check measures the traced path against the compensated reference
    from attn_expressivity.bounds.elementwise import sharp_check

    err = sharp_check(conv_to_mhsa(w, b, alpha=25.0, padding=1, stride=2), x, path="separable").error
    assert report.max_abs_error == err.max() == err[report.worst_index]
    # and it is the same error as the fast path's against the plain reference, to rounding
    fast = np.abs(conv_to_mhsa(w, b, alpha=25.0, padding=1, stride=2)(x) - conv(x, w, b, padding=1, stride=2))
    assert abs(fast.max() - report.max_abs_error) <= report.bound
    assert report.worst_head is None and report.head_errors == []
    layer = conv_to_mhsa(w, b, alpha=math.inf)
    assert assert_reproduces_conv(layer, x[0]).config["alpha"] == math.inf


def test_failure_names_pixel_head_shift_error_bound_alpha_dtype():
    rng = np.random.default_rng(2)
    w, x = rng.standard_normal((3, 3, 2, 2)), rng.standard_normal((6, 7, 2)).astype(np.float32)
    layer = conv_to_mhsa(w.astype(np.float32), alpha=30.0)
    layer.mhsa.v[7] = layer.mhsa.v[1]           # head 7 (Δ = (1, 0)) now attends at Δ = (-1, 0)
    with pytest.raises(AssertionError) as info:
        assert_reproduces_conv(layer, x)
    msg = str(info.value)
    assert "head 7 (shift (1, 0))" in msg and "alpha = 30.0" in msg and "dtype = float32" in msg
    assert "exceeds the bound" in msg and "at output pixel (" in msg and "channel" in msg
    # the helper hides itself from pytest tracebacks
    frames = [tb.tb_frame for tb in _walk(info.value.__traceback__)]
    mine = [f for f in frames if f.f_code is assert_reproduces_conv.__code__]
    assert mine and mine[0].f_locals["__tracebackhide__"] is True


def _walk(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next


def test_head_blame_is_that_heads_own_deviation():
    rng = np.random.default_rng(3)
    w, x = rng.standard_normal((1, 3, 1, 1)), rng.standard_normal((4, 6, 1))
    layer = conv_to_mhsa(w, alpha=math.inf)
    layer.mhsa.v[2] = layer.mhsa.v[0]           # head 2 (Δ = (0, 1)) now attends at Δ = (0, -1)
    with pytest.raises(AssertionError, match=r"head 2 \(shift \(0, 1\)\)"):
        assert_reproduces_conv(layer, x)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": 1.0}, r"options come from the layer; got \['alpha'\]"),
        ({"padding": "valid"}, r"options come from the layer; got \['padding'\]"),
    ],
)
def test_layer_options_are_refused(kwargs, match):
    layer = conv_to_mhsa(np.ones((3, 1, 1)), alpha=1.0)
    with pytest.raises(ParameterValueError, match=match):
        assert_reproduces_conv(layer, np.ones((4, 1)), **kwargs)


def test_weight_needs_alpha():
    with pytest.raises(ParameterValueError, match="`alpha` is required"):
        assert_reproduces_conv(np.ones((3, 1, 1)), np.ones((4, 1)))


# --------------------------------------------------------------------------- planted bug


def _swap_axes_of_one_head(kernel_size, **kwargs):
    """The planted bug: the first head whose shift has two different coordinates gets them swapped."""
    shifts = shift_set(kernel_size, **kwargs).copy()
    for h in range(len(shifts)):
        if shifts.shape[1] > 1 and shifts[h, 0] != shifts[h, 1]:
            shifts[h, [0, 1]] = shifts[h, [1, 0]]
            break
    return shifts


def test_ci_profile_finds_a_planted_swapped_axis(monkeypatch):
    """The property test of Theorem 1, under the ``ci`` profile, catches one head's swapped axes."""
    calls = []

    @settings(settings.get_profile("ci"), phases=[Phase.generate], database=None,
              print_blob=False)
    @given(cfg=conv_configs(), data=st.data())
    def theorem1(cfg, data):
        calls.append(cfg)
        x, w = data.draw(images(cfg, max_extra=2)), data.draw(kernels(cfg))
        assert_reproduces_conv(w, x, alpha=30.0, **conv_options(cfg))

    theorem1()                                           # passes without the bug
    n_clean = len(calls)
    monkeypatch.setattr(construction, "shift_set", _swap_axes_of_one_head)
    calls.clear()
    with pytest.raises(AssertionError, match=r"exceeds the bound.*head \d+ \(shift \(") as info:
        theorem1()
    assert len(calls) <= PROFILES["ci"]["max_examples"] <= n_clean
    assert "MHSA does not reproduce the convolution" in str(info.value)


# --------------------------------------------------------------------------- profiles


def test_profiles(monkeypatch):
    ci = settings.get_profile("ci")
    dev = settings.get_profile("dev")
    assert ci.derandomize and ci.deadline is None and ci.print_blob
    assert ci.max_examples > dev.max_examples and dev.deadline is None
    current = settings.default
    try:
        monkeypatch.setenv("HYPOTHESIS_PROFILE", "nightly")
        with pytest.raises(ParameterValueError, match=r"HYPOTHESIS_PROFILE must name a registered.*'nightly'"):
            register_profiles()
        monkeypatch.setenv("HYPOTHESIS_PROFILE", "ci")
        assert register_profiles() == "ci" and settings.default.derandomize
    finally:
        settings.load_profile("ci" if current.derandomize else "dev")


def test_import_does_not_load_hypothesis():
    import subprocess

    code = ("import sys, attn_expressivity.testing; "
            "sys.exit(1 if 'hypothesis' in sys.modules or 'pytest' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
