"""The separable path against the dense path, the path selector, and memory use.

The separable path factorises each head's softmax into one-dimensional softmaxes
(the module docstring of attn_expressivity.attention.separable); the dense path computes every score and
normalises over all keys. They share only the per-axis score tables, so their
agreement checks the factorisation itself.
"""

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attn_expressivity import (
    MultiHeadSelfAttention,
    NotSeparableError,
    ParameterTypeError,
    ParameterValueError,
    conv,
    conv_to_mhsa,
    verify,
)
from attn_expressivity import _threads as threads
from attn_expressivity.attention.encoding import anisotropic_encoding, quadratic_encoding

REL = 1e-12


def rel_diff(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def positional_layer(rng, H, D, d_in, d_head, d_out, *, encoding="quadratic", scale=1.0, beta=1.0):
    """A layer with only the positional term, random head vectors (not Lemma 2's)."""
    d_p = D + 1 if encoding == "quadratic" else D * (D + 3) // 2
    v = scale * rng.standard_normal((H, d_p))
    if encoding == "quadratic":
        v[:, 0] = -np.abs(v[:, 0])                      # a bump, not a bowl: weights spread
    else:
        v[:, D:2 * D] = -np.abs(v[:, D:2 * D])
        v[:, 2 * D:] = 0.0                              # diagonal Σ⁻¹: separable
    z = np.zeros((H, d_in, d_p))
    return MultiHeadSelfAttention(
        w_qry=z, w_key=z, w_key_hat=np.tile(np.eye(d_p), (H, 1, 1)), u=np.zeros((H, d_p)), v=v,
        w_val=rng.standard_normal((H, d_in, d_head)), w_out=rng.standard_normal((H * d_head, d_out)),
        b_out=rng.standard_normal(d_out), encoding=encoding, beta=beta)


@given(
    ndim=st.integers(1, 3), data=st.data(), d_in=st.integers(1, 3), d_out=st.integers(1, 3),
    alpha=st.sampled_from([0.5, 3.0, 40.0, math.inf]),
    mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]), seed=st.integers(0, 2**16),
)
def test_dense_equals_separable_on_the_construction(ndim, data, d_in, d_out, alpha, mode, seed):
    side = 7 if ndim == 3 else 11
    ks = tuple(data.draw(st.integers(1, 3)) for _ in range(ndim))
    dil = tuple(data.draw(st.integers(1, 2)) for _ in range(ndim))
    stride = tuple(data.draw(st.integers(1, 2)) for _ in range(ndim))
    padding = tuple(data.draw(st.integers(0, 2)) for _ in range(ndim))
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal(ks + (d_in, d_out))
    x = rng.standard_normal((side,) * ndim + (d_in,))
    layer = conv_to_mhsa(weight, rng.standard_normal(d_out), alpha=alpha, stride=stride,
                         padding=padding, dilation=dil, padding_mode=mode)
    assert layer.mhsa.select_path() == "separable"
    dense = layer(x, path="dense")
    assert layer.mhsa.last_path == "dense"
    sep = layer(x, path="separable")
    assert layer.mhsa.last_path == "separable"
    assert rel_diff(sep, dense) <= REL
    if alpha == math.inf:   # hard attention: both are the convolution to rounding
        want = conv(x, weight, layer.bias, stride=stride, padding=padding, dilation=dil,
                    padding_mode=mode)
        assert rel_diff(sep, want) <= REL


@given(
    spatial=st.lists(st.sampled_from([1, 2, 3, 5, 7]), min_size=1, max_size=3).map(tuple),
    encoding=st.sampled_from(["quadratic", "anisotropic"]),
    scale=st.sampled_from([0.05, 1.0, 20.0]), beta=st.sampled_from([0.0, 0.5, 1.0, math.inf]),
    batch=st.sampled_from([(), (2,)]), seed=st.integers(0, 2**16),
)
def test_dense_equals_separable_random_heads(spatial, encoding, scale, beta, batch, seed):
    rng = np.random.default_rng(seed)
    D = len(spatial)
    layer = positional_layer(rng, H=3, D=D, d_in=2, d_head=2, d_out=3, encoding=encoding,
                             scale=scale, beta=beta)
    assert layer.is_separable
    x = rng.standard_normal(batch + spatial + (2,))
    sep = layer(x)
    assert layer.last_path == "separable"
    assert rel_diff(sep, layer(x, path="dense")) <= REL


def naive_positional(layer, x, encode):
    """softmax over all keys of c·r_δ, written out with the encoding: no per-axis tables."""
    spatial = x.shape[:-1]
    n = math.prod(spatial)
    pos = np.indices(spatial).reshape(len(spatial), n).T
    r = encode(pos[None, :, :] - pos[:, None, :])                        # (n, n, d_p)
    scores = np.einsum("qkp,hp->hqk", r, layer.position_coefficients())
    p = np.exp(scores - scores.max(axis=2, keepdims=True))
    p /= p.sum(axis=2, keepdims=True)
    heads = np.einsum("hqk,khd->qhd", p, np.einsum("kc,hcd->khd", x.reshape(n, -1), layer.w_val))
    return (heads.reshape(n, -1) @ layer.w_out + layer.b_out).reshape(spatial + (-1,))


