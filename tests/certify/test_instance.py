import math
import sys

import numpy as np
import pytest

from attn_expressivity import (
    CertificationSizeError,
    OptionalDependencyError,
    ParameterTypeError,
    ParameterValueError,
    UnsupportedConfigurationError,
    conv,
    conv_to_mhsa,
    quadratic_head_vectors,
)
from attn_expressivity.attention import MultiHeadSelfAttention
from attn_expressivity.balls.backends import available_backends
from attn_expressivity.balls.theta import certified_leak_bound
from attn_expressivity.certify.instance import MAX_CERTIFY_WORK, certify_layer, certify_work

CASES = [
    # (kernel, d_in, d_out, image, options)
    ((3, 3), 2, 3, (6, 5), {}),
    ((2, 3), 3, 2, (5, 7), {"padding": 1, "stride": 2}),
    ((3,), 2, 2, (8,), {"padding": "valid", "dilation": 2}),
    ((3, 3), 2, 2, (5, 5), {"padding_mode": "circular"}),
    ((3, 3), 2, 4, (4, 4), {"groups": 2}),
]


@pytest.mark.parametrize(("kernel", "d_in", "d_out", "image", "options"), CASES)
def test_random_instances_certified(backend, kernel, d_in, d_out, image, options):
    rng = np.random.default_rng(sum(kernel) + d_in * 7 + d_out)
    w = rng.standard_normal(kernel + (d_in // options.get("groups", 1), d_out))
    b = rng.standard_normal(d_out)
    x = rng.standard_normal(image + (d_in,))
    layer = conv_to_mhsa(w, b, alpha=12.0, **options)
    report = certify_layer(layer, x, backend=backend)
    assert report.holds, report.summary()
    assert report.n_certified == report.n_elements == layer(x).size
    assert report.max_abs_difference <= report.epsilon
    assert report.leak == certified_leak_bound(12.0, len(kernel)).upper
    # the float layer is close to the exact one: rounding-sized, far below the leak
    assert report.float_deviation < 1e-12
    assert report.failures == [] and report.head_issues == []


def test_hard_attention_certified_with_zero_leak(backend):
    rng = np.random.default_rng(1)
    layer = conv_to_mhsa(rng.standard_normal((3, 3, 2, 2)), alpha=math.inf, d_head="paper")
    report = certify_layer(layer, rng.standard_normal((5, 4, 2)), backend=backend)
    # one-hot attention and W_val W_out = W_Δ exactly: MHSA_exact = conv_exact
    assert report.holds and report.leak == 0.0 and report.max_abs_difference == 0.0
    assert report.residuals == [0.0] * 9


NO_FLINT = pytest.mark.skipif("flint" not in available_backends(), reason="needs the certify extra (python-flint): pip install -e '.[certify]'")


@pytest.mark.parametrize(("backend", "head"), [pytest.param("flint", 0, marks=NO_FLINT),
                                               pytest.param("flint", 7, marks=NO_FLINT),
                                               ("mpmath", 4)])
def test_perturbed_head_fails_and_is_reported(backend, head):
    rng = np.random.default_rng(head)
    w, x = rng.standard_normal((3, 3, 2, 3)), rng.standard_normal((6, 6, 2))
    layer = conv_to_mhsa(w, alpha=30.0)
    assert certify_layer(layer, x, backend=backend).holds
    layer.mhsa.w_val[head, 0, 0] += 1e-6
    report = certify_layer(layer, x, backend=backend)
    assert not report.holds and report.n_certified < report.n_elements
    assert report.failures and all(f["status"] == "violated" for f in report.failures)
    for f in report.failures:
        assert len(f["element"]) == 3                                   # (row, col, channel)
        assert [h["head"] for h in f["heads"]] == [head]                # the perturbed head
        lo, hi = f["difference"]
        assert min(abs(lo), abs(hi)) > report.epsilon
    assert [i["head"] for i in report.head_issues] == [head]             # residual over allowance
    assert "violated at element" in report.summary() and f"head {head}" in report.summary()


def test_perturbed_score_vector_is_reported():
    rng = np.random.default_rng(5)
    layer = conv_to_mhsa(rng.standard_normal((3, 3, 1, 1)), alpha=20.0)
    layer.mhsa.v[2, 1] *= 1 + 2.0**-40
    report = certify_layer(layer, rng.standard_normal((4, 4, 1)), backend="mpmath")
    assert not report.holds and report.head_issues[0]["head"] == 2
    assert "leak bound does not apply" in report.head_issues[0]["reason"]


def test_batch_elements_are_named():
    rng = np.random.default_rng(2)
    layer = conv_to_mhsa(rng.standard_normal((1, 3, 1, 1)), alpha=25.0)
    x = rng.standard_normal((2, 3, 5, 1))
    layer.mhsa.b_out[0] += 1e-3                                          # bias off: every element
    report = certify_layer(layer, x, backend="mpmath")
    assert not report.holds and report.failures[0]["element"] == [0, 0, 0, 0]
    assert report.failures[0]["heads"] == []                             # no head to blame


def test_size_limit_refuses_with_the_limit():
    layer = conv_to_mhsa(np.ones((3, 3, 4, 4)), alpha=20.0, d_head=4)
    assert certify_work(layer, np.ones((8, 8, 4))) == 288_000 <= MAX_CERTIFY_WORK
    with pytest.raises(CertificationSizeError, match=r"limited to 600,000 ball operations.*got 1,270,080"):
        certify_layer(layer, np.ones((12, 12, 4)))


def test_unsupported_layers_and_bad_arguments():
    rng = np.random.default_rng(0)
    layer = conv_to_mhsa(rng.standard_normal((3, 3, 1, 1)), alpha=5.0)
    x = rng.standard_normal((4, 4, 1))
    m = layer.mhsa
    layer.mhsa = MultiHeadSelfAttention(m.w_qry + 1.0, m.w_key + 1.0, m.w_key_hat, m.u, m.v,
                                        m.w_val, m.w_out, m.b_out)
    with pytest.raises(UnsupportedConfigurationError, match="no content terms"):
        certify_layer(layer, x)
    layer.mhsa = m
    with pytest.raises(ParameterTypeError, match="`layer` must be a ConvAttention"):
        certify_layer(m, x)
    with pytest.raises(ParameterValueError, match="`backend` must be one of"):
        certify_layer(layer, x, backend="interval")
    with pytest.raises(ParameterValueError, match="`factorisation_tol` must be a finite number >= 0"):
        certify_layer(layer, x, factorisation_tol=-1.0)
    with pytest.raises(ParameterValueError, match="`prec` must be >= 53, got 20"):
        certify_layer(layer, x, prec=20)


def test_fallback_without_flint(monkeypatch):
    import attn_expressivity.balls.backends as backends

    monkeypatch.setitem(sys.modules, "flint", None)             # import flint now fails
    monkeypatch.setattr(backends, "_BACKEND_CACHE", {})
    assert available_backends() == ("mpmath",)
    with pytest.raises(OptionalDependencyError, match="backend='flint' needs python-flint"):
        certified_leak_bound(3.0, 2, backend="flint")
    enc = certified_leak_bound(3.0, 2)                           # backend=None falls back
    rng = np.random.default_rng(0)
    report = certify_layer(conv_to_mhsa(rng.standard_normal((2, 2, 1, 1)), alpha=9.0),
                           rng.standard_normal((3, 3, 1)))
    assert report.backend == "mpmath" and report.holds
    assert enc.lower <= enc.upper


def test_verify_certify_and_size_refusal():
    from attn_expressivity import verify
    from attn_expressivity.convolution.instances import random_instance

    w, x, b = random_instance(kernel_size=3, in_channels=2, out_channels=2, image_size=6)
    report = verify(w, x, b, alpha=20.0, certify=True, backend="mpmath")
    assert report.holds and report.certificate.holds and report.certificate.backend == "mpmath"
    assert "CERTIFIED" in report.summary() and report.to_dict()["certificate"]["n_certified"] == 72
    w, x, b = random_instance(kernel_size=3, in_channels=2, out_channels=2, image_size=16)
    with pytest.raises(CertificationSizeError, match="limited to 600,000"):
        verify(w, x, b, alpha=20.0, certify=True)
    with pytest.raises(ParameterTypeError, match="`certify` must be True or False, got str"):
        verify(w, x, b, alpha=20.0, certify="yes")


def test_cli_alpha_and_verify_certify(capsys):
    import json

    from attn_expressivity import alpha_for_tolerance
    from attn_expressivity.cli import main

    assert main(["alpha", "--tolerance", "1e-6", "--scale", "3", "--backend", "mpmath", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["alpha"] == alpha_for_tolerance(1e-6, 2, scale=3.0)
    assert main(["alpha", "--tolerance", "1e-6"]) == 0
    assert capsys.readouterr().out.startswith(f"alpha = {alpha_for_tolerance(1e-6, 2)!r}")
    assert main(["verify", "--image-size", "5", "--in-channels", "2", "--out-channels", "2",
                 "--certify", "--backend", "mpmath"]) == 0
    assert "CERTIFIED" in capsys.readouterr().out
    assert main(["verify", "--certify"]) == 2
    assert "limited to 600,000 ball operations" in capsys.readouterr().err
    assert main(["alpha"]) == 2 and "one of the arguments" in capsys.readouterr().err


def test_consistently_wrong_shifts_are_not_certified(backend):
    """Mirrored head offsets with matching score vectors compute a true convolution, not
    the cross-correlation: the convolution side reads its taps from the configuration,
    so the layer must not certify."""
    rng = np.random.default_rng(21)
    w, x = rng.standard_normal((3, 3, 1, 1)), rng.standard_normal((5, 5, 1))
    layer = conv_to_mhsa(w, alpha=30.0)
    assert certify_layer(layer, x, backend=backend).holds
    layer.shifts = -layer.shifts
    layer.mhsa.v[...] = quadratic_head_vectors(layer.shifts, 30.0)
    assert np.abs(layer(x) - conv(x, w)).max() > 0.1
    report = certify_layer(layer, x, backend=backend)
    assert not report.holds and report.failures
