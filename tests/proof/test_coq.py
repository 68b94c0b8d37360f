"""The Coq development: its check passes from clean, and fails on a planted Admitted, Axiom or
drifted statement. The build needs Coq with MathComp and mathcomp-analysis (system packages);
without ``coqc`` those tests skip, naming Coq. The check's own logic is tested without Coq."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from attn_expressivity import cli, symbolic

ROOT = pathlib.Path(__file__).resolve().parents[2]
COQ_DIR = ROOT / "proofs" / "coq"
CHECK = COQ_DIR / "check"
NEEDS_COQ = pytest.mark.skipif(
    shutil.which("coqc") is None,
    reason="needs Coq (coqc not found on PATH): apt-get install coq libcoq-mathcomp-analysis "
           "libcoq-mathcomp-algebra-tactics libcoq-mathcomp-zify")


def _load_check():
    loader = importlib.machinery.SourceFileLoader("coq_check_script", str(CHECK))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


check = _load_check()


def _copy(tmp_path: pathlib.Path) -> pathlib.Path:
    """The development's sources (no build products) in a fresh folder."""
    dest = tmp_path / "coq"
    dest.mkdir()
    for path in COQ_DIR.iterdir():
        if path.name in ("check", "_CoqProject") or path.suffix == ".v":
            shutil.copy2(path, dest / path.name)
    return dest


def _plant(folder: pathlib.Path, name: str, old: str, new: str) -> None:
    path = folder / name
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _start(folder: pathlib.Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(folder / "check"), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# The drifted statement: Lemma 1 pinned with the paper's sign of Δ (q − Δ_h) instead of the
# project's convention (q + Δ_h). The proved theorem no longer matches: the build must fail.
SIGN_FLIP = ("(Htarget : forall h, q + offset (kernel_of_head h) \\in keys)",
             "(Htarget : forall h, q - offset (kernel_of_head h) \\in keys)")


@pytest.fixture(scope="session")
def coq_runs(tmp_path_factory):
    """The check of the development and of a copy with a drifted statement, run side by side."""
    drifted = _copy(tmp_path_factory.mktemp("coq-drifted"))
    _plant(drifted, "Statements.v", *SIGN_FLIP)
    procs = {"clean": _start(COQ_DIR), "drifted": _start(drifted)}
    runs = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=1500)
        runs[key] = (proc.returncode, json.loads(out), err)
    return runs


# --------------------------------------------------------------------------- with Coq


@NEEDS_COQ
def test_check_passes_from_clean(coq_runs):
    status, report, err = coq_runs["clean"]
    assert status == 0, json.dumps(report, indent=1)[-3000:] + err
    assert report["ok"] and report["problems"] == [] and report["failed"] == 0
    assert report["passed"] == len(check.THEOREMS) >= 20
    assert report["build_seconds"] is not None
    assert [r["name"] for r in report["theorems"]] == [name for name, _, _ in check.THEOREMS]


@NEEDS_COQ
def test_lemma1_and_lemma2_are_closed_and_the_rest_on_the_allowlist(coq_runs):
    _, report, _ = coq_runs["clean"]
    rows = {r["name"]: r for r in report["theorems"]}
    for name, row in rows.items():
        if name.startswith(("Lemma1.", "Lemma2.", "Boxes.")):
            assert row["assumptions"] == [], name
    assert set(rows["Theorem1.theorem1"]["assumptions"]) == set(check.CLASSICAL)
    assert set(rows["Concentration.concentration"]["assumptions"]) == set(check.CLASSICAL)
    assert set(rows["CoqReals.theorem1_R"]["assumptions"]) <= set(check.REALS)


@NEEDS_COQ
def test_the_lower_bound_is_audited(coq_runs):
    """Issue 14's statements: the rank bound closed, the linearisation on the classical axioms."""
    _, report, _ = coq_runs["clean"]
    rows = {r["name"]: r for r in report["theorems"] if r["name"].startswith("LowerBound.")}
    assert rows["LowerBound.heads_ge_rank"]["assumptions"] == []
    assert rows["LowerBound.shift_mx_free"]["assumptions"] == []
    for name in ("linearisation", "attention_needs_rank_heads", "conv1_attention_needs_rank_heads"):
        assert set(rows[f"LowerBound.{name}"]["assumptions"]) <= set(check.CLASSICAL), name
        assert rows[f"LowerBound.{name}"]["status"] == "PASS", name


@NEEDS_COQ
def test_drifted_statement_fails_the_build(coq_runs):
    status, report, _ = coq_runs["drifted"]
    assert status == 1 and not report["ok"] and report["passed"] == 0
    problem = "\n".join(report["problems"])
    assert "build failed" in problem and "Statements.v" in problem


