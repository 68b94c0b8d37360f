"""The texture data and the learn subcommand (without its extra: exit 2, one line naming it)."""

import importlib.util
import json

import numpy as np
import pytest

from attn_expressivity import cli


def test_learn_without_its_extra_names_it(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("torch", "skimage") else real(name, *a))
    assert cli.main(["learn", "teacher"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "learn extra" in err and "torch, scikit-image" in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["learn"], ["learn", "teacher", "--all", "--out", "x"], ["learn", "--all"]])
def test_learn_usage_errors(argv, capsys):
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_texture_patches_come_from_disjoint_halves():
    pytest.importorskip("skimage", reason="needs the learn extra: pip install 'attn-expressivity[learn]'")
    from attn_expressivity.learn.data import CLASSES, texture_patches

    d = texture_patches(16)
    assert d["classes"] == CLASSES == ("brick", "grass", "gravel")
    assert d["x_train"].shape == (3 * 31 * 63, 16, 16, 1) and d["x_test"].shape == (3 * 16 * 32, 16, 16, 1)
    np.testing.assert_allclose(d["x_test"].mean(axis=(1, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(d["x_test"].std(axis=(1, 2, 3)), 1, rtol=1e-6)
    assert np.bincount(d["y_test"]).tolist() == [512, 512, 512]
    perm = np.random.default_rng(0).permutation(256)
    shuffled = texture_patches(16, shuffle_pixels=perm)
    np.testing.assert_array_equal(shuffled["x_test"].reshape(-1, 256), d["x_test"].reshape(-1, 256)[:, perm])


def test_learn_teacher_runs_and_writes_json(tmp_path, capsys):
    pytest.importorskip("torch", reason="needs the learn extra: pip install 'attn-expressivity[learn]'")
    pytest.importorskip("skimage", reason="needs the learn extra: pip install 'attn-expressivity[learn]'")
    pytest.importorskip("tqdm", reason="needs the learn extra: pip install 'attn-expressivity[learn]'")
    pytest.importorskip("matplotlib", reason="needs the learn extra: pip install 'attn-expressivity[learn]'")
    assert cli.main(["learn", "teacher", "--steps", "20", "--heads", "9", "--quiet", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["config"]["steps"] == 20 and len(out["centres"]) == 9 and out["relative_mse"] > 0


def test_learn_heads_with_the_cnn_is_bad_usage(capsys):
    """A convolutional network has no heads: --heads is refused, not silently ignored."""
    assert cli.main(["learn", "classify", "--model", "cnn", "--heads", "64"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--heads 64 has no meaning with --model cnn" in err


def test_learn_cnn_report_has_no_empty_attention_line(monkeypatch, capsys):
    """The one-line report of a network without attention layers leaves the distances out."""
    for module in ("torch", "skimage", "tqdm", "matplotlib"):     # the CLI checks the whole extra first
        pytest.importorskip(module, reason="needs the learn extra: pip install 'attn-expressivity[learn]'")
    from attn_expressivity.learn import classify

    def fake(cfg, show_progress=True):
        assert cfg.model == "cnn"
        return {"network": None, "test_accuracy": 0.5, "train_accuracy": 0.75, "layers": [], "seconds": 1.0}

    monkeypatch.setattr(classify, "train_classifier", fake)
    assert cli.main(["learn", "classify", "--model", "cnn", "--quiet"]) == 0
    line = capsys.readouterr().out.strip()
    assert line == "cnn: test accuracy 0.500 (train 0.750); 1.0 s"
    assert "attention distance" not in line
