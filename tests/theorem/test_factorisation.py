"""Head dimension, exactly: ``D_h >= rank(W_Δ)`` for every shift suffices, and is needed.

Lemma 1 needs ``W_val^(h) W_out^(h) = W_{Δ_h}``; a product through a
``D_h``-dimensional space has rank at most ``D_h``, so the smallest head
dimension is the largest rank of a kernel slice.
"""

import math
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attn_expressivity import (
    HeadDimensionError,
    ParameterTypeError,
    ParameterValueError,
    conv,
    conv_to_mhsa,
    shift_set,
)
from attn_expressivity.bounds.error import error_bound

# PyTorch notes that even kernels with padding="same" copy the input; expected here.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")


def low_rank_kernel(rng, ks, d_in, d_out, ranks):
    """A kernel whose slice at raster position h has rank ``ranks[h]`` (Gaussian factors)."""
    slices = [rng.standard_normal((d_in, r)) @ rng.standard_normal((r, d_out)) for r in ranks]
    return np.stack(slices).reshape(tuple(ks) + (d_in, d_out))


@given(
    ks=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    d_in=st.integers(1, 6), d_out=st.integers(1, 6), data=st.data(),
    seed=st.integers(0, 2**32 - 1),
)
def test_minimal_d_head_is_the_largest_slice_rank(ks, d_in, d_out, data, seed):
    rng = np.random.default_rng(seed)
    n_heads = math.prod(ks)
    ranks = data.draw(st.lists(st.integers(0, min(d_in, d_out)), min_size=n_heads, max_size=n_heads))
    w = low_rank_kernel(rng, ks, d_in, d_out, ranks)
    x = rng.standard_normal(tuple(4 if len(ks) == 3 else 6 for _ in ks) + (d_in,))
    layer = conv_to_mhsa(w, alpha=math.inf)
    need = max(ranks)
    assert layer.ranks.tolist() == ranks
    assert layer.d_head == max(1, need)
    # Lemma 1 with the smallest head: the convolution to rounding (verify's bound)
    got, want = layer(x), conv(x, w)
    assert float(np.abs(got - want).max()) <= error_bound(layer, x)["bound"]
    if need >= 2:
        h = ranks.index(need)
        shift = tuple(int(c) for c in shift_set(tuple(ks))[h])
        pattern = (re.escape(f"shift {shift!r} (head {h}) has rank {need}, got d_head = {need - 1}")
                   + f".*smallest d_head that works is {need}")
        with pytest.raises(HeadDimensionError, match=pattern):
            conv_to_mhsa(w, alpha=math.inf, d_head=need - 1)


def test_rank_is_per_group_sum_for_grouped_kernels():
    """With groups the slice W_Δ is block diagonal: its rank is the sum over groups."""
    rng = np.random.default_rng(3)
    # 2 groups, 3 -> 4 channels each; group 0 slices rank 1, group 1 slices rank 2
    g0 = np.einsum("hir,hro->hio", rng.standard_normal((9, 3, 1)), rng.standard_normal((9, 1, 4)))
    g1 = np.einsum("hir,hro->hio", rng.standard_normal((9, 3, 2)), rng.standard_normal((9, 2, 4)))
    w = np.concatenate([g0, g1], axis=-1).reshape(3, 3, 3, 8)
    layer = conv_to_mhsa(w, alpha=math.inf, groups=2)
    assert layer.ranks.tolist() == [3] * 9 and layer.d_head == 3
    x = rng.standard_normal((5, 6, 6))
    assert np.abs(layer(x) - conv(x, w, groups=2)).max() <= error_bound(layer, x)["bound"]
    with pytest.raises(HeadDimensionError, match=r"rank 3, got d_head = 2"):
        conv_to_mhsa(w, alpha=math.inf, groups=2, d_head=2)


