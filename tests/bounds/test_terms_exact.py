"""Every term of the bound against exact rational arithmetic, on small instances of every path and dtype.

For a layer ``â`` as computed, ``Â`` the layer in exact arithmetic from its computed
weights, ``C_M`` the convolution with the layer's own blocks ``M_h = W_val W_out``
and bias, and ``C`` the exact convolution, the bound says

    |â − Â| <= rounding,   |Â − C_M| <= leak,   |C_M − C| <= factorisation,
    |reference − C| <= reference.

Each side is computed here with ``fractions.Fraction`` (every float is an exact
rational; nothing is rounded), element by element for the element-wise bound and
per output channel for the per-channel one, and each computed error must stay
within its term.
"""

import math
from fractions import Fraction

import numpy as np
import pytest

from attn_expressivity import conv, conv_to_mhsa
from attn_expressivity.attention.axes import axis_table
from attn_expressivity.attention.positional import dense_rows, head_weights
from attn_expressivity.bounds.elementwise import sharp_check
from attn_expressivity.bounds.error import error_bound
from attn_expressivity.theorem.heads import intended_shifts

exact = np.vectorize(lambda v: Fraction(float(v)), otypes=[object])


def exact_parts(layer, x, path, dtype):
    """``(Â, C_M, C)`` as object arrays of Fractions, shape ``(*out_spatial, d_out)``."""
    m, cfg = layer.mhsa, layer.config
    xp = layer.pad(x)
    padded = xp.shape[:-1]
    nd = len(padded)
    queries = m.query_positions(padded, layer.crop(padded))
    q_coords = np.stack(np.meshgrid(*queries, indexing="ij"), 0).reshape(nd, -1)      # (D, m)
    X = exact(xp.reshape(-1, cfg.d_in))
    dh = m.d_head
    a, b = m.axis_coefficients()
    shifts = intended_shifts(layer)
    mats = exact(np.stack([np.asarray(s) for s in _slices(layer)]))
    n_q = q_coords.shape[1]
    hat = np.empty((n_q, cfg.d_out), dtype=object)
    hat[...] = Fraction(0)
    c_m = hat.copy()
    c = hat.copy()
    for h in range(m.n_heads):
        M = exact(m.w_val[h]) @ exact(m.w_out[h * dh:(h + 1) * dh])
        Y = X @ M                                                                      # (n, d_out)
        if path == "separable":
            rows = [exact(dense_rows(axis_table(float(a[h, i]), float(b[h, i]), padded[i], queries[i],
                                                dtype, m.beta))) for i in range(nd)]
            idx = [np.searchsorted(queries[i], q_coords[i]) for i in range(nd)]
            W = np.empty((n_q, math.prod(padded)), dtype=object)
            for qi in range(n_q):
                w = rows[0][idx[0][qi]]
                for i in range(1, nd):
                    w = np.multiply.outer(w, rows[i][idx[i][qi]])
                W[qi] = w.reshape(-1)
        else:
            s = exact(head_weights(m, padded, q_coords, (a, b), dtype, h))           # (n, m)
            W = (s / s.sum(axis=0)).T
        hat += W @ Y
        target = np.ravel_multi_index(tuple(q_coords + shifts[h][:, None]), padded)
        c_m += Y[target]
        c += X[target] @ mats[h]
    b_out = exact(m.b_out)
    bias = exact(np.zeros(cfg.d_out) if layer.bias is None else layer.bias)
    shape = tuple(len(q) for q in queries) + (cfg.d_out,)
    return (hat + b_out).reshape(shape), (c_m + b_out).reshape(shape), (c + bias).reshape(shape)


def _slices(layer):
    from attn_expressivity.convolution.slices import kernel_slices

    return kernel_slices(layer.kernel.astype(np.float64), layer.config.groups)[layer.kernel_indices]


def gap(a, b):
    """``|a − b|`` entry by entry, exactly (object arrays of Fractions)."""
    return np.vectorize(lambda u, v: abs(Fraction(u) - Fraction(v)), otypes=[object])(a, b)


