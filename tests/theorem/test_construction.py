"""Theorem 1: conv_to_mhsa reproduces conv (hard attention to rounding, finite alpha within the bound)."""

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from attn_expressivity import (
    HeadDimensionError,
    ParameterTypeError,
    ParameterValueError,
    conv,
    conv_to_mhsa,
    shift_set,
    verify,
)
from attn_expressivity.attention.encoding import quadratic_head_vectors
from attn_expressivity.convolution.instances import random_instance
from attn_expressivity.theorem.border import border_effect

PRIMES = [3, 5, 7, 11]


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


@given(
    kh=st.integers(1, 4), kw=st.integers(1, 4), h=st.sampled_from(PRIMES), w=st.sampled_from(PRIMES),
    d_in=st.integers(1, 4), d_out=st.integers(1, 4), padding=st.sampled_from(["same", "valid", 1, (2, 1)]),
    seed=st.integers(0, 2**16),
)
def test_hard_attention_equals_conv(kh, kw, h, w, d_in, d_out, padding, seed):
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((kh, kw, d_in, d_out))
    bias = rng.standard_normal(d_out)
    x = rng.standard_normal((h, w, d_in))
    pad = padding if isinstance(padding, tuple) else (padding, padding) if isinstance(padding, int) else None
    assume(not (padding == "valid" and (kh > h or kw > w)))
    assume(not (pad is not None and (kh > h + 2 * pad[0] or kw > w + 2 * pad[1])))
    layer = conv_to_mhsa(weight, bias, alpha=math.inf, padding=padding)
    assert layer.n_heads == kh * kw and layer.mhsa.d_p == 3
    assert rel_err(layer(x), conv(x, weight, bias, padding=padding)) <= 1e-12


def test_lemma2_weights():
    w = np.random.default_rng(0).standard_normal((3, 3, 2, 2))
    layer = conv_to_mhsa(w, alpha=7.0)
    m = layer.mhsa
    assert not m.has_content_terms
    np.testing.assert_array_equal(m.w_qry, 0)
    np.testing.assert_array_equal(m.w_key_hat, np.tile(np.eye(3), (9, 1, 1)))
    np.testing.assert_array_equal(m.v, quadratic_head_vectors(shift_set(3), 7.0))
    np.testing.assert_array_equal(m.v[0], [-7.0, -14.0, -14.0])  # Δ = (-1, -1): -α(1, 2, 2)
    # Lemma 1: W_val^(h) W_out^(h) = W_Δh
    blocks = m.w_out.reshape(9, m.d_head, 2)
    for h, (i, j) in enumerate(np.ndindex(3, 3)):
        np.testing.assert_allclose(m.w_val[h] @ blocks[h], w[i, j], atol=1e-14)


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0])
@pytest.mark.parametrize("kernel", [(3, 3), (2, 2), (3, 2)])
def test_finite_alpha_within_bound_and_bound_is_tight(alpha, kernel):
    weight, x, bias = random_instance(kernel_size=kernel, in_channels=3, out_channels=4,
                                      image_size=(11, 7), seed=int(alpha * 10) + kernel[1])
    report = verify(weight, x, bias, alpha=alpha)
    assert report.holds and report.max_abs_error <= report.bound
    if report.leak_term > 10 * (report.rounding_term + report.factorisation_term):
        # where the leak dominates, the bound is within the worst-case alignment factor
        assert report.ratio < 2 * report.config["n_heads"], report.ratio


def test_error_decreases_with_alpha():
    weight, x, bias = random_instance(kernel_size=3, in_channels=2, out_channels=3, image_size=9, seed=4)
    errs = [verify(weight, x, bias, alpha=a).max_abs_error for a in (1, 2, 4, 8, 16)]
    assert all(b < a for a, b in zip(errs, errs[1:]))


def test_border_effect_without_padding_does_not_vanish():
    weight, x, _ = random_instance(kernel_size=3, in_channels=2, out_channels=3, image_size=9, seed=5)
    alphas = (5.0, 20.0, 60.0, math.inf)
    effects = [border_effect(weight, x, alpha=a) for a in alphas]
    # interior queries have their targets in the (rectangular) image: Theorem 1's bound holds
    # (the per-channel one: it bounds the fast path that border_effect runs)
    for a, e in zip(alphas, effects):
        assert e["interior"] <= verify(weight, x, alpha=a, sharp=False).bound
    # the border error stays O(1): softmax renormalises over in-image pixels, not zeros
    assert min(e["border"] for e in effects) > 0.1
    assert effects[-1]["border"] > 0.5 * effects[0]["border"]