@pytest.mark.parametrize("encoding, encode", [("quadratic", quadratic_encoding),
                                              ("anisotropic", anisotropic_encoding)])
def test_both_paths_match_the_formula(encoding, encode):
    rng = np.random.default_rng(11)
    layer = positional_layer(rng, H=2, D=2, d_in=3, d_head=2, d_out=2, encoding=encoding)
    x = rng.standard_normal((5, 3, 3))
    want = naive_positional(layer, x, encode)
    for path in ("dense", "separable"):
        assert rel_diff(layer(x, path=path), want) <= REL


def test_selector_picks_dense_for_content_terms():
    rng = np.random.default_rng(2)
    base = positional_layer(rng, H=2, D=2, d_in=2, d_head=2, d_out=2)
    d_p, d_k = base.d_p, base.d_k
    w = dict(w_qry=base.w_qry, w_key=base.w_key, w_key_hat=base.w_key_hat, u=base.u, v=base.v,
             w_val=base.w_val, w_out=base.w_out, b_out=base.b_out)
    small = 0.1 * rng.standard_normal((2, 2, d_k))
    for change in (dict(w_qry=small, w_key=small),                    # term 1
                   dict(w_qry=small),                                 # term 2 (Ŵ ≠ 0)
                   dict(w_key=small, u=rng.standard_normal((2, d_p)))):  # term 3
        layer = MultiHeadSelfAttention(**dict(w, **change))
        assert layer.has_content_terms and not layer.is_separable
        assert layer.select_path() == "dense"
        x = rng.standard_normal((4, 3, 2))
        layer(x)
        assert layer.last_path == "dense"
        with pytest.raises(NotSeparableError, match="content terms"):
            layer(x, path="separable")
    # w_key ≠ 0 alone, with u = 0 and w_qry = 0, adds nothing: still separable
    assert MultiHeadSelfAttention(**dict(w, w_key=small)).select_path() == "separable"


def test_selector_picks_dense_for_non_separable_encodings():
    rng = np.random.default_rng(4)
    aniso = positional_layer(rng, H=2, D=2, d_in=1, d_head=1, d_out=1, encoding="anisotropic")
    assert aniso.select_path() == "separable"
    v = aniso.v.copy()
    v[1, 4] = 0.3                                                     # δ_1δ_2: a tilted Σ⁻¹
    tilted = MultiHeadSelfAttention(aniso.w_qry, aniso.w_key, aniso.w_key_hat, aniso.u, v,
                                    aniso.w_val, aniso.w_out, aniso.b_out, encoding="anisotropic")
    assert tilted.axis_coefficients() is None and tilted.select_path() == "dense"
    with pytest.raises(NotSeparableError, match="cross coefficients"):
        tilted.select_path("separable")
    x = rng.standard_normal((4, 5, 1))
    np.testing.assert_allclose(tilted(x), naive_positional(tilted, x, anisotropic_encoding),
                               rtol=REL, atol=0)
    quad = positional_layer(rng, H=1, D=2, d_in=1, d_head=1, d_out=1)
    custom = MultiHeadSelfAttention(quad.w_qry, quad.w_key, quad.w_key_hat, quad.u, quad.v,
                                    quad.w_val, quad.w_out, quad.b_out,
                                    encoding=quadratic_encoding, ndim=2)
    assert custom.select_path() == "dense"
    with pytest.raises(NotSeparableError, match="callable"):
        custom(x, path="separable")
    assert rel_diff(custom(x), quad(x)) <= REL


def test_bad_path_values():
    layer = positional_layer(np.random.default_rng(0), H=1, D=1, d_in=1, d_head=1, d_out=1)
    with pytest.raises(ParameterValueError, match=r"`path` must be one of .*got 'fast'"):
        layer(np.zeros((3, 1)), path="fast")
    with pytest.raises(ParameterTypeError, match="`path` must be one of .*got NoneType"):
        layer.select_path(None)


def test_per_axis_paths_never_form_an_overflowing_score():
    """-1e307 δ²: every score beyond the band overflows, but the per-axis paths only
    form the scores of each row's band (the others are flushed to 0 anyway), so they
    return the limit, one-hot attention on the query itself."""
    z = np.zeros((1, 1, 2))
    layer = MultiHeadSelfAttention(z, z, np.eye(2)[None], np.zeros((1, 2)), np.array([[-1e307, 0.0]]),
                                   np.ones((1, 1, 1)), np.ones((1, 1)), np.zeros(1))
    x = np.random.default_rng(0).standard_normal((40, 1))
    for path in ("separable", "dense"):
        np.testing.assert_array_equal(layer(x, path=path), x)


