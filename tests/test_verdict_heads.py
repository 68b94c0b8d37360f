"""Verdicts on the heads, their tables and their splits that a second review found wrong.

Each test reproduces a false PASS or a false FAIL of ``verify`` / ``check_layer`` /
``certify_layer`` and checks the answer given now: a head whose stored ``α`` is not the
layer's, per-axis tables that are not a softmax, an SVD split whose allowance was a
float32 tolerance, and a non-zero ``α`` below the normal range of the weights' type.
"""

import numpy as np
import pytest

from attn_expressivity import (
    ParameterValueError,
    certify_layer,
    conv_to_mhsa,
    verify,
)
from attn_expressivity.theorem.heads import alpha_issues, alpha_range, head_issues, stored_heads
from attn_expressivity.verify import check_layer


def _instance(seed=0, d_in=2, d_out=2, size=5):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((3, 3, d_in, d_out)), rng.standard_normal((size, size, d_in)),
            rng.standard_normal(d_out))


def _all_verdicts(layer, x):
    """holds of check_layer on both paths and both methods, and of certify_layer."""
    out = [check_layer(layer, x, path=path, sharp=sharp).holds
           for path in ("separable", "dense") for sharp in (True, False)]
    return out + [certify_layer(layer, x).holds]


# finding 1: one head's alpha lowered after construction ------------------------------------
@pytest.mark.parametrize("scale", [0.01, 0.0])
def test_a_head_with_a_lowered_alpha_fails_everywhere(scale):
    """``v[4] *= 0.01`` puts head 4 at alpha 0.3: its error is ~2.6 on outputs ~5, and every
    check used to PASS, charging the head the leak of its own stored alpha."""
    w, x, b = _instance()
    layer = conv_to_mhsa(w, b, alpha=30.0)
    layer.mhsa.v[4] *= scale
    assert _all_verdicts(layer, x) == [False] * 5
    report = check_layer(layer, x)
    assert any(e["head"] == 4 and "stored alpha" in e["reason"] for e in report.head_issues)
    # charged the leak at the layer's alpha only: the deviation shows as an error
    assert report.n_exceeding > 0 and report.max_abs_error > 1e6 * report.bound
    assert report.config["alpha"] == 30.0 and report.config["alpha_heads"] == [30.0 * scale, 30.0]
    assert "heads store" in report.summary()
    cert = certify_layer(layer, x)
    assert any(e["head"] == 4 for e in cert.head_issues)


def test_scaled_key_matrix_and_declared_alpha_are_compared():
    """Halving one head's ``Ŵ_key`` halves its alpha; ``layer.alpha = 1e6`` declares another."""
    w, x, b = _instance()
    layer = conv_to_mhsa(w, b, alpha=30.0)
    layer.mhsa.w_key_hat[3] *= 0.5
    assert [e["head"] for e in head_issues(layer)] == [3]
    assert _all_verdicts(layer, x) == [False] * 5
    layer = conv_to_mhsa(w, b, alpha=30.0)
    layer.alpha = 1e6
    issues = head_issues(layer)
    assert len(issues) == 1 and issues[0]["head"] is None and "1e+06" in issues[0]["reason"]
    assert not check_layer(layer, x).holds and not certify_layer(layer, x).holds
    layer.alpha = float("inf")                        # a finite-beta layer declared hard
    assert "beta" in head_issues(layer)[0]["reason"]


def test_an_equivalent_storage_of_alpha_still_passes():
    """``β = 2`` with ``v / 2`` stores the same alpha exactly; float32 rounds alpha within u."""
    w, x, b = _instance()
    layer = conv_to_mhsa(w, b, alpha=30.0)
    layer.mhsa.beta = 2.0
    layer.mhsa.v[...] = layer.mhsa.v / 2
    assert alpha_issues(layer, stored_heads(layer)) == []
    assert check_layer(layer, x).holds and certify_layer(layer, x).holds
    layer32 = conv_to_mhsa(w.astype(np.float32), alpha=2.1)
    assert alpha_range(layer32)[0] != 2.1 and head_issues(layer32) == []
    assert conv_to_mhsa(w, alpha=float("inf")).mhsa.beta == float("inf")
    assert head_issues(conv_to_mhsa(w, alpha=float("inf"))) == []


# finding 5: a non-zero alpha below the normal range ------------------------------------------
@pytest.mark.parametrize(("dtype", "alpha"), [(np.float32, 1.3e-44), (np.float32, 6e-46),
                                              (np.float16, 1e-7), (np.float64, 1e-320)])
def test_a_subnormal_alpha_is_refused_with_the_smallest_alpha_the_type_holds(dtype, alpha):
    """Stored below the normal range, ``fl(−α)`` and ``fl(2αΔ)`` round to different multiples
    of the smallest subnormal and the centre moved by up to half a pixel: a false FAIL."""
    w, x, _ = _instance()
    tiny = float(np.finfo(dtype).tiny)
    with pytest.raises(ParameterValueError, match=f"at least {tiny!r} .* got {alpha!r}"):
        conv_to_mhsa(w.astype(dtype), alpha=alpha)
    with pytest.raises(ParameterValueError, match="smallest normal"):
        verify(w.astype(dtype), x.astype(dtype), alpha=alpha)
    for ok in (0.0, tiny):                           # zero and the smallest normal alpha pass
        assert verify(w.astype(dtype), x.astype(dtype), alpha=ok).holds