@NEEDS_COQ
@pytest.mark.parametrize(("name", "old", "new", "found"), [
    ("Lemma1.v", "by rewrite /conv (reindex kernel_of_head) //; apply: onW_bij.\nQed.",
     "by rewrite /conv (reindex kernel_of_head) //; apply: onW_bij.\nAdmitted.", "Admitted"),
    ("Lemma2.v", "rewrite (dotrC delta Delta); ring.", "admit.", "admit"),
    ("Layers.v", "(** ** Positions, vectors, encodings *)",
     "Axiom cheat : False.\n(** ** Positions, vectors, encodings *)", "Axiom"),
    ("Boxes.v", "Section KernelBoxFacts.", "Section KernelBoxFacts.\nHypothesis H : False.", "Hypothesis"),
])
def test_planted_escape_hatch_fails(tmp_path, name, old, new, found):
    folder = _copy(tmp_path)
    _plant(folder, name, old, new)
    out = subprocess.run([sys.executable, str(folder / "check")], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 1, out.stdout
    assert f"forbidden: {name}:" in out.stdout and found in out.stdout
    assert out.stdout.rstrip().endswith(f"0 passed, {len(check.THEOREMS)} failed")


@NEEDS_COQ
def test_unlisted_file_fails(tmp_path):
    folder = _copy(tmp_path)
    (folder / "Extra.v").write_text("Lemma t : True. Proof. exact I. Qed.\n", encoding="utf-8")
    out = subprocess.run([sys.executable, str(folder / "check")], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 1 and "Extra.v is not listed in _CoqProject" in out.stdout


# --------------------------------------------------------------------------- without Coq


def test_comments_are_not_scanned_but_code_is():
    code = check.strip_comments('(* no Admitted (* nested Axiom *) here *) Lemma x : True.\n'
                                'Proof. admit. Qed. Definition s := "Axiom".')
    assert "Admitted" not in code and "nested" not in code and "Axiom" not in code
    assert "admit." in code and code.count("\n") == 1
    assert check.FORBIDDEN.search("Hypotheses H : False.") and check.FORBIDDEN.search("Parameters x y : nat.")
    assert not check.FORBIDDEN.search("Variable HW : forall h, True.")


def test_print_assumptions_parser():
    assert check.parse_assumptions("Closed under the global context") == []
    block = ("Axioms:\nboolp.propositional_extensionality : forall P Q : Prop, P <-> Q -> P = Q\n"
             "boolp.functional_extensionality_dep\n  : forall (A : Type) (B : A -> Type),\n"
             "    True\nSection Variables:\nH : False\n")
    assert check.parse_assumptions(block) == ["boolp.propositional_extensionality",
                                              "boolp.functional_extensionality_dep",
                                              "Section Variables: H"]


def test_an_axiom_off_the_allowlist_fails(monkeypatch, tmp_path):
    """The classification itself: an extra axiom on a closed theorem makes it fail."""
    folder = _copy(tmp_path)
    monkeypatch.setattr(check, "build", lambda *a: (True, 1.0, ""))
    answers = {name: list(allowed) for name, _, allowed in check.THEOREMS}
    answers["Lemma1.lemma1"] = ["Lemma1.lemma1"]              # an Admitted proof looks like this
    monkeypatch.setattr(check, "audit", lambda *a: (answers, ""))
    report = check.run_check(folder, 1, None)
    rows = {r["name"]: r for r in report["theorems"]}
    assert rows["Lemma1.lemma1"]["status"] == "FAIL" and "not on the allowlist" in rows["Lemma1.lemma1"]["why"]
    assert report["failed"] == 1 and not report["ok"]


def test_without_coq_the_check_and_the_cli_exit_2_with_one_line(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "bin"
    empty.mkdir()
    out = subprocess.run([sys.executable, str(CHECK)], capture_output=True, text=True,
                         env={"PATH": str(empty)})
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and "Coq is not installed" in out.stderr
    monkeypatch.setenv("PATH", str(empty))
    assert cli.main(["prove", "--coq"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("attn-expressivity: error: Coq is not installed")


def test_cli_prove_coq_prints_the_table(monkeypatch, capsys):
    rows = [symbolic.CoqTheorem("Lemma1.lemma1", "Lemma 1", "PASS", "closed", (), ""),
            symbolic.CoqTheorem("Theorem1.theorem1", "Theorem 1", "FAIL", "classical",
                                ("x.y",), "not on the allowlist: x.y")]
    report = symbolic.CoqReport("proofs/coq", "8.16.1", 30.0, (), tuple(rows))
    monkeypatch.setattr(symbolic, "coq_check", lambda directory=None: report)
    assert cli.main(["prove", "--coq"]) == 1
    out = capsys.readouterr().out
    assert "PASS  Lemma1.lemma1" in out and "FAIL  Theorem1.theorem1" in out
    assert out.rstrip().endswith("1 passed, 1 failed")
    monkeypatch.setattr(symbolic, "coq_check", lambda directory=None: symbolic.CoqReport(
        "proofs/coq", "8.16.1", 30.0, (), tuple(rows[:1])))
    assert cli.main(["prove", "--coq", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["theorems"][0]["name"] == "Lemma1.lemma1"
