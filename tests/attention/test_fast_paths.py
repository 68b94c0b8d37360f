"""The fast paths against the general dense path, on query subsets, and their memory.

The general dense path forms every score with the encoding as a callable (no
per-axis tables, no bands, no slabs, no merged products); the separable path and
the dense positional path must equal it to 1e-12 relative on every configuration,
for any subset of queries, whatever the number of worker threads and whether the
channel products are merged or not.
"""

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from attn_expressivity import MultiHeadSelfAttention, conv_to_mhsa
from attn_expressivity.attention.encoding import quadratic_encoding
from attn_expressivity.attention.separable import attend_separable, plan_separable
from attn_expressivity.testing import conv_configs, conv_options, images, kernels

REL = 1e-12


def general(mhsa):
    """The same layer with the encoding as a callable: the general dense path runs."""
    return MultiHeadSelfAttention(mhsa.w_qry, mhsa.w_key, mhsa.w_key_hat, mhsa.u, mhsa.v, mhsa.w_val,
                                  mhsa.w_out, mhsa.b_out, encoding=quadratic_encoding, ndim=mhsa.ndim,
                                  beta=mhsa.beta)


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def subset(draw_int, size):
    """A slice, a sorted index array or None for one axis."""
    kind = draw_int(0, 2)
    if kind == 0:
        return slice(draw_int(0, size - 1), None, draw_int(1, 3))
    if kind == 1:
        return np.unique([draw_int(0, size - 1) for _ in range(draw_int(1, 4))])
    return slice(None)


@given(cfg=conv_configs(max_channels=3), data=st.data(),
       alpha=st.sampled_from([0.0, 0.7, 4.0, 37.0, math.inf]))
def test_fast_paths_equal_the_general_dense_path_on_query_subsets(cfg, data, alpha):
    x = data.draw(images(cfg, max_extra=2), label="x")
    w = data.draw(kernels(cfg), label="weight")
    layer = conv_to_mhsa(w, alpha=alpha, **conv_options(cfg))
    xp = layer.pad(x)
    spatial = xp.shape[:-1]
    draw_int = lambda lo, hi: data.draw(st.integers(lo, hi))  # noqa: E731
    queries = tuple(subset(draw_int, s) for s in spatial)
    want = general(layer.mhsa)(xp, queries=queries)
    for path in ("separable", "dense"):
        got = layer.mhsa(xp, path=path, queries=queries)
        assert got.shape == want.shape and rel(got, want) <= REL, path


@pytest.mark.parametrize("merge", [True, False])
@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("kernel, image, stride", [((3, 4), (13, 11), (2, 1)), ((2, 3, 2), (6, 5, 4), (1, 2, 1))])
def test_merged_and_thin_products_and_workers_agree(merge, workers, kernel, image, stride, monkeypatch):
    """Several slabs, images and workers; in 3-D the groups merge after axes 1 and 2, added
    in place into their merged array."""
    monkeypatch.setenv("ATTN_EXPRESSIVITY_THREADS", workers)
    rng = np.random.default_rng(3)
    w = rng.standard_normal(kernel + (5, 6))
    layer = conv_to_mhsa(w, alpha=2.5, stride=stride, padding=1)
    x = layer.pad(rng.standard_normal((2,) + image + (5,)))
    m = layer.mhsa
    queries = m.query_positions(x.shape[1:-1], layer.crop(x.shape[1:-1]))
    plan = plan_separable(m, x.shape[1:-1], queries, np.dtype(np.float64), 2, merge=merge)
    plan.slab = 2                                               # several slabs, on the workers
    got = attend_separable(m, x, queries, np.dtype(np.float64), plan)
    want = general(m)(x, queries=layer.crop(x.shape[1:-1]))
    assert rel(got.reshape(want.shape), want) <= REL


def test_the_convolution_layer_computes_its_kept_queries_only():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((3, 3, 2, 2))
    layer = conv_to_mhsa(w, alpha=30.0, stride=3, padding=1)
    x = rng.standard_normal((10, 10, 2))
    full = layer.mhsa(layer.pad(x))                           # every query, then cropped
    window = layer.crop(layer.pad(x).shape[:-1])
    np.testing.assert_allclose(layer(x), full[window], rtol=REL, atol=0)
    assert layer(x).shape == (4, 4, 2)


@pytest.mark.parametrize("path", ["separable", "dense"])
@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("shape", [(10**6, 1), (1024, 1024, 1)])
def test_memory_of_a_million_pixels(path, shape, workers, monkeypatch):
    """A 10⁶-sample signal and a 1024 × 1024 image: the separable path over every query,
    the dense path (O(n) per query) from a few queries over all keys; the scratch beyond
    the arrays of the image's size stays within the memory budget. The worker count is
    fixed (by default it follows the machine's load), and the dense path's allowance is
    per worker, as ``MultiHeadSelfAttention``'s ``memory_budget`` documents."""
    monkeypatch.setenv("ATTN_EXPRESSIVITY_THREADS", str(workers))
    rng = np.random.default_rng(5)
    nd = len(shape) - 1
    w = rng.standard_normal((3,) * nd + (1, 1))
    budget = 2**23
    layer = conv_to_mhsa(w, alpha=37.0, memory_budget=budget)
    xp = layer.pad(rng.standard_normal(shape))
    queries = None if path == "separable" else tuple(np.array([0, s // 2, s - 1]) for s in xp.shape[:-1])
    layer.mhsa(xp[tuple(slice(0, 9) for _ in range(nd))], path=path)
    tracemalloc.start()
    y = layer.mhsa(xp, path=path, queries=queries)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    n = xp.size
    # the output, and on the dense path four arrays of the image's size per worker
    image_sized = 8 * n * (2 if path == "separable" else 1 + 4 * workers)
    assert np.isfinite(y).all() and peak <= budget + image_sized, (peak, budget + image_sized)
