"""The criteria judge stored results; a missing seed or a failed threshold is a FAIL (no torch needed)."""

import numpy as np

from attn_expressivity.learn.criteria import THRESHOLDS, evaluate_criteria, neighbour_heads
from attn_expressivity.learn.report import results_markdown


def _teacher(worst, mse, window=1.0, lower=0.0):
    return {"worst_match": worst, "relative_mse": mse, "window_mass": [window] * 9, "lower_bound": lower}


def _classifier(acc, centres, alphas, dist=(1.0, 2.0, 3.0)):
    layers = [{"centres": centres, "alphas": alphas, "mean_attention_distance": d} for d in dist]
    return {"test_accuracy": acc, "layers": layers}


LOCAL = [[1.0, 0.0], [0.0, -1.05], [3.0, 3.0]]
SHARP = [3.0, 2.5, 0.4]


def _runs(**changes):
    runs = {
        "teacher_dilated": [_teacher(0.1, 1e-4)] * 5,
        "teacher_plain": [_teacher(0.8, 1e-4, window=0.99)] * 5,
        "teacher_5x5_9": [_teacher(2.0, 0.5, lower=0.4)] * 5,
        "teacher_5x5_25": [_teacher(0.8, 1e-4)] * 5,
        "quadratic": [_classifier(0.93, LOCAL, SHARP)] * 5,
        "shuffled": [_classifier(0.72, [[0.0, 0.0], [2.0, 2.0], [3.0, 0.0]], SHARP)] * 5,
    }
    runs.update(changes)
    return runs


def test_all_pass_on_results_that_meet_every_threshold():
    rows = evaluate_criteria(_runs())
    assert [r["criterion"] for r in rows] == ["1", "2", "3", "4a", "4b", "4c", "4d"]
    assert all(r["verdict"] == "PASS" for r in rows), [r for r in rows if r["verdict"] != "PASS"]


def test_each_failure_is_reported():
    cases = {
        "1": {"teacher_dilated": [_teacher(0.1, 1e-4)] * 4 + [_teacher(0.6, 1e-4)]},
        "2": {"teacher_plain": [_teacher(0.8, 1e-4, window=0.97)] * 5},
        "3": {"teacher_5x5_9": [_teacher(2.0, 0.05)] * 5},
        "4a": {"quadratic": [_classifier(0.89, LOCAL, SHARP)] * 5},
        "4b": {"shuffled": [_classifier(0.85, [[0.0, 0.0]] * 3, SHARP)] * 5},
        "4c": {"shuffled": [_classifier(0.70, LOCAL, SHARP)] * 5},
        "4d": {"quadratic": [_classifier(0.93, LOCAL, SHARP, dist=(2.0, 3.0, 2.5))] * 5},
    }
    for name, change in cases.items():
        verdicts = {r["criterion"]: r["verdict"] for r in evaluate_criteria(_runs(**change))}
        assert verdicts[name] == "FAIL", name
        assert sum(v == "FAIL" for v in verdicts.values()) == 1, (name, verdicts)


def test_fewer_than_five_seeds_cannot_pass():
    rows = evaluate_criteria(_runs(teacher_dilated=[_teacher(0.1, 1e-4)] * 4))
    assert rows[0]["verdict"] == "FAIL" and rows[0]["detail"] == "4 of 4 seeds"


def test_neighbour_heads_count_the_self_offset_apart():
    got = neighbour_heads(np.array([[0.1, 0.0], [1.2, -1.0], [1.3, 0.0], [0.9, 0.9]]), np.array([5.0, 5.0, 5.0, 1.9]))
    assert got == {"neighbour": [1], "self": [0]}
    assert THRESHOLDS["local_heads"] == 2


def test_results_markdown_has_the_table_and_the_verdicts():
    summary = {"table1": [{"model": "cnn", "label": "CNN", "seeds": 2, "accuracy": [0.9, 0.95], "mean": 0.925,
                           "std": 0.025, "paper": 0.938}],
               "criteria": evaluate_criteria(_runs()), "wall_seconds": 600.0, "load": [3.0, 4.0],
               "cpu_count": 2, "seeds": 5, "jobs": 1}
    text = results_markdown(summary, _runs())
    assert "| CNN | 92.5 % ± 2.5 (2) | 90.0, 95.0 | 93.8 % |" in text
    assert text.count("**PASS**") == 7 and "Wall time 10.0 min" in text
