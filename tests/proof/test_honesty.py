"""The engine's words are honest: "proved" only for all values of the symbols, "checked" for
instances and numeric comparisons, every row names its Coq theorem, and the checks of the
package's numbers catch wrong implementations that a small grid would let through."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import pathlib

import numpy as np
import pytest

from attn_expressivity import symbolic
from attn_expressivity.attention import encoding
from attn_expressivity.bounds import leak
from attn_expressivity.convolution.shifts import shift_set
from attn_expressivity.proof import numeric

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load_check():
    """proofs/coq/check as a module (it is a script without a .py suffix)."""
    path = ROOT / "proofs" / "coq" / "check"
    loader = importlib.machinery.SourceFileLoader("coq_check_script", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def obligations():
    return symbolic.paper_obligations()


def test_numeric_and_finite_rows_are_checks(obligations):
    for o in obligations:
        assert o.scope, f"{o.name} does not say for which D or on which instances"
        if "numeric" in o.method or "exhaustive" in o.method:
            assert o.kind == "check", o.name
    # the instance checks of Lemma 1, concentration and Theorem 1 are checks, never proofs
    for o in obligations:
        if o.claim in ("Lemma 1", "Concentration", "Theorem 1"):
            assert o.kind == "check", o.name
    kinds = {o.name: o.kind for o in obligations}
    assert kinds["lemma2.identity.D2"] == kinds["leak.lattice.symbolic"] == "proof"
    assert kinds["leak.factorisation"] == kinds["leak.domination"] == "check"


def test_a_check_reports_checked_and_a_proof_proved(obligations):
    by_name = {o.name: o for o in obligations}
    assert by_name["lemma2.numeric_encoding"].discharge().status == "checked"
    assert by_name["lemma2.identity.D1"].discharge().status == "proved"
    with pytest.raises(ValueError, match="`kind` must be"):
        symbolic.Obligation("x", "c", "", None, "m", lambda: (True, ""), kind="maybe")


def test_lemma1_and_theorem1_rows_point_to_coq(obligations):
    for o in obligations:
        if o.claim in ("Lemma 1", "Theorem 1"):
            assert o.coq, o.name
    assert ("Lemma1.lemma1",) == next(o.coq for o in obligations if o.name == "lemma1.D2.K3")
    assert "Theorem1.theorem1" in next(o.coq for o in obligations if o.name == "theorem1.limit.D2.K2")


def test_every_coq_name_is_audited_and_pinned(obligations):
    check = _load_check()
    audited = {name for name, _, _ in check.THEOREMS}
    named = {name for o in obligations for name in o.coq}
    assert named and named <= audited, sorted(named - audited)
    assert check.unpinned(ROOT / "proofs" / "coq") == []
    files, _, problems = check.project_files(ROOT / "proofs" / "coq")
    assert problems == [] and files[-1] == "Statements.v"


def test_planted_head_vector_mutation_fails(monkeypatch):
    """quadratic_head_vectors wrong whenever |Δ| ≥ 3 (some |Δ_i| ≥ 3): a 5^D grid of centres
    cannot see it, generic points do."""
    real = encoding.quadratic_head_vectors

    def wrong_far(shifts, alpha):
        v = real(shifts, alpha)
        far = np.abs(np.asarray(shifts)).max(axis=-1) >= 3
        v[far, 1:] *= -1.0
        return v

    for nd in (1, 2, 3):                          # the old grid: every centre of a 5^D shift set
        grid = shift_set(5, ndim=nd)
        assert np.array_equal(wrong_far(grid, 1.5), real(grid, 1.5))
    monkeypatch.setattr(encoding, "quadratic_head_vectors", wrong_far)
    report = symbolic.prove(claims=["Lemma 2"])
    assert not report.holds
    assert [o.name for o in report.failed] == ["lemma2.numeric_head_vectors"]
    assert "numeric" in report.failed[0].detail and "Delta=" in report.failed[0].detail


@pytest.mark.parametrize("where", ["alpha < 0.2", "0 < alpha < 0.2"])
def test_planted_leak_mutation_fails(monkeypatch, where):
    """leak_bound halved for α < 0.2 (and, harder, only for 0 < α < 0.2: the random α find it)."""
    real = leak.leak_bound
    low = (lambda a: a < 0.2) if where == "alpha < 0.2" else (lambda a: 0 < a < 0.2)

    def halved(alpha, ndim, **kw):
        value = real(alpha, ndim, **kw)
        return value / 2 if low(alpha) else value

    monkeypatch.setattr(leak, "leak_bound", halved)
    report = symbolic.prove(claims=["Leak bound"])
    assert [o.name for o in report.failed] == ["leak.numeric_bound"]
    rng = np.random.default_rng(numeric.SEED + 2)
    assert (numeric._alphas(rng) < 0.2).sum() >= 3     # the draw does look there


def test_summary_and_table_say_proved_and_checked():
    a = symbolic.alpha_symbol()
    proof = symbolic.identity_obligation("p", a + a, 2 * a, claim="c", text="", scope="all α",
                                         coq=("Lemma2.lemma2",))
    check = symbolic.exhaustive_obligation("e", lambda n: n >= 0, range(3), claim="c", text="",
                                           statement=a, scope="n = 0, 1, 2")
    report = symbolic.prove([proof, check])
    table = report.table()
    assert "proved   all α" in table and "checked  n = 0, 1, 2" in table
    assert "Lemma2.lemma2" in table and "not mechanised" in table
    assert "2 obligations: 1 proved (for all values of their symbols), 1 checked" in table
