"""Theorem 1 is tight: fewer heads than ``r(W) = rank U(W)`` cannot express the convolution.

The oracle is the reference convolution itself: its operator, read off by
convolving the standard basis images, rearranged so that ``A ⊗ B`` becomes
``vec(A) vec(B)ᵀ`` (rows: output pixel and input pixel; columns: input and
output channel). Its singular values are those of ``G^{1/2} U(W)``, which
:func:`heads_lower_bound` computes from the shift set without ever convolving;
the shift matrices ``S_Δ`` are the operators of one-hot kernels.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from attn_expressivity import (
    MultiHeadSelfAttention,
    ParameterTypeError,
    ParameterValueError,
    ShapeError,
    certify_layer,
    conv,
    conv_to_mhsa,
    heads_lower_bound,
    min_heads,
)
from attn_expressivity.convolution.config import make_config
from attn_expressivity.testing import assert_reproduces_conv, conv_configs, conv_options, images
from attn_expressivity.verify import check_layer

# PyTorch notes that even kernels with padding="same" copy the input; expected here.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")

EPS = np.finfo(np.float64).eps


def conv_operator(w, size, **opts):
    """The convolution's linear part rearranged: ``R[(o, p), (c, c')] = ∂Conv(X)_{o,c'}/∂X_{p,c}``."""
    d_in = w.shape[-2] * opts.get("groups", 1)
    n_in = math.prod(size)
    basis = np.eye(n_in * d_in).reshape((n_in * d_in,) + tuple(size) + (d_in,))
    y = conv(basis, w, **opts)                                            # (n_in·d_in, *out, d_out)
    n_out, d_out = math.prod(y.shape[1:-1]), y.shape[-1]
    t = y.reshape(n_in, d_in, n_out, d_out)
    return t.transpose(2, 0, 1, 3).reshape(n_out * n_in, d_in * d_out)


def shift_matrices(kernel_size, size, **opts):
    """``S_Δ`` in raster order, ``(n_slices, n_out, n_in)``: the operators of one-hot kernels."""
    n = math.prod(kernel_size)
    opts = {k: v for k, v in opts.items() if k != "groups"}             # one channel
    mats = []
    for i in range(n):
        w = np.zeros(n)
        w[i] = 1.0
        mats.append(conv_operator(w.reshape(tuple(kernel_size) + (1, 1)), size, **opts))
    n_in = math.prod(size)
    return np.stack([m.reshape(-1, n_in) for m in mats])


def low_rank_kernel(rng, kernel_size, d_in, d_out, rank, n_zero, dtype=np.float64):
    """Slices ``W_Δ = Σ_j A_Δj B_j``: ``rank`` independent directions, ``n_zero`` zero slices."""
    n = math.prod(kernel_size)
    coef = rng.standard_normal((n, rank))
    coef[rng.choice(n, size=n_zero, replace=False)] = 0.0
    basis = rng.standard_normal((rank, d_in * d_out))
    return (coef.astype(dtype) @ basis.astype(dtype)).reshape(tuple(kernel_size) + (d_in, d_out))


# --------------------------------------------------------------------------- min_heads


@given(ks=st.lists(st.integers(1, 3), min_size=1, max_size=3), groups=st.integers(1, 2),
       seed=st.integers(0, 2**32 - 1), data=st.data())
def test_generic_kernels_need_every_head(ks, groups, seed, data):
    n = math.prod(ks)
    c_in = data.draw(st.integers(1, 5))
    c_out = data.draw(st.integers(max(1, math.ceil(n / c_in)), max(1, math.ceil(n / c_in)) + 2))
    w = np.random.default_rng(seed).standard_normal(tuple(ks) + (c_in, groups * c_out))
    # U(W) has c_in·c_out·groups non-zero columns (the blocks): generic rank min(n, that)
    h = min_heads(w, groups=groups)
    assert h.lower == h.upper == h.n_slices == n
    assert h.singular_values.min() > h.rank_tol


def test_unfolding_of_grouped_kernels_is_the_block_diagonal_one():
    from attn_expressivity.convolution.slices import kernel_slices

    w = np.random.default_rng(3).standard_normal((3, 2, 2, 6))
    full = kernel_slices(w, groups=3).reshape(6, -1)                      # rows vec(W_Δ), 12 x 36
    assert np.allclose(min_heads(w, groups=3).singular_values,
                       np.linalg.svd(full, compute_uv=False), rtol=0, atol=1e-13)


@given(ks=st.lists(st.integers(1, 3), min_size=1, max_size=3), seed=st.integers(0, 2**32 - 1),
       data=st.data(), dtype=st.sampled_from([np.float64, np.float32]))
def test_kernels_from_fewer_slices_need_fewer_heads(ks, seed, data, dtype):
    n = math.prod(ks)
    assume(n >= 2)
    rank = data.draw(st.integers(1, n - 1))
    n_zero = data.draw(st.integers(0, n - rank))
    d_in, d_out = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    assume(d_in * d_out >= rank)
    w = low_rank_kernel(np.random.default_rng(seed), ks, d_in, d_out, rank, n_zero, dtype)
    h = min_heads(w)
    assert h.lower == rank < n                                             # fewer than K^D
    assert h.upper == n - n_zero == int(h.nonzero.sum())
    assert h.nonzero.tolist() == [bool(np.any(s)) for s in w.reshape(n, -1)]


def test_rank_tolerance_is_used_and_validated():
    w = np.zeros((3, 1, 1))
    w[:, 0, 0] = [1.0, 1e-9, 0.0]
    assert (min_heads(w).lower, min_heads(w).upper) == (1, 2)             # 1e-9 >> 3·eps
    assert min_heads(w, rank_tol=1e-12).lower == 1                        # one row space anyway
    w2 = np.zeros((2, 1, 2))
    w2[:, 0] = [[1.0, 0.0], [0.0, 1e-9]]
    assert min_heads(w2).lower == 2 and min_heads(w2, rank_tol=1e-8).lower == 1
    empty = min_heads(np.zeros((3, 3, 2, 2)))
    assert (empty.lower, empty.upper) == (0, 0)


# --------------------------------------------------------------------------- heads_lower_bound


def _draw_instance(cfg, data):
    """An image size that fits ``cfg``, a Gaussian kernel and the convolution options."""
    size = data.draw(images(cfg, max_extra=3)).shape[:-1]
    w = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).standard_normal(
        cfg.kernel_size + (cfg.d_in // cfg.groups, cfg.d_out))
    return size, w, conv_options(cfg)



@given(cfg=conv_configs(ndim=(1, 2), max_channels=3), data=st.data())
def test_singular_values_are_those_of_the_conv_operator(cfg, data):
    size, w, opts = _draw_instance(cfg, data)
    dependent = np.linalg.matrix_rank(shift_matrices(cfg.kernel_size, size, **opts).reshape(
        math.prod(cfg.kernel_size), -1)) < math.prod(cfg.kernel_size)
    if dependent and cfg.padding_mode == "zeros":   # a shift no output sees: refused
        with pytest.raises(ShapeError, match="too small for the theorem: no output sees the shift"):
            heads_lower_bound(w, 0, size, **opts)
        return
    b = heads_lower_bound(w, 0, size, **opts)
    # dependent shifts (another mode, a small image): the bound is still computed, and flagged
    assert b.shifts_independent is not dependent and (b.note is None) is not dependent
    ref = np.linalg.svd(conv_operator(w, size, **opts), compute_uv=False)   # descending
    k = max(ref.size, b.singular_values.size)      # a short side's missing values are zeros
    ref, got = (np.pad(v, (0, k - v.size)) for v in (ref, b.singular_values))
    tol = 64 * EPS * ref[0] * math.sqrt(k)
    assert np.abs(ref - got).max() <= tol
    assert b.total == pytest.approx(np.linalg.norm(ref), rel=1e-12)        # n_heads = 0
    assert b.output_size == conv(np.zeros(size + (cfg.d_in,)), w, **opts).shape[:-1]


def test_counts_with_zero_padding_stride_and_dilation():
    w = np.ones((3, 2, 1, 1))
    b = heads_lower_bound(w, 0, (7, 5), stride=(2, 1), padding=(1, 0), dilation=(1, 2))
    # axis 0: outputs o = 0..3 read pixel 2o + i − 1, inside [0, 7) for 3, 4, 3 of them (i = 0, 1, 2)
    # axis 1: no padding, dilation 2: outputs 0..2, both taps always inside: 3, 3
    assert b.output_size == (4, 3)
    assert b.counts.tolist() == [9, 9, 12, 12, 9, 9]
    s = shift_matrices((3, 2), (7, 5), stride=(2, 1), padding=(1, 0), dilation=(1, 2))
    assert b.gram.tolist() == np.einsum("iop,jop->ij", s, s).astype(int).tolist()


def _positional_heads(rng, cfg, size, n_heads):
    """``P_h`` of softmax heads with real centres and widths over the padded image, cropped.

    Written from the definition (pad, score −α‖k − q − c‖², softmax over the
    padded keys, keep the convolution's queries); padded keys read the pixel the
    padding mode puts there (zero padding: nothing).
    """
    pads, nd = cfg.pad_width, cfg.ndim
    padded = [n + lo + hi for n, (lo, hi) in zip(size, pads)]
    src = np.arange(math.prod(size)).reshape(size)
    mode = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
    kw = {"constant_values": -1} if cfg.padding_mode == "zeros" else {}
    src = np.pad(src, pads, mode=mode[cfg.padding_mode], **kw).reshape(-1)   # (n_padded,)
    keys = np.indices(padded).reshape(nd, -1).T                               # (n_padded, D)
    lefts = [d * (k - 1) // 2 for k, d in zip(cfg.kernel_size, cfg.dilation)]
    outs = [(p - d * (k - 1) - 1) // s + 1 for p, k, d, s in
            zip(padded, cfg.kernel_size, cfg.dilation, cfg.stride)]
    qrys = np.indices(outs).reshape(nd, -1).T * np.array(cfg.stride) + np.array(lefts)
    centres = rng.uniform(-2.0, 2.0, size=(n_heads, nd))
    alphas = rng.uniform(0.2, 4.0, size=n_heads)
    p = np.zeros((n_heads, len(qrys), math.prod(size)))
    for h in range(n_heads):
        z = keys[None, :, :] - qrys[:, None, :] - centres[h]                 # (n_q, n_k, D)
        score = -alphas[h] * (z**2).sum(-1)
        prob = np.exp(score - score.max(axis=1, keepdims=True))
        prob /= prob.sum(axis=1, keepdims=True)
        for k in np.flatnonzero(src >= 0):
            p[h][:, src[k]] += prob[:, k]
    return p, centres, alphas


def _positional_layer(cfg, centres, alphas, m):
    """The package's MHSA with those heads (scores −α_h‖δ − c_h‖² + const) and ``W_val W_out = M_h``."""
    n_heads, nd = centres.shape
    d_in, d_out = m.shape[1:]
    d_p = nd + 1
    zeros = np.zeros((n_heads, d_in, d_p))
    v = -alphas[:, None] * np.concatenate([np.ones((n_heads, 1)), -2 * centres], axis=1)
    return MultiHeadSelfAttention(
        w_qry=zeros, w_key=zeros, w_key_hat=np.tile(np.eye(d_p), (n_heads, 1, 1)),
        u=np.zeros((n_heads, d_p)), v=v, w_val=m, w_out=np.tile(np.eye(d_out), (n_heads, 1)),
        b_out=np.zeros(d_out))


@given(cfg=conv_configs(ndim=2, max_channels=3, max_groups=1).filter(
           lambda c: math.prod(c.kernel_size) >= 2 and c.d_in * c.d_out >= 2), data=st.data())
def test_least_squares_positional_heads_never_beat_the_bound(cfg, data):
    x = data.draw(images(cfg, max_extra=3))
    size = x.shape[:-1]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n = math.prod(cfg.kernel_size)
    rank = data.draw(st.integers(2, min(n, cfg.d_in * cfg.d_out)))
    w = low_rank_kernel(rng, cfg.kernel_size, cfg.d_in, cfg.d_out, rank, 0)
    opts = conv_options(cfg)
    try:
        bound = heads_lower_bound(w, 0, size, **opts)
    except ShapeError:
        assume(False)
    n_heads = min_heads(w).lower - 1
    assume(n_heads >= 1)
    bound = heads_lower_bound(w, n_heads, size, **opts)
    # both sides are float64 computations of the same Frobenius norms: a rounding allowance
    assert _least_squares_error(rng, cfg, w, size, n_heads) >= bound.total * (1 - 1e-9)
    assert bound.total > 0 or not bound.shifts_independent


def _least_squares_error(rng, cfg, w, size, n_heads):
    """``‖L_MHSA − L_conv‖_F`` of the package's layer with random softmax heads and the best ``M_h``."""
    opts = conv_options(cfg)
    p, centres, alphas = _positional_heads(rng, cfg, size, n_heads)
    target = conv_operator(w, size, **opts)                                 # (n_out·n_in, d_in·d_out)
    a = p.reshape(n_heads, -1).T                                            # columns vec(P_h)
    m, *_ = np.linalg.lstsq(a, target, rcond=None)                          # the best M_h for these P_h
    m = m.reshape(n_heads, cfg.d_in, cfg.d_out)
    # the package's layer with these heads computes Σ_h P_h X M_h (pad → attend → crop)
    layer = conv_to_mhsa(w, alpha=1.0, **opts)
    layer.mhsa = _positional_layer(cfg, centres, alphas, m)
    n_in = math.prod(size)
    basis = np.eye(n_in * cfg.d_in).reshape((n_in * cfg.d_in,) + size + (cfg.d_in,))
    got = layer(basis).reshape(n_in, cfg.d_in, -1, cfg.d_out).transpose(2, 0, 1, 3)
    got = got.reshape(target.shape)
    assert np.abs(got - a @ m.reshape(n_heads, -1)).max() <= 1e-12 * max(1.0, np.abs(got).max())
    return float(np.linalg.norm(got - target))


@pytest.mark.parametrize(("kernel_size", "size", "opts"), [
    ((2,), (3,), {"stride": 2, "padding": 1, "dilation": 2, "padding_mode": "reflect"}),
    ((3,), (2,), {"padding": 2, "padding_mode": "circular"}),
    ((2, 3), (2, 4), {"stride": 2, "padding": 1, "padding_mode": "replicate"}),
    ((3, 3), (2, 3), {"padding": 2, "padding_mode": "circular"}),
])
def test_dependent_shifts_keep_the_bound_and_flag_the_necessity(kernel_size, size, opts):
    """Eckart–Young needs no independence of the ``S_Δ``: on an image where they are dependent the
    bound is returned (it was refused), equals the operator's tail, and no positional layer beats it."""
    rng = np.random.default_rng(len(kernel_size) * 10 + math.prod(size))
    w = rng.standard_normal(kernel_size + (3, 3))                          # 9 >= |S|: r(W) = |S|
    cfg = make_config(w.shape, **opts)
    s_mats = shift_matrices(kernel_size, size, **opts)
    rank_g = np.linalg.matrix_rank(s_mats.reshape(len(s_mats), -1))
    assert rank_g < len(s_mats) == min_heads(w).lower                       # dependent on this image
    ref = np.linalg.svd(conv_operator(w, size, **opts), compute_uv=False)
    assert np.count_nonzero(ref > 1e-12 * ref[0]) == rank_g                 # fewer heads than r(W) suffice
    for n_heads in range(len(s_mats) + 1):
        bound = heads_lower_bound(w, n_heads, size, **opts)
        assert not bound.shifts_independent
        assert "necessity statement" in bound.note and opts["padding_mode"] in bound.note
        tail = float(np.sqrt(np.sum(ref[n_heads:] ** 2)))
        assert bound.total == pytest.approx(tail, rel=1e-9, abs=64 * EPS * ref[0])
        assert (bound.total > 1e-9 * ref[0]) is (n_heads < rank_g)
        if 1 <= n_heads < rank_g:
            for _ in range(3):
                err = _least_squares_error(rng, cfg, w, size, n_heads)
                assert err >= bound.total * (1 - 1e-9)


@given(cfg=conv_configs(ndim=(1, 2), max_channels=3), data=st.data())
def test_bound_is_attained_by_signed_combinations_of_shifts(cfg, data):
    """Eckart–Young's minimiser: ``P_h = Σ_Δ (F^{-T} a_h)_Δ S_Δ``, ``M_h = σ_h mat(v_h)`` attains it."""
    size, w, opts = _draw_instance(cfg, data)
    s_mats = shift_matrices(cfg.kernel_size, size, **opts)                 # (n, n_out, n_in)
    n = s_mats.shape[0]
    gram = np.einsum("iop,jop->ij", s_mats, s_mats)
    assume(np.linalg.matrix_rank(gram) == n)
    f = np.linalg.cholesky(gram)                                            # G = F Fᵀ
    target = conv_operator(w, size, **opts)
    # U(W) with full (block-diagonal) slices, from the operator: R = S U, so U = S⁺ R
    u = np.linalg.lstsq(s_mats.reshape(n, -1).T, target, rcond=None)[0]    # (n, d_in·d_out)
    a, sig, vt = np.linalg.svd(f.T @ u, full_matrices=False)
    n_heads = data.draw(st.integers(0, n))
    bound = heads_lower_bound(w, n_heads, size, **opts)
    used = min(n_heads, sig.size)                                           # further heads: zero
    combos = np.linalg.solve(f.T, a[:, :used])                              # (n, used)
    p = np.einsum("ih,iop->hop", combos, s_mats)                            # P_h
    m = sig[:used, None] * vt[:used]                                        # vec(M_h)
    err = float(np.linalg.norm(p.reshape(used, target.shape[0]).T @ m - target))
    scale = float(np.linalg.norm(target))
    assert abs(err - bound.total) <= 1e-9 * max(scale, 1.0)
    if n_heads >= min_heads(w, groups=cfg.groups).lower:                    # enough heads: zero
        assert bound.total <= 1e-12 * scale
    else:
        assert bound.total > 1e-9 * scale


def _orthogonal_kernel(rng):
    """3×3 slices ``λ_Δ e_i e_jᵀ``, each on its own entry ``(i, j)``: mutually orthogonal."""
    w = np.zeros((9, 3, 3))
    for k, entry in enumerate(rng.permutation(9)):
        w[(k, *divmod(int(entry), 3))] = rng.uniform(0.5, 2.0) * rng.choice([-1.0, 1.0])
    return w.reshape(3, 3, 3, 3)


@pytest.mark.parametrize("seed", [0, 1])
def test_attention_attains_the_bound_when_slices_are_orthogonal(seed):
    """Hard attention on the best ``N_h`` shifts is the Eckart–Young minimiser, for every ``N_h``.

    With orthogonal slices ``σ_Δ = √c_Δ ‖W_Δ‖``: dropping the slices of the
    smallest ones leaves exactly the bound, and the Gaussian mean squared error
    of the attention layer estimates it.
    """
    rng = np.random.default_rng(seed)
    w = _orthogonal_kernel(rng)
    flat = w.reshape(9, -1)
    assert np.allclose(flat @ flat.T, np.diag((flat**2).sum(1)))           # orthogonal slices
    size = (5, 6)
    target = conv_operator(w, size)
    n_in = math.prod(size)
    basis = np.eye(n_in * 3).reshape((n_in * 3,) + size + (3,))
    for n_heads in range(1, 10):
        bound = heads_lower_bound(w, n_heads, size)
        order = np.argsort(-bound.counts * (flat**2).sum(1), kind="stable")   # σ_Δ² = c_Δ‖W_Δ‖²
        kept = np.zeros_like(flat)
        kept[order[:n_heads]] = flat[order[:n_heads]]
        layer = conv_to_mhsa(kept.reshape(w.shape), alpha=math.inf, drop_zero_heads=True)
        assert layer.n_heads == n_heads
        got = layer(basis).reshape(n_in, 3, -1, 3).transpose(2, 0, 1, 3).reshape(target.shape)
        err = float(np.linalg.norm(got - target))
        assert err == pytest.approx(bound.total, rel=1e-12, abs=1e-12)
    # the bound is the root expected squared error for i.i.d. standard normal inputs
    bound = heads_lower_bound(w, 4, size)
    order = np.argsort(-bound.counts * (flat**2).sum(1), kind="stable")
    kept = np.zeros_like(flat)
    kept[order[:4]] = flat[order[:4]]
    layer = conv_to_mhsa(kept.reshape(w.shape), alpha=math.inf, drop_zero_heads=True)
    xs = rng.standard_normal((4000,) + size + (3,))
    sq = ((layer(xs) - conv(xs, w)) ** 2).reshape(len(xs), -1).sum(1)        # ‖D x‖² per sample
    d = conv_operator(kept.reshape(w.shape), size) - target                  # R[(o, p), (c, c')]
    d = d.reshape(30, 30, 3, 3).transpose(0, 3, 1, 2).reshape(90, 90)       # D[(o, c'), (p, c)]
    var = 2 * float(np.linalg.norm(d.T @ d) ** 2)                           # Var ‖Dx‖² = 2‖DᵀD‖_F²
    assert float(np.linalg.norm(d)) == pytest.approx(bound.total, rel=1e-12)
    assert abs(sq.mean() - bound.total**2) <= 6 * math.sqrt(var / len(xs))


# --------------------------------------------------------------------------- necessity: X = 0


def test_linearisation_at_zero_drops_the_content_terms():
    """The derivative at ``X = 0`` of a layer with content terms is the positional layer ``Σ_h P_h E M_h``."""
    rng = np.random.default_rng(7)
    n_heads, d_in, d_k, d_head, d_out = 3, 2, 4, 2, 3
    weights = dict(w_qry=rng.standard_normal((n_heads, d_in, d_k)),
                   w_key=rng.standard_normal((n_heads, d_in, d_k)),
                   w_key_hat=rng.standard_normal((n_heads, 3, d_k)),
                   u=rng.standard_normal((n_heads, d_k)), v=rng.standard_normal((n_heads, d_k)),
                   w_val=rng.standard_normal((n_heads, d_in, d_head)),
                   w_out=rng.standard_normal((n_heads * d_head, d_out)), b_out=rng.standard_normal(d_out))
    layer = MultiHeadSelfAttention(**weights)
    positional = MultiHeadSelfAttention(**dict(weights, w_qry=0 * weights["w_qry"],
                                               w_key=0 * weights["w_key"]))
    e = rng.standard_normal((4, 5, d_in))
    want = positional(e) - weights["b_out"]                                 # Σ_h P_h E M_h
    errs = [np.abs((layer(t * e) - layer(-t * e)) / (2 * t) - want).max() for t in (1e-2, 1e-3)]
    assert errs[1] <= errs[0] / 50                                          # O(t²): the limit is `want`
    assert errs[0] > 0                                                      # and the content terms matter


# --------------------------------------------------------------------------- dropping zero-slice heads


@given(cfg=conv_configs(ndim=(1, 2), max_channels=3), data=st.data(),
       alpha=st.sampled_from([8.0, 30.0, math.inf]))
def test_dropping_zero_slice_heads_keeps_verify_passing(cfg, data, alpha):
    x = data.draw(images(cfg))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    n = math.prod(cfg.kernel_size)
    w = rng.standard_normal((n, cfg.d_in // cfg.groups, cfg.d_out))
    w[rng.random(n) < data.draw(st.sampled_from([0.0, 0.5, 1.0]))] = 0.0
    w = w.reshape(cfg.kernel_size + w.shape[1:])
    b = rng.standard_normal(cfg.d_out)
    layer = conv_to_mhsa(w, b, alpha=alpha, drop_zero_heads=True, **conv_options(cfg))
    kept = min_heads(w, **conv_options(cfg)).nonzero
    assert layer.n_heads == max(1, int(kept.sum()))
    if kept.any():
        assert layer.kernel_indices.tolist() == np.flatnonzero(kept).tolist()
    report = check_layer(layer, x)
    assert report.holds, report
    assert_reproduces_conv(layer, x)


def test_default_keeps_every_head_and_all_zero_kernel_keeps_one():
    w = np.zeros((3, 3, 2, 2))
    assert conv_to_mhsa(w, alpha=1.0).n_heads == 9
    b = np.array([0.5, -2.0])
    layer = conv_to_mhsa(w, b, alpha=math.inf, drop_zero_heads=True)
    assert layer.n_heads == 1 and layer.shifts.tolist() == [[0, 0]] and layer.kernel_indices.tolist() == [4]
    x = np.random.default_rng(0).standard_normal((5, 4, 2))
    assert np.array_equal(layer(x), np.broadcast_to(b, (5, 4, 2)))
    assert check_layer(layer, x).holds
    even = conv_to_mhsa(np.zeros((2, 2, 1, 1)), alpha=1.0, drop_zero_heads=True)
    assert even.shifts.tolist() == [[0, 0]]                                 # shifts {0, 1}²: nearest the centre
    with pytest.raises(ParameterTypeError, match="`drop_zero_heads` must be True or False, got int 1"):
        conv_to_mhsa(w, alpha=1.0, drop_zero_heads=1)


def test_dropped_heads_certified_and_in_torch():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((3, 3, 2, 2))
    w[1] = 0.0
    w[0, 0] = 0.0
    x = rng.standard_normal((5, 5, 2))
    layer = conv_to_mhsa(w, alpha=20.0, drop_zero_heads=True, padding_mode="replicate")
    assert layer.n_heads == 5
    assert certify_layer(layer, x).holds
    torch = pytest.importorskip("torch", reason="needs the torch extra: pip install torch==2.13.0")
    from attn_expressivity import to_torch

    module = to_torch(layer, dtype=torch.float64)
    got = module(torch.as_tensor(np.moveaxis(x, -1, 0))).detach().numpy()
    want = conv(x, w, padding_mode="replicate")
    assert np.abs(np.moveaxis(got, 0, -1) - want).max() <= check_layer(layer, x).bound


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("call", "exc", "match"), [
    (lambda: heads_lower_bound(np.ones((3, 3, 1, 1)), -1, 5), ParameterValueError,
     r"`n_heads` must be >= 0, got -1"),
    (lambda: heads_lower_bound(np.ones((3, 3, 1, 1)), 2.0, 5), ParameterTypeError,
     r"`n_heads` must be an integer, got float 2.0"),
    (lambda: heads_lower_bound(np.ones((3, 3, 1, 1)), 2, (5, 5, 5)), ShapeError,
     r"`image_size` must be an int or a sequence of 2 ints"),
    (lambda: heads_lower_bound(np.ones((3, 3, 1, 1)), 2, 0), ParameterValueError,
     r"`image_size` must be >= 1, got 0"),
    (lambda: heads_lower_bound(np.ones((3, 3, 1, 1)), 2, 2, padding="valid"), ShapeError,
     r"kernel larger than the padded input"),
    (lambda: heads_lower_bound(np.ones((3, 3, 1, 1)), 2, (1, 5)), ShapeError,
     r"too small for the theorem: no output sees the shift -1 along spatial axis 0"),
    (lambda: heads_lower_bound(np.ones((3, 1, 1)), 2, 5, stide=2), ParameterTypeError,
     r"unknown convolution option\(s\) \['stide'\]"),
    (lambda: heads_lower_bound(np.ones((3, 3)), 2, 5), ShapeError, r"`weight` must have shape"),
    (lambda: heads_lower_bound(np.full((3, 1, 1), np.nan), 2, 5), Exception, r"finite"),
    (lambda: min_heads(np.ones((3, 3, 1, 1)), rank_tol=-1.0), ParameterValueError,
     r"`rank_tol` must be a finite number >= 0 or None, got -1.0"),
    (lambda: min_heads(np.ones((3, 3, 1, 3)), groups=2), ParameterValueError,
     r"`groups` \(2\) must divide"),
    (lambda: min_heads(np.ones((3, 3, 1, 1), dtype=int)), ParameterTypeError,
     r"`weight` must be a real floating-point array"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_docs_and_readme_examples_run(capsys):
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2]
    page = (root / "docs" / "lower_bound.md").read_text(encoding="utf-8")
    readme = (root / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    blocks += [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "heads_lower_bound" in b]
    assert len(blocks) == 2
    for block in blocks:
        exec(compile(block, "example", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "9 9" and lines[2].startswith("6 ") and lines[3] == "9"
    assert float(lines[1].split()[0]) > 0 and float(lines[4]) > 0


def test_demonstration_script_runs_and_respects_the_bound():
    """A short run of benchmarks/lower_bound_demo.py (the full run is minutes, out of the suite)."""
    torch = pytest.importorskip("torch", reason="needs the torch extra: pip install torch==2.13.0")
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "lower_bound_demo.py"
    spec = importlib.util.spec_from_file_location("lower_bound_demo", path)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = demo.run(n_kernels=1, steps=5, restarts=2, seed=1, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert [r["n_heads"] for r in rows] == list(range(1, 10))
    assert all(r["best"] >= r["bound"] * (1 - 1e-9) for r in rows)
    assert rows[-1]["bound"] == 0.0 and all(r["bound"] > 0 for r in rows[:-1])
    assert "| 9 |" in demo.table(rows)