def test_paper_construction_identity_blocks():
    """d_head='paper': d_head = d_out, W_val^(h) = W_Δh and W_out^(h) = I."""
    rng = np.random.default_rng(4)
    w, x = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((7, 6, 4))
    layer = conv_to_mhsa(w, alpha=math.inf, d_head="paper", padding_mode="circular")
    assert layer.d_head == 5
    blocks = layer.mhsa.w_out.reshape(6, 5, 5)
    np.testing.assert_array_equal(blocks, np.broadcast_to(np.eye(5), (6, 5, 5)))
    np.testing.assert_array_equal(layer.mhsa.w_val, w.reshape(6, 4, 5))
    assert np.abs(layer(x) - conv(x, w, padding_mode="circular")).max() <= error_bound(layer, x)["bound"]


@pytest.mark.parametrize("extra", [1, 3])
def test_wider_heads_than_needed_still_exact(extra):
    rng = np.random.default_rng(extra)
    w = low_rank_kernel(rng, (3,), 4, 4, [2, 1, 2])
    layer = conv_to_mhsa(w, alpha=math.inf, d_head=2 + extra)
    assert layer.d_head == 2 + extra
    x = rng.standard_normal((9, 4))
    assert np.abs(layer(x) - conv(x, w)).max() <= error_bound(layer, x)["bound"]


def test_rank_tol_drops_small_directions_and_the_bound_accounts_for_it():
    """An explicit rank tolerance: the dropped singular value shows up in the factorisation term."""
    rng = np.random.default_rng(5)
    u, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    v, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    w = np.stack([u @ np.diag([3.0, 1.0, 1e-6, 0.0]) @ v.T] * 3)          # 1-D, K = 3, rank 3
    x = rng.standard_normal((2, 8, 4))
    assert conv_to_mhsa(w, alpha=math.inf).d_head == 3
    layer = conv_to_mhsa(w, alpha=math.inf, rank_tol=1e-4)
    assert layer.d_head == 2 and layer.ranks.tolist() == [2, 2, 2]
    err = float(np.abs(layer(x) - conv(x, w)).max())
    terms = error_bound(layer, x)
    assert terms["factorisation_term"] >= 1e-6 * 0.5 and err <= terms["bound"]
    assert err > 1e-9                                         # the dropped direction is real


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"d_head": 0}, ParameterValueError, r"`d_head` must be >= 1, got 0"),
        ({"d_head": 1.5}, ParameterTypeError, r"`d_head` must be an integer, got float"),
        ({"d_head": True}, ParameterTypeError, r"`d_head` must be an integer, got bool"),
        ({"d_head": "min"}, ParameterValueError, r"None, 'paper' or an int >= 1, got 'min'"),
        ({"rank_tol": -1.0}, ParameterValueError, r"`rank_tol` must be a finite number >= 0.*-1.0"),
        ({"rank_tol": math.nan}, ParameterValueError, r"`rank_tol`.*nan"),
        ({"rank_tol": math.inf}, ParameterValueError, r"`rank_tol`.*inf"),
        ({"rank_tol": "1e-8"}, ParameterTypeError, r"`rank_tol` must be a real number.*str"),
        ({"rank_tol": True}, ParameterTypeError, r"`rank_tol`.*bool"),
    ],
)
def test_bad_d_head_and_rank_tol(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        conv_to_mhsa(np.ones((3, 3, 2, 2)), alpha=1.0, **kwargs)


def test_from_torch_minimal_d_head():
    torch = pytest.importorskip("torch", reason="needs the torch extra: pip install torch==2.13.0")
    from attn_expressivity import from_torch, to_torch
    from attn_expressivity.interop.torch import kernel_to_torch

    rng = np.random.default_rng(6)
    w = low_rank_kernel(rng, (2, 2), 3, 5, [1, 2, 1, 2])
    m = torch.nn.Conv2d(3, 5, 2, padding="same", bias=False, dtype=torch.float64)
    with torch.no_grad():
        m.weight.copy_(torch.as_tensor(kernel_to_torch(w).copy()))
    layer = from_torch(m)
    assert layer.d_head == 2
    with pytest.raises(HeadDimensionError, match=r"has rank 2, got d_head = 1"):
        from_torch(m, d_head=1)
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64)
    with torch.no_grad():
        err = float((to_torch(layer)(x) - m(x)).abs().max())
    assert err <= error_bound(layer, np.moveaxis(x.numpy(), 1, -1))["bound"]