def test_minimal_d_head_and_errors():
    rng = np.random.default_rng(6)
    # rank-2 slices: d_head = 2 is the minimum
    w = np.einsum("hwir,hwro->hwio", rng.standard_normal((3, 3, 5, 2)), rng.standard_normal((3, 3, 2, 6)))
    x = rng.standard_normal((6, 5, 5))
    layer = conv_to_mhsa(w, alpha=math.inf)
    assert layer.d_head == 2 and layer.ranks.tolist() == [2] * 9
    assert rel_err(layer(x), conv(x, w)) <= 1e-12
    with pytest.raises(HeadDimensionError, match=r"shift \(-1, -1\) \(head 0\) has rank 2, got d_head = 1.*smallest d_head that works is 2"):
        conv_to_mhsa(w, alpha=1.0, d_head=1)
    paper = conv_to_mhsa(w, alpha=math.inf, d_head="paper")
    assert paper.d_head == 6
    assert rel_err(paper(x), conv(x, w)) <= 1e-12
    wide = conv_to_mhsa(w, alpha=math.inf, d_head=4)
    assert wide.d_head == 4 and rel_err(wide(x), conv(x, w)) <= 1e-12


@pytest.mark.parametrize(
    ("alpha", "kwargs", "exc", "match"),
    [
        (-1.0, {}, ParameterValueError, r"`alpha` must be a real number in \[0, inf\], got -1.0"),
        (math.nan, {}, ParameterValueError, r"`alpha`.*got nan"),
        ("big", {}, ParameterTypeError, r"`alpha`.*got str"),
        (1.0, {"d_head": 0}, ParameterValueError, r"`d_head` must be >= 1"),
        (1.0, {"d_head": "wide"}, ParameterValueError, r"`d_head` must be None, 'paper' or an int"),
    ],
)
def test_bad_alpha_and_d_head(alpha, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        conv_to_mhsa(np.ones((3, 3, 1, 1)), alpha=alpha, **kwargs)


def test_wrong_value_blocks_fail_instead_of_widening_the_bound():
    """A head whose W_val W_out is not W_Δ must make verify's check fail, even though
    the factorisation term of the bound would grow to cover it."""
    from attn_expressivity.bounds.error import error_bound
    from attn_expressivity.theorem.factorisation import factorisation_allowance

    weight, x, bias = random_instance(kernel_size=3, in_channels=2, out_channels=3, image_size=6, seed=8)
    layer = conv_to_mhsa(weight, bias, alpha=30.0)
    clean = error_bound(layer, x)
    assert clean["factorisation_excess"] == []
    layer.mhsa.w_val[4] *= 1.001                      # the centre head's values, slightly wrong
    terms = error_bound(layer, x)
    [excess] = terms["factorisation_excess"]
    assert excess["head"] == 4 and excess["shift"] == [0, 0]
    assert excess["residual"] > excess["allowance"] == pytest.approx(
        factorisation_allowance(weight[1, 1], layer.mhsa.w_val[4],
                                layer.mhsa.w_out.reshape(9, -1, 3)[4]), rel=1e-12)
    # the widened bound would have covered the error: the excess check is what catches it
    assert np.abs(layer(x) - conv(x, weight, bias)).max() <= terms["bound"]


def test_float16_rounding_bound_exists_only_where_m_u_is_small():
    """In float16 (u = 2^-11) a rounding bound needs each sum's count of non-zero terms w
    to satisfy w·u < 1/2. At alpha = 12 every weight but the target's is flushed, so both
    paths have one (the dense path's sum over 1089 keys has one non-zero term); at
    alpha = 0.01 every key keeps a weight and the dense path's sum of the 1088 keys other
    than the largest has none: verify says so."""
    from attn_expressivity import ParameterValueError

    w, x, b = random_instance(kernel_size=3, in_channels=2, out_channels=2, image_size=31, seed=1)
    w, x, b = (a.astype(np.float16) for a in (w, x, b))
    for path in ("dense", "separable"):
        report = verify(w, x, b, alpha=12.0, path=path)
        assert report.holds and report.config["dtype"] == "float16"
    with pytest.raises(ParameterValueError, match=r"no rounding bound exists for a sum of \d+ non-zero terms in float16"):
        verify(w, x, b, alpha=0.01, path="dense")
