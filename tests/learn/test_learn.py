"""The learned layers: exact objective, readable by the analysis, deterministic training (torch extra)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs the learn extra: pip install 'attn-expressivity[learn]'")

from attn_expressivity import analyse_attention, conv  # noqa: E402
from attn_expressivity.learn.models import QuadraticAttention, RelativeAttention  # noqa: E402
from attn_expressivity.learn.teacher import (  # noqa: E402
    TeacherConfig,
    population_error,
    train_teacher,
)


def _linear_map(f, shape):
    """Columns of the linear part of ``f`` on inputs of ``shape`` (one-hot inputs minus the bias)."""
    n = int(np.prod(shape))
    base = f(np.zeros(shape))
    return np.stack([(f(np.eye(n)[i].reshape(shape)) - base).ravel() for i in range(n)], axis=1)


def test_population_error_is_the_exact_expected_squared_error():
    gen = torch.Generator().manual_seed(0)
    size, k, d, dil, heads = 7, 3, 2, 2, 5
    layer = QuadraticAttention(d, d, heads, d, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        layer.heads.b_out.normal_(generator=gen)
    slices = torch.randn(k * k, d, d, generator=gen, dtype=torch.float64)
    from attn_expressivity import shift_set

    shifts = shift_set(k, dilation=dil)
    margin = dil * (k - 1) // 2
    err, norm = population_error(layer, slices, shifts, size, margin)
    # E‖y − t‖² over x with i.i.d. N(0, 1) entries = ‖L_layer − L_conv‖_F² + ‖bias‖² per output
    crop = (slice(margin, size - margin),) * 2
    mhsa = layer.as_attention()
    a = _linear_map(lambda x: mhsa(x)[crop], (size, size, d))
    c = _linear_map(lambda x: conv(x, slices.numpy().reshape(k, k, d, d), dilation=dil, padding="valid"),
                    (size, size, d))
    n_int = (size - 2 * margin) ** 2
    expected = ((a - c) ** 2).sum() + n_int * float((layer.heads.b_out.detach() ** 2).sum())
    assert float(err.detach()) == pytest.approx(expected, rel=1e-12)
    assert float(norm) == pytest.approx((c ** 2).sum(), rel=1e-12)


def test_quadratic_layer_is_the_package_layer_and_reads_back_exactly():
    gen = torch.Generator().manual_seed(1)
    layer = QuadraticAttention(3, 4, 6, 2, generator=gen, dtype=torch.float64)
    x = torch.randn(2, 5, 6, 3, generator=gen, dtype=torch.float64)
    mhsa = layer.as_attention()
    np.testing.assert_allclose(layer(x).detach().numpy(), mhsa(x.numpy()), rtol=1e-12, atol=1e-12)
    report = analyse_attention(layer, grid=(5, 6))
    assert report.kind == "learned"
    np.testing.assert_allclose(report.centres, layer.centres.detach().numpy(), rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(report.alphas, layer.alphas.detach().numpy(), rtol=1e-14)


@pytest.mark.parametrize("content", [False, True])
def test_relative_layer_is_the_package_layer(content):
    gen = torch.Generator().manual_seed(2)
    layer = RelativeAttention(3, 2, 4, 2, size=(5, 4), generator=gen, content=content, init_std=1.0,
                              dtype=torch.float64)
    x = torch.randn(2, 5, 4, 3, generator=gen, dtype=torch.float64)
    np.testing.assert_allclose(layer(x).detach().numpy(), layer.as_attention()(x.numpy()), rtol=1e-12, atol=1e-12)
    report = analyse_attention(layer, x=x.numpy())
    assert report.content_dependent == content and report.centre_source[0] == "centroid"


def test_short_training_moves_the_centres_to_the_teacher_offsets():
    # criterion 1, reduced: a 3×3 dilation-2 teacher on 12×12 images, 16 heads, 300 steps
    result = train_teacher(TeacherConfig(image=12, channels=4, steps=300, record_every=300, seed=3))
    start = np.array(result["trajectory"][0])                          # (H, 2) at initialisation
    shifts = np.array(result["teacher_shifts"])
    before = np.linalg.norm(start[None] - shifts[:, None], axis=-1).min(axis=1)
    after = np.array([m["distance"] for m in result["match"]])
    assert after.mean() < 0.5 * before.mean() and after.max() < before.max()
    assert result["relative_mse"] < 0.1 * result["initial_relative_mse"]


def test_training_is_deterministic_and_agrees_across_thread_counts(monkeypatch):
    import attn_expressivity.learn.teacher as teacher

    cfg = TeacherConfig(image=10, channels=3, heads=9, steps=80, record_every=80, seed=5)
    first, again = train_teacher(cfg), train_teacher(cfg)
    tiny = float("5e-324")                      # training flushes subnormals, and stops flushing after it
    assert tiny > 0.0 and np.float64(tiny) * 2 > 0
    assert again["centres"] == first["centres"] and again["relative_mse"] == first["relative_mse"]
    threads, original = torch.get_num_threads(), torch.set_num_threads
    monkeypatch.setattr(teacher.torch, "set_num_threads", lambda n: original(2))
    try:
        two = train_teacher(cfg)
    finally:
        original(threads)
    # summation order may differ with two threads: equal to rounding, amplified by 80 steps
    np.testing.assert_allclose(two["centres"], first["centres"], rtol=0, atol=1e-8)
    assert two["relative_mse"] == pytest.approx(first["relative_mse"], rel=1e-8)


def test_eckart_young_bound_is_a_bound_on_the_trained_error():
    cfg = TeacherConfig(kernel_size=5, dilation=1, heads=4, image=10, channels=3, steps=60, seed=0)
    result = train_teacher(cfg)
    assert 0 < result["lower_bound"] <= result["relative_mse"]