def test_float32_paths_agree_to_float32_rounding():
    rng = np.random.default_rng(8)
    layer = positional_layer(rng, H=2, D=2, d_in=2, d_head=2, d_out=2).astype(np.float32)
    x = rng.standard_normal((6, 5, 2)).astype(np.float32)
    sep, dense = layer(x), layer(x, path="dense")
    assert sep.dtype == dense.dtype == np.float32
    # both are within γ_m·S_abs of the exact value (verify.py); here m <= 2n + 30
    u = 2.0**-24
    m = 2 * 30 + 30
    s_abs = sum(float((np.abs(x.reshape(-1, 2)) @ (np.abs(layer.w_val[h]) @ np.abs(
        layer.w_out.reshape(2, 2, 2)[h]))).max()) for h in range(2)) + float(np.abs(layer.b_out).max())
    assert float(np.abs(sep.astype(np.float64) - dense).max()) <= 2 * m * u / (1 - m * u) * s_abs


@pytest.mark.parametrize("alpha", [4.0, 40.0])
def test_verify_reports_the_path_and_its_bound(alpha):
    rng = np.random.default_rng(5)
    w, x = rng.standard_normal((3, 3, 2, 3)), rng.standard_normal((9, 8, 2))
    reports = {p: verify(w, x, alpha=alpha, path=p) for p in ("auto", "dense", "separable")}
    assert reports["auto"].path == "separable" and reports["dense"].path == "dense"
    for r in reports.values():
        assert r.holds and r.max_abs_error <= r.bound
    if alpha == 4.0:
        # spread weights: the per-channel bound of the separable path has D sums of length
        # L_i where the dense one has one of length n. (The element-wise bounds follow the
        # errors that occurred, and at α = 40 every weight is 0 or 1 on both paths, so
        # neither order is a law there.)
        channels = {p: verify(w, x, alpha=alpha, path=p, sharp=False) for p in ("separable", "dense")}
        assert channels["separable"].rounding_term < channels["dense"].rounding_term
    assert "path=separable" in reports["auto"].summary()


def test_dense_scratch_is_bounded_by_the_budget():
    """Peak extra memory is the budget plus O(n) per image, not O(n²)."""
    rng = np.random.default_rng(1)
    budget = 2**18
    layer = positional_layer(rng, H=2, D=2, d_in=2, d_head=2, d_out=2)
    layer.memory_budget = budget
    layer(rng.standard_normal((5, 5, 2)), path="dense")          # one-off allocations
    peaks = []
    for side in (24, 48):
        x = rng.standard_normal((side, side, 2))
        n = side * side
        assert layer.chunk_size(n, positional=True) < n
        tracemalloc.start()
        layer(x, path="dense")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # each worker thread keeps its values (d_head + 1 columns) and an accumulator (d_out)
        workers = min(layer.n_heads, threads.worker_count())
        linear = 8 * n * (layer.d_in + workers * (layer.d_head + 1 + layer.d_out) + layer.ndim + 4)
        # plus a fixed 64 KiB for Python objects and small temporaries, and 128 KiB per
        # worker thread (numpy's per-thread ufunc buffers; measured about 90 KiB each)
        assert peak <= budget + linear + 2**16 + workers * 2**17, (side, peak, budget + linear)
        peaks.append(peak)
    # unchunked scores alone would be 8 n² bytes: 42 MB at 48 × 48
    assert peaks[1] < 8 * (48 * 48) ** 2 / 20


def test_cli_path_flag(capsys):
    from attn_expressivity.cli import main

    assert main(["verify", "--image-size", "6", "--in-channels", "2", "--out-channels", "2",
                 "--path", "dense"]) == 0
    assert "path=dense" in capsys.readouterr().out
    assert main(["verify", "--image-size", "6", "--path", "fast"]) == 2


@pytest.mark.parametrize("budget", [None, 1])
def test_grouped_and_per_head_separable_agree_with_dense(budget):
    """Heads that share per-axis factors share work; with a tiny budget and more than
    seven groups the heads run one at a time. Both must equal the dense path."""
    rng = np.random.default_rng(11)
    w = rng.standard_normal((9, 2, 3, 4))               # 9 distinct axis-0 factors: 9 groups
    layer = conv_to_mhsa(w, alpha=2.5)
    if budget is not None:
        layer.mhsa.memory_budget = budget
    xp = layer.pad(rng.standard_normal((2, 10, 6, 3)))
    np.testing.assert_array_less(
        rel_diff(layer.mhsa(xp, path="separable"), layer.mhsa(xp, path="dense")), REL)
    # the three-axis case: groups keyed by the first two axes' factors
    w3 = rng.standard_normal((2, 3, 2, 2, 2))
    layer3 = conv_to_mhsa(w3, alpha=1.5, padding="valid")
    x3 = rng.standard_normal((5, 6, 4, 2))
    assert rel_diff(layer3.mhsa(x3, path="separable"), layer3.mhsa(x3, path="dense")) <= REL
