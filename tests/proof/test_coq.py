"""The Coq development: its check passes from clean, and fails on a planted Admitted, Axiom or
drifted statement. The build needs Coq with MathComp and mathcomp-analysis (system packages);
without ``coqc`` those tests skip, naming Coq. The check's own logic is tested without Coq."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import pathlib
import re
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


def _start(folder: pathlib.Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(folder / "check"), "--json", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# The drifted statement: Lemma 1 pinned with the paper's sign of Δ (q − Δ_h) instead of the
# project's convention (q + Δ_h). The proved theorem no longer matches: the build must fail.
SIGN_FLIP = ("(Htarget : forall h, q + offset (kernel_of_head h) \\in keys)",
             "(Htarget : forall h, q - offset (kernel_of_head h) \\in keys)")


@pytest.fixture(scope="session")
def coq_runs(tmp_path_factory):
    """The check of the development and of a copy with a drifted statement, run side by side.

    The clean build is kept (``runs["built"]``): a planted copy rebuilds from a copy of it
    only the files it changes and those that depend on them."""
    drifted = _copy(tmp_path_factory.mktemp("coq-drifted"))
    _plant(drifted, "Statements.v", *SIGN_FLIP)
    built = tmp_path_factory.mktemp("coq-built")
    procs = {"clean": _start(COQ_DIR, "--keep-build", str(built)), "drifted": _start(drifted)}
    runs = {}
    for key, proc in procs.items():
        out, err = proc.communicate(timeout=1500)
        runs[key] = (proc.returncode, json.loads(out), err)
    runs["built"] = built
    return runs


def _check_from_built(coq_runs, folder: pathlib.Path, tmp_path: pathlib.Path) -> dict:
    """The check of ``folder``, built on a copy of the clean build (changed files rebuilt)."""
    build = tmp_path / "build"
    shutil.copytree(coq_runs["built"], build)            # copy2: the build products keep their times
    out = subprocess.run([sys.executable, str(folder / "check"), "--json", "--keep-build", str(build)],
                         capture_output=True, text=True, timeout=900)
    report = json.loads(out.stdout)
    assert out.returncode == (0 if report["ok"] else 1)
    return report


def _make_vacuous(folder: pathlib.Path) -> None:
    """The attack of the review: a definition of a hypothesis replaced by one that is False,
    so the three lower-bound theorems are proved by ex falso; ``Statements.v`` untouched."""
    _plant(folder, "LowerBound.v", "Definition continuous_at_zero :=\n"
           "  forall h E o p, {for (0 : R), continuous (fun t : R => Att h (t *: E) o p)}.",
           "Definition continuous_at_zero := (fun _ => False) Att.")
    path = folder / "LowerBound.v"
    text = path.read_text(encoding="utf-8")
    for name in ("linearisation", "attention_needs_rank_heads", "conv1_attention_needs_rank_heads"):
        text, n = re.subn(r"(Theorem " + name + r"\b.*?)Proof\..*?Qed\.", lambda m: m.group(1) +
                          "Proof. by move=> *; exfalso; match goal with H : _ |- _ => exact: H end. Qed.",
                          text, count=1, flags=re.S)
        assert n == 1, name
    path.write_text(text, encoding="utf-8")


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
def test_every_definition_the_statements_use_is_pinned(coq_runs):
    """The audit lists what the statements depend on, as Coq elaborates them, and finds a pin
    for each: the review's unpinned definitions among them."""
    _, report, _ = coq_runs["clean"]
    table = report["definitions"]
    assert table and all(table.values()), [name for name, ok in table.items() if not ok]
    for name in ("LowerBound.continuous_at_zero", "LowerBound.mhsa", "LowerBound.convolution",
                 "LowerBound.unfold_rows", "LowerBound.shift_mx", "LowerBound.conv_tap",
                 "Layers.sqnorm", "Layers.posR", "Layers.kidx", "Layers.box_enum", "Layers.pos",
                 "Layers.image", "Lemma2.head_vec_aniso", "Lemma1.shift_of_head",
                 "Theorem1.head_kernel", "Layers.MhsaWeights", "Layers.w_qry"):
        assert table.get(name) is True, name


@NEEDS_COQ
def test_a_definition_made_vacuous_fails(coq_runs, tmp_path):
    """The review's attack: continuous_at_zero := (fun _ => False) Att makes the lower-bound
    theorems provable by ex falso; its pin in Statements.v no longer builds."""
    folder = _copy(tmp_path)
    _make_vacuous(folder)
    report = _check_from_built(coq_runs, folder, tmp_path)
    assert not report["ok"] and report["passed"] == 0
    problem = "\n".join(report["problems"])
    assert "build failed" in problem and "Statements.v" in problem and "LowerBound.v" not in problem


