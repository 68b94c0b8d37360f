"""The figures' numbers (numpy only) and the figures themselves (matplotlib, skipped without it)."""

import math
import subprocess
import sys

import numpy as np
import pytest

from attn_expressivity import MultiHeadSelfAttention, conv_to_mhsa, leak_bound
from attn_expressivity.bounds import gamma
from attn_expressivity.errors import (
    ParameterTypeError,
    ParameterValueError,
    ShapeError,
    UnsupportedConfigurationError,
)
from attn_expressivity.plot import attention_probabilities, mass_radius


def _random_mhsa(rng, n_heads=3, d_in=2, d_k=3, d_head=2, d_out=4, ndim=2):
    d_p = ndim + 1
    w = lambda *s: 0.5 * rng.standard_normal(s)  # noqa: E731
    return MultiHeadSelfAttention(
        w_qry=w(n_heads, d_in, d_k), w_key=w(n_heads, d_in, d_k), w_key_hat=w(n_heads, d_p, d_k),
        u=w(n_heads, d_k), v=w(n_heads, d_k), w_val=w(n_heads, d_in, d_head),
        w_out=w(n_heads * d_head, d_out), b_out=w(d_out))


@pytest.mark.parametrize("query", [(0, 0), (2, 3), (4, 1)])
def test_probabilities_reproduce_the_layer_output(query):
    # independent of the layer's chunked path: recombine the weights by hand
    rng = np.random.default_rng(7)
    mhsa = _random_mhsa(rng)
    x = rng.standard_normal((5, 4, 2))
    p = attention_probabilities(mhsa, (5, 4), query, x)                    # (H, 5, 4)
    assert np.allclose(p.sum(axis=(1, 2)), 1.0, rtol=0, atol=1e-14)
    tokens = x.reshape(20, 2)
    w_out = mhsa.w_out.reshape(mhsa.n_heads, mhsa.d_head, mhsa.d_out)
    want = mhsa.b_out + sum(p[h].reshape(20) @ tokens @ mhsa.w_val[h] @ w_out[h]
                            for h in range(mhsa.n_heads))
    got = mhsa(x)[query]
    assert np.allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kernel_size", [(3, 3), (2, 4)])
def test_constructed_heads_peak_on_their_shift(kernel_size):
    layer = conv_to_mhsa(np.ones(kernel_size + (1, 1)), alpha=20.0)
    q = (4, 3)
    p = attention_probabilities(layer.mhsa, (9, 8), q)
    for h, shift in enumerate(layer.shifts):
        target = tuple(np.add(q, shift))
        assert np.unravel_index(int(p[h].argmax()), p[h].shape) == target
        # the theory's off-target mass, plus the rounding of a softmax over the 72 keys
        # (the leak bound is attained up to e^-320 here, so the rounding shows)
        assert 1 - p[h][target] <= leak_bound(20.0, 2) + gamma(9 * 8 + 4, 2.0**-53)


def test_probabilities_bad_input():
    layer = conv_to_mhsa(np.ones((3, 3, 1, 1)), alpha=1.0)
    with pytest.raises(ParameterTypeError, match="must be a MultiHeadSelfAttention, got ConvAttention"):
        attention_probabilities(layer, (5, 5), (2, 2))
    with pytest.raises(ShapeError, match="must lie inside the image"):
        attention_probabilities(layer.mhsa, (5, 5), (5, 0))
    with pytest.raises(ShapeError, match="must each have 2 entries"):
        attention_probabilities(layer.mhsa, (5, 5, 5), (1, 1, 1))
    with pytest.raises(ParameterTypeError, match="must be an integer"):
        attention_probabilities(layer.mhsa, (5, 5), (2.0, 2))
    content = _random_mhsa(np.random.default_rng(0))
    with pytest.raises(ParameterValueError, match="`x` is required"):
        attention_probabilities(content, (3, 3), (1, 1))
    with pytest.raises(ShapeError, match=r"`x` must have shape \(3, 3, 2\)"):
        attention_probabilities(content, (3, 3), (1, 1), np.zeros((3, 3, 1)))


