"""A torch.nn.MultiheadAttention with an additive positional mask is read like the package's layers."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the torch extra: pip install torch==2.13.0")

from attn_expressivity import (  # noqa: E402
    ParameterTypeError,
    ParameterValueError,
    ShapeError,
    analyse_attention,
    conv,
)
from attn_expressivity.analysis import attention_maps_of  # noqa: E402

GRID = (5, 6)


def _mask(centres, alpha):
    pos = np.indices(GRID).reshape(2, -1).T
    rel = pos[None, :, :] - pos[:, None, :]                               # δ = k − q
    return np.stack([-alpha * ((rel - np.array(c)) ** 2).sum(-1) for c in centres])


def _module(content, seed=0):
    torch.manual_seed(seed)
    m = torch.nn.MultiheadAttention(6, 3, batch_first=True).double()
    if not content:
        with torch.no_grad():
            m.in_proj_weight[:12] = 0.0
            m.in_proj_bias[:12] = 0.0
    return m


def test_positional_mask_reads_back_and_the_distance_uses_the_module():
    centres = [(1, 0), (0, -1), (-1, 1)]
    m = _module(content=False)
    x = np.random.default_rng(0).standard_normal((2,) + GRID + (6,))
    report = analyse_attention(m, mask=torch.tensor(_mask(centres, 6.0)), x=x)
    np.testing.assert_allclose(report.centres, centres, atol=1e-9)
    np.testing.assert_allclose(report.alphas, 6.0, rtol=1e-9)
    assert report.shift_set["kernel_size"] == [3, 3] and not report.shift_set["is_shift_set"]
    assert (report.mass_min >= 1 - report.leak_bounds).all()
    # the distance is against the convolution with W_Δh = W_val^(h) W_out^(h) and the value bias folded in
    with torch.no_grad():
        y, _ = m(*(torch.tensor(x.reshape(2, -1, 6)),) * 3, attn_mask=torch.tensor(_mask(centres, 6.0)).repeat(2, 1, 1))
    ref = conv(x, report.kernel, report.bias, padding="valid")
    expected = np.abs(y.numpy().reshape(x.shape)[:, 1:-1, 1:-1] - ref).max()
    assert report.distance == pytest.approx(expected, rel=1e-12)
    assert report.bound is None and "package" in report.bound_reason


def test_weights_agree_with_the_module_own_weights_with_content():
    m = _module(content=True, seed=1)
    mask = _mask([(0, 1), (1, 1), (0, 0)], 0.7)
    x = np.random.default_rng(1).standard_normal(GRID + (6,))
    with torch.no_grad():
        tokens = torch.tensor(x.reshape(1, -1, 6))
        _, w = m(tokens, tokens, tokens, attn_mask=torch.tensor(mask), need_weights=True, average_attn_weights=False)
    for q in [(0, 0), (2, 3), (4, 5)]:
        ours = attention_maps_of(m, q, mask=mask, x=x)                    # (H, *GRID)
        theirs = w[0, :, int(np.ravel_multi_index(q, GRID))].numpy().reshape((3,) + GRID)
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-14)
    report = analyse_attention(m, mask=mask, x=x)
    assert report.content_dependent and report.n_inputs == 1


def test_bad_masks():
    m = _module(content=False)
    with pytest.raises(ShapeError, match=r"`mask` must have shape \(n, n\) or \(n_heads, n, n\)"):
        analyse_attention(m, mask=np.zeros((2, 30, 30)))
    with pytest.raises(ShapeError, match="30 tokens do not form a square grid"):
        analyse_attention(m, mask=np.zeros((30, 30)))
    with pytest.raises(ShapeError, match=r"`grid` \(4, 4\) holds 16 tokens"):
        analyse_attention(m, mask=np.zeros((30, 30)), grid=(4, 4))
    with pytest.raises(ParameterTypeError, match="boolean mask"):
        analyse_attention(m, mask=torch.zeros(30, 30, dtype=torch.bool), grid=GRID)
    with pytest.raises(ParameterValueError, match="positional `mask`"):
        analyse_attention(m, grid=GRID)
    assert analyse_attention(m, mask=np.zeros((30, 30)), grid=GRID).grid == GRID
