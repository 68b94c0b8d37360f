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


# finding 3: the shared per-axis tables trusted to be a softmax -------------------------------
_TABLE_USERS = ("axes", "traced", "separable", "positional")


def _patch_tables(monkeypatch, change):
    """Every reader of ``axis_table`` (the paths, the traced path and the bound) gets ``change(table)``."""
    import attn_expressivity.attention.axes as axes
    import attn_expressivity.bounds.tables as tables
    original = axes.axis_table

    def patched(*args, normalise=True, **kwargs):
        return change(original(*args, normalise=normalise, **kwargs), normalise)

    for name in _TABLE_USERS:
        module = __import__(f"attn_expressivity.attention.{name}", fromlist=["axis_table"])
        monkeypatch.setattr(module, "axis_table", patched)
    monkeypatch.setattr(tables, "axis_table", patched)


def _scale_largest(factor, normalised_rows):
    def change(table, normalise):
        if normalise != normalised_rows:
            return table
        vals = table.values.copy()
        rows = np.arange(vals.shape[0])
        top = vals.argmax(axis=1)
        vals[rows, top] *= factor
        return table._replace(values=vals)
    return change


def test_a_normalisation_bug_in_the_tables_fails(monkeypatch):
    """Each row's largest weight ×(1 + 1e-9): rows sum to 1 + 1e-9 and layer(x) is 2.4e-8 off;
    the signed leak term absorbed it exactly and all three checks used to PASS."""
    w, x, b = _instance(d_out=3, size=6)
    _patch_tables(monkeypatch, _scale_largest(1 + 1e-9, True))
    for sharp in (True, False):
        report = verify(w, x, b, alpha=30.0, sharp=sharp, path="separable")
        assert not report.holds
        assert report.table_issues and "not to 1 within the rounding" in report.table_issues[0]["reason"]
    report = verify(w, x, b, alpha=30.0, certify=True, path="separable")
    assert not report.holds
    # the float evaluation is far from the exact layer; the certificate says so, the verdict fails
    assert report.certificate.float_deviation > 1e3 * report.rounding_term
    assert report.consistency_issues and "not the layer's" in report.failures()[-1]
    # a correct layer: the deviation is rounding, within the bound plus epsilon
    monkeypatch.undo()
    good = verify(w, x, b, alpha=30.0, certify=True)
    assert good.holds and not good.consistency_issues


def test_a_target_weight_short_of_one_fails_even_when_rows_sum_to_one(monkeypatch):
    """Weight moved from the target to a neighbour keeps the row sum 1 but leaks 1e-9."""
    def change(table, normalise):
        if not normalise or table.values.shape[1] < 2:
            return table
        vals = table.values.copy()
        rows = np.arange(vals.shape[0])
        top = vals.argmax(axis=1)
        other = np.where(top > 0, top - 1, top + 1)
        vals[rows, other] += 1e-9
        vals[rows, top] -= 1e-9
        return table._replace(values=vals)
    w, x, b = _instance(d_out=3, size=6)
    _patch_tables(monkeypatch, change)
    report = verify(w, x, b, alpha=30.0, path="separable")
    assert not report.holds and report.table_issues


def test_an_exp_table_below_one_at_the_target_fails_on_the_dense_path(monkeypatch):
    """On the dense path the target's exp entry is exp(0) = 1 exactly; halving it doubles the leak."""
    w, x, b = _instance(d_out=3, size=6)
    _patch_tables(monkeypatch, _scale_largest(0.5, False))
    report = verify(w, x, b, alpha=12.0, path="dense")
    assert not report.holds
    assert any("exactly 1" in e["reason"] for e in report.table_issues)


def test_correct_tables_pass_at_small_and_large_alpha():
    """The row-sum check does not trip on a correct softmax: wide rows, every type."""
    for dtype in (np.float64, np.float32, np.float16):
        w, x, b = (a.astype(dtype) for a in _instance(size=7))
        for alpha in (0.0, 0.05, 1.0, 30.0):
            for path in ("separable", "dense"):
                if dtype == np.float16 and path == "dense":
                    continue                              # no rounding bound for float16 dense
                report = verify(w, x, b, alpha=alpha, path=path)
                assert report.holds, report.summary()


# finding 4: the SVD split's allowance ------------------------------------------------------
def _rank_one_kernel(d, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a, c = rng.standard_normal((3, 3, d, 1)), rng.standard_normal((3, 3, 1, d))
    return np.einsum("hwir,hwro->hwio", a, c).astype(dtype), rng.standard_normal((5, 5, d)).astype(dtype)


@pytest.mark.parametrize(("d", "rel"), [(64, 1e-3), (16, 1e-4)])
def test_an_edit_of_an_svd_split_block_fails(d, rel):
    """float32, rank-1 slices: the allowance was 6.7e-3 per entry (a float32-eps tolerance), so a
    w_val edit that raised the error 270x passed verify and certify."""
    w, x = _rank_one_kernel(d, np.float32)
    layer = conv_to_mhsa(w, alpha=18.0)
    assert layer.d_head == 1 and 0 < layer.allowances.max() < 1e-5
    assert check_layer(layer, x).holds and check_layer(layer, x, sharp=False).holds
    layer.mhsa.w_val[4, 0, 0] *= np.float32(1 + rel)
    report = check_layer(layer, x)
    assert not report.holds and [e["head"] for e in report.factorisation_excess] == [4]
    assert not check_layer(layer, x, sharp=False).holds
    if d == 16:
        assert not certify_layer(layer, x).holds


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_correct_svd_splits_pass(dtype):
    """Rank-1 and rank-2 slices, each type: the recorded allowance covers the split's residual."""
    rng = np.random.default_rng(3)
    for rank in (1, 2):
        a, c = rng.standard_normal((3, 3, 6, rank)), rng.standard_normal((3, 3, rank, 5))
        if dtype == np.float16:                   # exactly low rank: its rounding is float32's level
            a, c = np.round(4 * a), np.round(4 * c)
        w = np.einsum("hwir,hwro->hwio", a, c).astype(dtype)
        x = rng.standard_normal((5, 5, 6)).astype(dtype)
        layer = conv_to_mhsa(w, alpha=18.0)
        assert layer.d_head == rank
        for sharp in (True, False):
            if dtype == np.float16 and not sharp:
                continue
            report = check_layer(layer, x, sharp=sharp)
            assert report.holds and not report.factorisation_excess, report.summary()


@pytest.mark.parametrize("length", [2000, 20000])
def test_long_float16_axes_keep_their_verdict(length):
    """float16 rows of thousands of keys: Lemma E's bound does not exist (n u >= 1/2), so the
    row-sum check must neither fail (a false FAIL) nor raise."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 1, 2)).astype(np.float16)
    x = rng.standard_normal((length, 1)).astype(np.float16)
    assert verify(w, x, alpha=8.32, path="separable").holds