@pytest.mark.parametrize("alpha", [0.5, 2.0])
@pytest.mark.parametrize("mass", [0.5, 0.9])
def test_mass_radius_holds_the_mass_of_the_gaussian(alpha, mass):
    # midpoint rule for the 2-D Gaussian e^{-α‖z‖²} on a fine grid, not the closed form
    r = mass_radius(alpha, mass)
    step = 0.01
    z = np.arange(-8, 8, step) + step / 2
    zz = z[:, None] ** 2 + z[None, :] ** 2
    dens = np.exp(-alpha * zz)
    inside = dens[zz <= r * r].sum() / dens.sum()
    assert abs(inside - mass) < 5e-3


def test_mass_radius_bad_input():
    with pytest.raises(ParameterValueError, match=r"`mass` must be in \(0, 1\), got 1.0"):
        mass_radius(1.0, 1.0)
    with pytest.raises(ParameterValueError, match="`alpha` must be finite and > 0, got inf"):
        mass_radius(math.inf, 0.5)
    with pytest.raises(ParameterTypeError, match="`mass` must be a number"):
        mass_radius(1.0, "half")


def test_importing_plot_does_not_import_matplotlib():
    code = "import sys, attn_expressivity.plot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stdout + out.stderr


# ----------------------------------------------------------------- figures (need matplotlib)


@pytest.fixture
def mpl():
    return pytest.importorskip("matplotlib", reason="needs the plot extra: pip install -e '.[plot]'")


def test_plot_heads_grid_and_centres(mpl):
    from attn_expressivity.plot import plot_heads

    fig = plot_heads(alpha=1.0, kernel_size=(2, 3), image_size=7)
    # one heatmap per head, a colour bar, the centres panel
    assert len(fig.axes) == 6 + 2
    centres = fig.axes[-1]
    assert len(centres.patches) == 6 * 2          # a 50 % and a 90 % circle per head
    radii = sorted({round(c.get_radius(), 12) for c in centres.patches})
    assert radii == [round(mass_radius(1.0, 0.5), 12), round(mass_radius(1.0, 0.9), 12)]
    with pytest.raises(UnsupportedConfigurationError, match="2-D layers, got a 1-D layer"):
        plot_heads(conv_to_mhsa(np.ones((3, 1, 1)), alpha=1.0))


def test_plot_alpha_draws_error_under_bound(mpl):
    from attn_expressivity.plot import plot_alpha

    rng = np.random.default_rng(3)
    fig = plot_alpha(rng.standard_normal((3, 3, 2, 3)), rng.standard_normal((6, 7, 2)),
                     alphas=[0.5, 5.0, 40.0])
    assert [r.holds for r in fig.reports] == [True, True, True]
    errors = [r.max_abs_error for r in fig.reports]
    assert errors[0] > errors[1] > errors[2]       # error falls with α
    with pytest.raises(ParameterValueError, match="at least one value"):
        plot_alpha(alphas=[])


def test_plot_border_shows_the_border_effect(mpl):
    from attn_expressivity.plot import plot_border

    fig = plot_border(alphas=[5.0, 30.0])
    titles = [ax.get_title() for ax in fig.axes[:2]]
    no_pad = float(titles[0].rsplit(" ", 1)[-1])
    padded = float(titles[1].rsplit(" ", 1)[-1])
    assert no_pad > 1e-2 and padded < 1e-9
    with pytest.raises(UnsupportedConfigurationError, match="2-D kernels"):
        plot_border(np.ones((3, 1, 1)))


def test_save_figures_and_cli_write_pngs(mpl, tmp_path):
    from attn_expressivity.cli import main
    from attn_expressivity.plot import save_figures

    paths = save_figures(tmp_path / "a", ["border"], dpi=30)
    assert [p.name for p in paths] == ["border.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ParameterValueError, match=r"unknown figure\(s\) \['heads2'\]"):
        save_figures(tmp_path, ["heads2"])
    assert main(["plot", "heads", "--out", str(tmp_path / "b"), "--dpi", "30"]) == 0
    assert (tmp_path / "b" / "heads.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_plot_bad_usage(capsys, tmp_path):
    from attn_expressivity.cli import main

    assert main(["plot", "bogus", "--out", str(tmp_path)]) == 2
    assert "expected one of heads, alpha, border, all, got 'bogus'" in capsys.readouterr().err
    assert main(["plot", "--all"]) == 2
    assert "--out" in capsys.readouterr().err
