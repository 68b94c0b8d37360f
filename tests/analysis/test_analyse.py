"""analyse_attention reads constructed layers back exactly, in any head order and for real centres."""

import math

import numpy as np
import pytest

from attn_expressivity import (
    MultiHeadSelfAttention,
    ParameterTypeError,
    ParameterValueError,
    ShapeError,
    analyse_attention,
    centres_to_mhsa,
    conv,
    conv_to_mhsa,
    leak_bound,
    quadratic_head_vectors,
    shift_set,
)
from attn_expressivity.analysis import (
    attention_maps_of,
    forms_from_coefficients,
    read_forms,
    shift_grid,
)


def _permuted(layer, perm):
    """The same heads as ``layer.mhsa``, listed in the order ``perm``."""
    m = layer.mhsa
    w_out = m.w_out.reshape(m.n_heads, m.d_head, m.d_out)[perm].reshape(-1, m.d_out)
    return MultiHeadSelfAttention(m.w_qry[perm], m.w_key[perm], m.w_key_hat[perm], m.u[perm], m.v[perm],
                                  m.w_val[perm], w_out, m.b_out)


@pytest.mark.parametrize(("kernel_size", "dilation"), [(3, 1), (3, 2), ((2, 3), 1), ((1, 4), (1, 2))])
def test_constructed_layer_reads_back_exactly_in_any_head_order(kernel_size, dilation):
    rng = np.random.default_rng(7)
    ks = (kernel_size,) * 2 if isinstance(kernel_size, int) else kernel_size
    weight, bias = rng.standard_normal(ks + (2, 3)), rng.standard_normal(3)
    layer = conv_to_mhsa(weight, bias, alpha=24.0, dilation=dilation)
    perm = rng.permutation(layer.n_heads)
    x = rng.standard_normal((2, 11, 13, 2))
    report = analyse_attention(_permuted(layer, perm), x=x)
    np.testing.assert_array_equal(report.centres, shift_set(ks, dilation=dilation)[perm])
    np.testing.assert_array_equal(report.alphas, 24.0)
    assert report.isotropic.all() and report.centre_source == ["quadratic"] * layer.n_heads
    grid = report.shift_set
    assert grid["kernel_size"] == list(ks) and grid["is_shift_set"]
    assert grid["kernel_index"] == perm.tolist() and grid["raster_order"] == (perm == np.arange(len(perm))).all()
    # Lemma 1 read backwards gives the convolution back, and the layer is within the bound of it
    np.testing.assert_allclose(report.kernel, weight, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(report.bias, bias)
    assert report.bound is not None and report.holds
    # the certified leak bound is a bound on the measured mass, for every query
    assert (report.mass_min >= 1 - report.leak_bounds).all()
    assert all(t is None for t in report.ties)


def test_distance_is_measured_against_an_independent_convolution():
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((3, 3, 2, 2))
    x = rng.standard_normal((9, 8, 2))
    for alpha in (2.0, 8.0, 30.0):
        report = analyse_attention(conv_to_mhsa(weight, alpha=alpha), x=x)
        valid = conv_to_mhsa(weight, alpha=alpha, padding="valid")(x)
        expected = float(np.abs(valid - conv(x, weight, padding="valid")).max())
        assert report.distance == pytest.approx(expected, rel=1e-12, abs=1e-300)
        assert report.distance <= report.bound
    # the distance shrinks with alpha like the leak
    d = [analyse_attention(conv_to_mhsa(weight, alpha=a), x=x).distance for a in (2.0, 8.0)]
    assert d[1] < d[0] * 1e-2


def test_half_integer_centres_are_ties_with_equal_weights():
    rng = np.random.default_rng(0)
    centres = np.array([[0.5, 0.0], [-0.5, 1.5], [1.0, -1.0]])
    alphas = np.array([9.0, 6.0, 12.0])
    layer = centres_to_mhsa(centres, alphas, rng.standard_normal((3, 2, 2)), rng.standard_normal((6, 2)))
    report = analyse_attention(layer, x=rng.standard_normal((9, 9, 2)))
    np.testing.assert_array_equal(report.centres, centres)
    np.testing.assert_array_equal(report.alphas, alphas)
    two, four, none = report.ties
    assert none is None
    assert two["n_keys"] == 2 and sorted(map(tuple, two["offsets"])) == [(0, 0), (1, 0)]
    assert four["n_keys"] == 4 and sorted(map(tuple, four["offsets"])) == [(-1, 1), (-1, 2), (0, 1), (0, 2)]
    np.testing.assert_allclose(four["weights"], four["weights"][0], rtol=1e-14)
    np.testing.assert_allclose(two["weights"][0], two["weights"][1], rtol=1e-14)
    # a half-integer head is no shift: no a-priori bound, and the reason is given
    assert report.bound is None and "integer" in report.bound_reason + str(report.shift_set)


def test_four_way_tie_and_hard_attention_average_equally():
    layer = centres_to_mhsa(np.array([[0.5, 0.5]]), math.inf, np.ones((1, 1, 1)), np.ones((1, 1)))
    x = np.arange(25.0).reshape(5, 5, 1)
    report = analyse_attention(layer, grid=(5, 5))
    assert report.ties[0]["n_keys"] == 4
    np.testing.assert_array_equal(report.ties[0]["weights"], 0.25)
    # hard attention on the four pixels q, q+(0,1), q+(1,0), q+(1,1): their mean
    y = layer(x)[:-1, :-1, 0]
    np.testing.assert_allclose(y, (x[:-1, :-1, 0] + x[:-1, 1:, 0] + x[1:, :-1, 0] + x[1:, 1:, 0]) / 4, rtol=1e-15)


def test_convit_projection_reads_back_as_centres_and_width():
    # ConViT's pos_proj: scores = W (δ_x, δ_y, ‖δ‖²) with W = α (2Δ_x, 2Δ_y, −1), x = column, y = row
    rng = np.random.default_rng(1)
    delta = shift_set(3)[rng.permutation(9)].astype(float)           # (row, column)
    alpha = rng.uniform(0.5, 8.0, size=9)
    weight = alpha[:, None] * np.stack([2 * delta[:, 1], 2 * delta[:, 0], -np.ones(9)], axis=1)
    report = analyse_attention(weight, components=("x", "y", "sq"), grid=(7, 7))
    np.testing.assert_allclose(report.centres, delta, rtol=0, atol=1e-15)
    np.testing.assert_allclose(report.alphas, alpha, rtol=1e-15)
    # the same heads with the columns in another order, and the package's encoding order
    other = analyse_attention(weight[:, [2, 1, 0]], components=("sq", "d0", "d1")[:1] + ("y", "x"), grid=(7, 7))
    np.testing.assert_allclose(other.centres, delta, rtol=0, atol=1e-15)
    v = quadratic_head_vectors(delta, alpha)                          # (−α, 2αΔ_0, 2αΔ_1)
    np.testing.assert_allclose(analyse_attention(v, grid=(7, 7)).centres, delta, rtol=0, atol=1e-15)


def test_one_hot_head_distance_entropy_and_mass():
    layer = centres_to_mhsa(np.array([[0, 1]]), math.inf, np.ones((1, 1, 1)), np.ones((1, 1)))
    report = analyse_attention(layer, grid=(5, 5))
    # 20 queries look one pixel right; the 5 of the last column look at themselves
    assert report.mean_distance[0] == pytest.approx(0.8, rel=1e-15)
    assert report.entropy[0] == 0.0
    assert report.mass[0] == 1.0 and report.leak_bounds[0] == 0.0


def test_anisotropic_heads_read_their_centre_and_smallest_width():
    # score −(δ − Δ)ᵀ P (δ − Δ): the generalised encoding (δ, δ², δ0δ1), coefficients c
    P = np.array([[3.0, 1.0], [1.0, 2.0]])
    centre = np.array([0.25, -1.0])
    b = 2 * P @ centre
    c = np.array([b[0], b[1], -P[0, 0], -P[1, 1], -2 * P[0, 1]])
    layer = MultiHeadSelfAttention(np.zeros((1, 1, 5)), np.zeros((1, 1, 5)), np.eye(5)[None], np.zeros((1, 5)),
                                   c[None], np.ones((1, 1, 1)), np.ones((1, 1)), np.zeros(1), encoding="anisotropic")
    report = analyse_attention(layer, grid=(6, 6))
    np.testing.assert_allclose(report.centres[0], centre, rtol=1e-14)
    assert report.alphas[0] == pytest.approx(np.linalg.eigvalsh(P)[0], rel=1e-14)
    assert not report.isotropic[0]


def test_content_heads_need_inputs_and_their_weights_reproduce_the_layer():
    rng = np.random.default_rng(5)
    H, d_in, d_k = 2, 3, 4
    layer = MultiHeadSelfAttention(rng.standard_normal((H, d_in, d_k)), rng.standard_normal((H, d_in, d_k)),
                                   rng.standard_normal((H, 3, d_k)), rng.standard_normal((H, d_k)),
                                   rng.standard_normal((H, d_k)), rng.standard_normal((H, d_in, 2)),
                                   rng.standard_normal((2 * H, 3)), rng.standard_normal(3))
    x = rng.standard_normal((5, 7, d_in))
    with pytest.raises(ParameterValueError, match="pass inputs `x`"):
        analyse_attention(layer, grid=(5, 7))
    report = analyse_attention(layer, x=x)
    assert report.content_dependent and report.n_inputs == 1 and report.ties == [None, None]
    # the weights the analysis computes, applied to the values, give the layer's own output
    w_out = layer.w_out.reshape(H, 2, 3)
    for q in [(0, 0), (2, 3), (4, 6)]:
        p = attention_maps_of(layer, q, x=x)                          # (H, 5, 7)
        y = sum(np.einsum("ij,ijc->c", p[h], x) @ layer.w_val[h] @ w_out[h] for h in range(H)) + layer.b_out
        np.testing.assert_allclose(y, layer(x, path="dense")[q], rtol=1e-12, atol=1e-12)


def test_shift_grid_finds_kernel_dilation_and_order():
    g = shift_grid(np.array([[-1], [1]]))
    assert g["kernel_size"] == [2] and g["dilation"] == [2] and g["is_shift_set"]
    g = shift_grid(np.array([[0, 0], [0, 0], [1, 1]]))
    assert not g["is_shift_set"] and g["shared"] == [[0, 0]] and [0, 1] in g["missing"]


def test_read_forms_reads_lemma2_coefficients_back():
    for alpha in (0.1, 3.0, 1e6):
        forms, _ = forms_from_coefficients(quadratic_head_vectors(shift_set(5), alpha), ["sq", "d0", "d1"])
        read = read_forms(forms)
        np.testing.assert_array_equal(read["centres"], shift_set(5))
        np.testing.assert_array_equal(read["alphas"], alpha)
    forms, _ = forms_from_coefficients(np.array([[-2.0, 4.0 * (1 + 1e-12), 0.0]]), ["sq", "d0", "d1"])
    assert read_forms(forms)["centres"][0, 0] == pytest.approx(1.0, rel=1e-11)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_apriori_bound_applies_to_every_stored_alpha_of_the_construction(dtype):
    # conv_to_mhsa stores fl(-α) and fl(fl64(2αΔ)), each rounded once from the exact α: the
    # stored centre is off Δ by that rounding, which the reading must accept (it refused 3 in 30
    # float32 and 6 in 30 float16 layers), and the bound, read at the stored α, must still hold
    rng = np.random.default_rng(20200427)
    for alpha in rng.uniform(1.0, 100.0, 30):
        weight = rng.standard_normal((4, 2, 2)).astype(dtype)         # shifts -3, -1, 1, 3
        layer = conv_to_mhsa(weight, alpha=float(alpha), dilation=2)
        report = analyse_attention(layer, x=rng.standard_normal((12, 2)).astype(dtype))
        assert report.bound is not None, (alpha, report.bound_reason)
        assert report.distance <= report.bound, alpha
        np.testing.assert_array_equal(report.alphas, np.float64(dtype(-alpha)) * -1)   # the stored α
    weight = rng.standard_normal((3, 3, 2, 2)).astype(dtype)
    for alpha in rng.uniform(1.0, 40.0, 10):
        layer = conv_to_mhsa(weight, alpha=float(alpha), dilation=(1, 2))
        report = analyse_attention(layer, x=rng.standard_normal((8, 9, 2)).astype(dtype))
        assert report.bound is not None and report.holds, (alpha, report.bound_reason)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_apriori_bound_refuses_a_centre_off_its_integer_shift(dtype):
    rng = np.random.default_rng(5)
    shifts = shift_set(3).astype(np.float64)
    w_val, w_out = rng.standard_normal((9, 2, 2)).astype(dtype), rng.standard_normal((18, 2)).astype(dtype)
    x = rng.standard_normal((8, 8, 2)).astype(dtype)
    assert analyse_attention(centres_to_mhsa(shifts, 30.0, w_val, w_out), x=x).bound is not None
    for h, axis in ((0, 1), (4, 0), (8, 0)):               # a shift -1, the shift 0 and a shift 1
        moved = shifts.copy()
        moved[h, axis] += 1e-3
        report = analyse_attention(centres_to_mhsa(moved, 30.0, w_val, w_out), x=x)
        np.testing.assert_array_equal(report.nearest, shift_set(3))      # still the same shift set
        assert report.bound is None
        assert report.bound_reason.startswith(f"head {h} is not an isotropic bump on an integer offset")


def test_bad_input():
    with pytest.raises(ShapeError, match=r"12 tokens do not form a square grid"):
        pytest.importorskip("attn_expressivity.analysis.readers").grid_from_tokens(12)
    with pytest.raises(ParameterValueError, match="unknown component 'z'"):
        analyse_attention(np.ones((1, 2)), components=("z", "sq"), grid=(3, 3))
    with pytest.raises(ParameterValueError, match="need a grid"):
        analyse_attention(np.ones((1, 3)))
    with pytest.raises(ParameterTypeError, match="`layer` must be"):
        analyse_attention("layer", grid=(3, 3))
    with pytest.raises(ParameterValueError, match="must be a real number in"):
        centres_to_mhsa(np.zeros((1, 2)), -1.0, np.ones((1, 1, 1)), np.ones((1, 1)))
    with pytest.raises(ParameterValueError, match="must be a real number in"):
        quadratic_head_vectors(np.zeros((2, 2)), np.array([1.0, -0.5]))
    with pytest.raises(ShapeError, match="shape \\(3,\\)"):
        quadratic_head_vectors(np.zeros((3, 2)), np.array([1.0, 2.0]))
    with pytest.raises(ShapeError, match="`grid` must have 2 axes"):
        analyse_attention(conv_to_mhsa(np.ones((3, 3, 1, 1)), alpha=1.0), grid=(5,))


def test_real_centres_keep_integer_behaviour_and_leak_bound_applies_only_on_integers():
    ints = quadratic_head_vectors(shift_set(3), 5.0)
    np.testing.assert_array_equal(ints, quadratic_head_vectors(shift_set(3).astype(float), 5.0))
    np.testing.assert_array_equal(ints, quadratic_head_vectors(shift_set(3), np.full(9, 5.0)))
    layer = centres_to_mhsa(np.array([[0.3, 0.0]]), 20.0, np.ones((1, 1, 1)), np.ones((1, 1)))
    report = analyse_attention(layer, grid=(9, 9))
    assert report.mass[0] < 1 - leak_bound(20.0, 2)          # off-grid: the bound is not a bound on it
    assert report.grid_distance[0] == pytest.approx(0.3)


def test_statistics_do_not_depend_on_the_chunking():
    rng = np.random.default_rng(11)
    layer = centres_to_mhsa(rng.normal(0, 1.5, (4, 2)), rng.uniform(0.3, 5, 4), rng.standard_normal((4, 2, 2)),
                            rng.standard_normal((8, 2)))
    whole = analyse_attention(layer, grid=(7, 6), window=1)
    chunked = analyse_attention(layer, grid=(7, 6), window=1, memory_budget=1)     # one query at a time
    for name in ("mass", "mass_min", "mean_distance", "entropy", "window_mass"):
        np.testing.assert_allclose(getattr(chunked, name), getattr(whole, name), rtol=1e-13, err_msg=name)
