"""The Coq development of the lower bound, ``proofs/coq/LowerBound.v``: it compiles alone and its
theorems depend on no axiom (the rank bound) or only on mathcomp-analysis' classical ones.

Skipped without Coq (``coqc``) and the MathComp libraries it imports; compiled in a
temporary folder, so nothing is written next to the source.
"""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess

import pytest

SOURCE = pathlib.Path(__file__).resolve().parents[2] / "proofs" / "coq" / "LowerBound.v"

#: The axioms of mathcomp-analysis' classical layer (``boolp``): the only ones allowed.
ALLOWED = {"propositional_extensionality", "functional_extensionality_dep",
           "constructive_indefinite_description"}
#: Theorems that must be closed under the global context (no axiom at all).
CLOSED = ("heads_ge_rank", "unfold_rows_free", "shift_mx_free", "conv_tap_inj")
#: Theorems that may use the allowed axioms (they go through real analysis).
ANALYTIC = ("linearisation", "attention_needs_rank_heads", "conv1_attention_needs_rank_heads")


def _coq_with_mathcomp() -> str:
    coqc = shutil.which("coqc")
    if coqc is None:
        pytest.skip("needs Coq (coqc 8.16) with MathComp and mathcomp-analysis")
    where = subprocess.run([coqc, "-where"], capture_output=True, text=True, check=True).stdout.strip()
    contrib = pathlib.Path(where) / "user-contrib" / "mathcomp"
    if not (contrib / "algebra").is_dir() or not (contrib / "analysis").is_dir():
        pytest.skip("needs Coq's MathComp and mathcomp-analysis libraries (user-contrib/mathcomp)")
    return coqc


def test_no_admitted_or_axiom_in_the_source():
    text = SOURCE.read_text(encoding="utf-8")
    code = re.sub(r"\(\*.*?\*\)", "", text, flags=re.S)                 # comments may name them
    for word in ("Admitted", "admit", "Axiom", "Axioms", "Parameter", "Parameters", "Conjecture",
                 "Hypothesis", "Hypotheses"):
        assert not re.search(rf"\b{word}\b", code), word


@pytest.fixture(scope="module")
def assumptions(tmp_path_factory):
    coqc = _coq_with_mathcomp()
    work = tmp_path_factory.mktemp("coq")
    shutil.copy(SOURCE, work / "LowerBound.v")
    flags = ["-w", "-notation-overridden,-ambiguous-paths", "-Q", str(work), ""]
    built = subprocess.run([coqc, *flags, "LowerBound.v"], cwd=work, capture_output=True, text=True,
                           timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    names = CLOSED + ANALYTIC
    (work / "Audit.v").write_text("Require Import LowerBound.\n" + "".join(
        f"Print Assumptions {n}.\n" for n in names), encoding="utf-8")
    audit = subprocess.run([coqc, *flags, "Audit.v"], cwd=work, capture_output=True, text=True,
                           timeout=600)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    # each Print Assumptions answers one block, which starts with one of these two lines
    blocks = re.split(r"^(?=Closed under the global context|Axioms:)", audit.stdout, flags=re.M)
    blocks = [b for b in blocks if b.strip()]
    assert len(blocks) == len(names), audit.stdout
    return dict(zip(names, blocks))


@pytest.mark.parametrize("name", CLOSED)
def test_rank_bound_uses_no_axiom(assumptions, name):
    assert "Closed under the global context" in assumptions[name], assumptions[name]


@pytest.mark.parametrize("name", ANALYTIC)
def test_linearisation_uses_only_the_classical_axioms_of_mathcomp_analysis(assumptions, name):
    block = assumptions[name]
    if "Closed under the global context" in block:
        return
    used = {m.group(1).split(".")[-1] for m in re.finditer(r"^(\S+) :", block, flags=re.M)}
    assert "Axioms:" in block and used and used <= ALLOWED, block