def within(diff, bound):
    """Every exact |difference| <= the float bound (broadcast)."""
    bound = np.broadcast_to(np.asarray(bound, dtype=np.float64), diff.shape)
    return all(d <= Fraction(float(t)) for d, t in zip(diff.ravel(), bound.ravel()))


CASES = [
    # kernel, d_in, d_out, image, options, magnitude, d_head
    ((3, 3), 2, 2, (5, 4), {}, 1.0, None),
    ((2, 3), 2, 3, (5, 5), {"stride": 2, "padding": 1, "padding_mode": "reflect"}, 1e3, None),
    ((3,), 3, 2, (9,), {"dilation": 2}, 1e-3, "paper"),
    ((3, 3), 2, 2, (4, 4), {"groups": 2}, 1.0, None),
    ((2, 2), 3, 3, (4, 4), {"padding_mode": "circular"}, 1.0, "lowrank"),
    ((3, 3), 2, 2, (4, 4), {}, 1e-150, None),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("path", ["separable", "dense"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_every_term_against_exact_arithmetic(dtype, path, case):
    kernel, d_in, d_out, image, options, mag, d_head = CASES[case]
    if dtype != np.float64 and mag != 1.0:
        mag = {np.float32: {1e-150: 1e-20, 1e3: 1e3, 1e-3: 1e-3}, np.float16: {1e-150: 1e-3, 1e3: 8.0,
                                                                                 1e-3: 0.1}}[dtype][mag]
    rng = np.random.default_rng(case)
    g = options.get("groups", 1)
    w = rng.standard_normal(kernel + (d_in // g, d_out))
    if d_head == "lowrank":                     # rank-1 slices: an SVD split with d_head = 1
        w = rng.standard_normal(kernel + (d_in // g, 1)) * rng.standard_normal(kernel + (1, d_out))
    w, x = w.astype(dtype), (rng.standard_normal(image + (d_in,)) * mag).astype(dtype)
    bias = rng.standard_normal(d_out).astype(dtype)
    alpha = 6.0 if dtype == np.float16 else 12.0
    layer = conv_to_mhsa(w, bias, alpha=alpha, d_head=None if d_head == "lowrank" else d_head, **options)
    comp = np.result_type(x, w)
    hat, c_m, c = exact_parts(layer, x, path, comp)
    # the element-wise bound (traced path, compensated or float64 reference)
    res = sharp_check(layer, x, path=path)
    assert within(gap(exact(res.output), hat), res.rounding)
    assert within(gap(hat, c_m), res.leak)
    assert within(gap(c_m, c), res.factorisation)
    # the per-channel bound of the fast path against the plain reference
    terms = error_bound(layer, x, path=path)["terms_per_channel"]
    fast = layer(x, path=path)
    assert within(gap(exact(fast), hat), terms["rounding"])        # the same tables, summed fast
    assert within(gap(hat, c_m), terms["leak"])
    assert within(gap(c_m, c), terms["factorisation"])
    ref = conv(x, w, bias, **options)
    assert within(gap(exact(ref), c), terms["reference"])
    # the reference of the element-wise check: s + c, or float64 with its bound
    err_ref = res.reference
    from attn_expressivity.convolution.accurate import conv_accurate

    acc = conv_accurate(x, w, bias, **options)
    if acc is not None:
        s, cc, _ = acc
        assert within(gap(exact(s) + exact(cc), c), err_ref)


def test_the_exact_parts_are_the_layer():
    """The oracle itself: Â is the layer to rounding and C is the reference convolution."""
    rng = np.random.default_rng(9)
    w, x, b = rng.standard_normal((3, 3, 2, 2)), rng.standard_normal((5, 5, 2)), rng.standard_normal(2)
    layer = conv_to_mhsa(w, b, alpha=10.0)
    for path in ("separable", "dense"):
        hat, _, c = exact_parts(layer, x, path, np.dtype(np.float64))
        assert np.abs(np.array(hat, dtype=float) - layer(x, path=path)).max() < 1e-13
        assert np.abs(np.array(c, dtype=float) - conv(x, w, b)).max() < 1e-13