@NEEDS_COQ
def test_a_missing_pin_fails(coq_runs, tmp_path):
    """The same attack with the pin of continuous_at_zero removed from Statements.v: the
    audit finds the definition unpinned (the list of pins is checked, not trusted)."""
    folder = _copy(tmp_path)
    _make_vacuous(folder)
    _plant(folder, "Statements.v", """,
   erefl : LowerBound.continuous_at_zero Att =
     (forall h E o p, {for (0 : R), continuous (fun t : R => Att h (t *: E) o p)}))).""", ")).")
    report = _check_from_built(coq_runs, folder, tmp_path)
    assert not report["ok"] and report["passed"] == 0
    assert report["definitions"]["LowerBound.continuous_at_zero"] is False
    assert [p for p in report["problems"] if "not pinned" in p] == [
        "LowerBound.continuous_at_zero (definition) is used by the audited statements but not "
        "pinned in Statements.v (by erefl)"]


@NEEDS_COQ
def test_a_pin_that_names_itself_does_not_count(coq_runs, tmp_path):
    folder = _copy(tmp_path)
    _plant(folder, "Statements.v", "erefl : sqnorm x = dotr x x", "erefl : sqnorm x = sqnorm x")
    report = _check_from_built(coq_runs, folder, tmp_path)
    assert not report["ok"]
    assert "Statements.v: the pin of Layers.sqnorm names it on both sides" in report["problems"]
    assert report["definitions"]["Layers.sqnorm"] is False


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


@pytest.mark.parametrize("prefix", ["Fail ", "Succeed ", "Redirect \"out\" ", "Time ", "Timeout 5 ",
                                    "#[local] ", "Fail Fail "])
def test_a_pin_behind_another_command_does_not_count(tmp_path, prefix):
    """The review's attack: a (H : False) hypothesis added to Lemma 1 and its pin behind Fail."""
    folder = _copy(tmp_path)
    _plant(folder, "Lemma1.v", """(Honehot : forall h k, k \\in keys -> att h q k = (k == q + shift_of_head h)%:R) :""",
           """(Honehot : forall h k, k \\in keys -> att h q k = (k == q + shift_of_head h)%:R)
    (Hvacuous : False) :""")
    _plant(folder, "Statements.v", "Check (@Lemma1.lemma1 :", prefix + "Check (@Lemma1.lemma1 :")
    assert "Lemma1.lemma1" in check.unpinned(folder)
    problems = check.statement_problems(folder)
    assert len(problems) == 1 and "not a plain Check" in problems[0] and prefix.split()[0] in problems[0]
    report = check.run_check(folder, 1, None)              # refused before anything is built
    assert not report["ok"] and report["passed"] == 0 and report["build_seconds"] is None
    assert "Lemma1.lemma1 is not pinned in Statements.v" in report["problems"]


def test_statements_only_state():
    assert check.statement_problems(COQ_DIR) == [] and check.unpinned(COQ_DIR) == []
    kinds = {how for how, *_ in check.pins(COQ_DIR)}
    assert kinds == {"type", "erefl"} and len(check.pins(COQ_DIR)) > 60


@pytest.mark.parametrize("line", ['-arg "-type-in-type"', "-arg '-type-in-type'", '"-arg" "-type-in-type"',
                                  "-arg -type-in-type", '-arg "-w" -arg "-x" -arg "-impredicative-set"',
                                  "-arg -l -arg Evil.v", '-arg -set -arg "Universe Checking=no"'])
def test_a_quoted_kernel_flag_is_refused(tmp_path, line):
    folder = _copy(tmp_path)
    _plant(folder, "_CoqProject", "-Q . AttnExpressivity\n", f"-Q . AttnExpressivity\n{line}\n")
    _, _, problems = check.project_files(folder)
    assert any(p.startswith("_CoqProject: forbidden option") for p in problems), problems


def test_global_notations_and_coercions_are_refused(tmp_path):
    folder = _copy(tmp_path)
    _plant(folder, "Layers.v", "Section Vectors.", 'Notation "x +++ y" := (x + y) (at level 50).\n'
           "Local Notation \"x ++++ y\" := (x + y) (at level 50).\nSection Vectors.")
    found = check.scan_unpinnable(folder, ["Layers.v"])
    assert len(found) == 1 and found[0].startswith("Layers.v:") and "Notation" in found[0]


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
    monkeypatch.setattr(check, "pin_problems", lambda *a: ([], {}))
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
