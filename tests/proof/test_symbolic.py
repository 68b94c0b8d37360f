"""Tests of the symbolic engine: derivations, obligation checkers (which must be able to fail),
the numeric cross-checks and the prove/derive command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

from attn_expressivity import cli, symbolic
from attn_expressivity.attention.encoding import quadratic_encoding, quadratic_head_vectors
from attn_expressivity.convolution.shifts import shift_set
from attn_expressivity.errors import ParameterTypeError, ParameterValueError
from attn_expressivity.proof import prove as prove_module


def _zero(expr) -> bool:
    return sp.expand(expr) == 0


# --------------------------------------------------------------------------- derivations


def test_isotropic_2d_reproduces_the_paper():
    der = symbolic.derive_isotropic(2)
    a = symbolic.alpha_symbol()
    d1, d2 = symbolic.centre_symbols(2)
    assert der.solvable and der.encoding_dim == 3
    paper = [-a, -a * (-2 * d1), -a * (-2 * d2)]
    assert all(_zero(x - y) for x, y in zip(der.v, paper))
    assert _zero(der.constant - a * (d1**2 + d2**2))
    assert der.residual == 0


@pytest.mark.parametrize("nd", [1, 2, 3, 4])
def test_isotropic_identity_any_dimension(nd):
    der = symbolic.derive_isotropic(nd)
    a, delta, centre = symbolic.alpha_symbol(), der.delta, symbolic.centre_symbols(nd)
    score = sum(v * r for v, r in zip(der.v, der.basis))
    target = -a * (sum((d - c) ** 2 for d, c in zip(delta, centre)) - sum(c**2 for c in centre))
    assert der.encoding_dim == nd + 1
    assert _zero(score - target)
    assert not der.constant.free_symbols & set(delta)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_anisotropic_dimension_and_identity(nd):
    der = symbolic.derive_anisotropic(nd)
    assert der.solvable and der.encoding_dim == nd * (nd + 3) // 2
    lam = symbolic.precision_symbols(nd)
    diff = sp.Matrix([d - c for d, c in zip(der.delta, symbolic.centre_symbols(nd))])
    target = (-diff.T * lam * diff / 2)[0, 0]
    assert _zero(sum(v * r for v, r in zip(der.v, der.basis)) - target - der.constant)


def test_anisotropic_2d_components():
    der = symbolic.derive_anisotropic(2)
    lam = symbolic.precision_symbols(2)
    d1, d2 = symbolic.centre_symbols(2)
    # Linear part Λ Δ, quadratic part -Λ_ii / 2 and -Λ_12 (paper's r_δ order).
    expected = [lam[0, 0] * d1 + lam[0, 1] * d2, lam[0, 1] * d1 + lam[1, 1] * d2,
                -lam[0, 0] / 2, -lam[1, 1] / 2, -lam[0, 1]]
    assert all(_zero(x - y) for x, y in zip(der.v, expected))


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_linear_encoding_has_no_solution(nd):
    der = symbolic.derive_linear(nd)
    assert der.v is None and der.constant is None and not der.solvable
    assert der.message == "no solution: the coefficient equations are inconsistent"


def test_dependent_basis_is_reported_not_unique():
    d, = symbolic.offset_symbols(1)
    a = symbolic.alpha_symbol()
    der = symbolic.derive_head_vector(-a * d**2, [d**2, 2 * d**2, d], [d])
    assert der.v is None
    assert der.message.startswith("no unique solution")


def test_engine_rejects_non_polynomials_and_non_symbols():
    d, = symbolic.offset_symbols(1)
    with pytest.raises(ParameterValueError, match="must be a polynomial in"):
        symbolic.derive_head_vector(sp.exp(d), [d], [d])
    with pytest.raises(ParameterTypeError, match="sequence of sympy Symbols"):
        symbolic.derive_head_vector(d, [d], ["x"])
    with pytest.raises(ParameterValueError, match="at least one monomial"):
        symbolic.derive_head_vector(d, [], [d])


@pytest.mark.parametrize("bad, exc, msg", [
    (0, ParameterValueError, "`ndim` must be >= 1, got 0"),
    (7, ParameterValueError, "between 1 and 6 .*got 7"),
    (2.0, ParameterTypeError, "`ndim` must be an integer, got float"),
])
def test_ndim_validation(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        symbolic.derive_isotropic(bad)
    with pytest.raises(exc, match=msg):
        symbolic.derive_anisotropic(bad)


def test_format_derivation_text():
    text = symbolic.format_derivation(symbolic.derive_isotropic(2))
    assert "v = -α · (1, -2·Δ1, -2·Δ2)" in text
    assert "c = α·(Δ1² + Δ2²)" in text
    assert "= 0  (expanded)" in text
    text = symbolic.format_derivation(symbolic.derive_linear(2))
    assert "no solution" in text and "solution      v" not in text


# --------------------------------------------------------------------------- cross-checks


def test_head_vectors_match_numeric_code():
    rng = np.random.default_rng(1)
    for nd in (1, 2, 3):
        der = symbolic.derive_isotropic(nd)
        f = sp.lambdify([symbolic.alpha_symbol(), *symbolic.centre_symbols(nd)], list(der.v))
        shifts = rng.integers(-4, 5, size=(6, nd))
        alpha = float(rng.uniform(0.5, 30))
        symbolic_v = np.array([[float(x) for x in f(alpha, *s)] for s in shifts])
        # One rounded product per entry on each side: equal within 2 eps relative.
        np.testing.assert_allclose(quadratic_head_vectors(shifts, alpha), symbolic_v,
                                   rtol=2 * np.finfo(float).eps, atol=0)
        g = sp.lambdify(list(der.delta), list(der.basis))
        np.testing.assert_array_equal(quadratic_encoding(shifts),
                                      np.array([[float(x) for x in g(*s)] for s in shifts]))


def test_anisotropic_scores_match_numpy_formula():
    rng = np.random.default_rng(2)
    der = symbolic.derive_anisotropic(2)
    lam_sym = symbolic.precision_symbols(2)
    f = sp.lambdify([*symbolic.centre_symbols(2), lam_sym[0, 0], lam_sym[0, 1], lam_sym[1, 1]],
                    [*der.v, der.constant])
    a = rng.normal(size=(2, 2))
    lam = np.linalg.inv(a @ a.T + np.eye(2))
    centre = rng.uniform(-2, 2, size=2)
    *v, c = (float(x) for x in f(*centre, lam[0, 0], lam[0, 1], lam[1, 1]))
    for delta in rng.normal(size=(5, 2)):
        r = [delta[0], delta[1], delta[0] ** 2, delta[1] ** 2, delta[0] * delta[1]]
        score = -0.5 * (delta - centre) @ lam @ (delta - centre)
        assert np.dot(v, r) == pytest.approx(score + c, rel=1e-12, abs=1e-12)


# --------------------------------------------------------------------------- checkers can fail


def test_planted_wrong_sign_in_v_fails():
    der = symbolic.derive_isotropic(2)
    a, centre = symbolic.alpha_symbol(), symbolic.centre_symbols(2)
    wrong = [der.v[0], -der.v[1], der.v[2]]  # sign error in the Δ_1 component
    target = -a * (sum((d - c) ** 2 for d, c in zip(der.delta, centre)) - sum(c**2 for c in centre))
    lhs = sum(v * r for v, r in zip(wrong, der.basis))
    ob = symbolic.identity_obligation("planted", lhs, target, claim="Lemma 2", text="wrong sign")
    done = ob.discharge()
    assert done.status == "failed" and not done.holds
    assert "expands to" in done.detail
    report = symbolic.prove([ob, symbolic.identity_obligation("true", lhs, lhs, claim="x", text="")])
    assert not report.holds and [o.name for o in report.failed] == ["planted"]


def test_matrix_identity_failure_and_shape_mismatch():
    x = sp.Symbol("x")
    bad = symbolic.identity_obligation("m", sp.Matrix([[x, 1]]), sp.Matrix([[x, 2]]), claim="c", text="")
    assert bad.discharge().status == "failed"
    shape = symbolic.identity_obligation("s", sp.Matrix([[x]]), sp.Matrix([[x, x]]), claim="c", text="")
    assert "shapes differ" in shape.discharge().detail


def test_unknown_sign_is_a_failure_not_a_pass():
    x = sp.Symbol("x", real=True)
    # x**2 - 1 may be negative: sympy answers None, which must fail the obligation.
    ob = symbolic.inequality_obligation("n", [x**2 - 1], claim="c", text="")
    assert ob.discharge().status == "failed"
    split = symbolic.inequality_obligation("s", [x**2, 1], x**2, claim="c", text="")
    assert split.discharge().detail == "the terms do not add up to the stated expression"


def test_wrong_limit_and_empty_family_and_crash_fail():
    a = symbolic.alpha_symbol()
    assert symbolic.limit_obligation("l", [(sp.exp(-a), 1)], a, claim="c", text="").discharge().status == "failed"
    empty = symbolic.exhaustive_obligation("e", bool, [], claim="c", text="", statement=sp.true)
    assert empty.discharge().status == "failed"
    crash = symbolic.Obligation("z", "c", "", sp.true, "m", lambda: 1 / 0)
    done = crash.discharge()
    assert done.status == "error" and "ZeroDivisionError" in done.detail and not done.holds


def test_paper_obligations_cover_the_argument():
    names = {o.name for o in symbolic.paper_obligations()}
    for required in ["lemma2.identity.D1", "lemma2.identity.D2", "lemma2.identity.D3",
                     "lemma2.paper_form.D2", "lemma2.linear_encoding_fails.D2",
                     "anisotropic.identity.D2", "concentration.limit.D2.K3",
                     "concentration.bound.D2.K3", "leak.lattice.symbolic", "leak.lattice.exhaustive",
                     "leak.factorisation", "leak.domination", "lemma1.D1.K2", "lemma1.D2.K3",
                     "lemma1.shift_bijection", "lemma2.numeric_head_vectors"]:
        assert required in names
    assert all(o.status == "pending" for o in symbolic.paper_obligations(["Lemma 1"]))
    with pytest.raises(ParameterValueError, match="unknown claim"):
        symbolic.paper_obligations(["Lemma 3"])


def test_lemma1_obligation_fails_with_the_wrong_sign_convention(monkeypatch):
    """If heads looked at q − Δ instead of q + Δ the Lemma 1 identity must fail."""
    from attn_expressivity.proof import catalogue

    monkeypatch.setattr(catalogue, "shift_set", lambda *a, **k: -shift_set(*a, **k))
    mirrored = catalogue._lemma1(1, 3, 1, 1, 2).discharge()  # keys inside, wrong kernel slices
    assert mirrored.status == "failed" and "do not expand to 0" in mirrored.detail
    outside = catalogue._lemma1(1, 2, 1, 1, 2).discharge()  # shift -1 leaves the padded image
    assert outside.status == "failed" and "points outside" in outside.detail


# --------------------------------------------------------------------------- command line


def _demo(ok: bool) -> list[symbolic.Obligation]:
    x = sp.Symbol("x")
    rhs = x**2 + 2 * x + 1 if ok else x**2 + 1
    return [symbolic.identity_obligation("demo.square", (x + 1) ** 2, rhs, claim="Lemma 2", text="demo")]


def test_cli_prove_reports_a_failure(monkeypatch, capsys):
    monkeypatch.setattr(prove_module, "paper_obligations", lambda claims=None: _demo(False))
    assert cli.main(["prove"]) == 1
    out = capsys.readouterr().out
    assert "demo.square" in out and "failed" in out


def test_cli_prove_json_markdown_latex(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(prove_module, "paper_obligations", lambda claims=None: _demo(True))
    md, tex = tmp_path / "d.md", tmp_path / "d.tex"
    assert cli.main(["prove", "--json", "--markdown", str(md), "--latex", str(tex)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["holds"] is True and data["obligations"][0]["status"] == "proved"
    assert "| demo.square | Lemma 2 | proved | - | not mechanised | expansion to zero |" in md.read_text()
    assert "\\begin{document}" in tex.read_text() and "\\Delta_{1}" in tex.read_text()


def test_cli_derive(capsys):
    assert cli.main(["derive", "--ndim", "2"]) == 0
    out = capsys.readouterr().out
    assert "v = -α · (1, -2·Δ1, -2·Δ2)" in out and "c = α·(Δ1² + Δ2²)" in out
    assert cli.main(["derive", "--ndim", "2", "--anisotropic"]) == 0
    out = capsys.readouterr().out
    assert "D_p = 5" in out and "v = (Δ1·Λ11 + Δ2·Λ12, Δ1·Λ12 + Δ2·Λ22, -Λ11/2, -Λ22/2, -Λ12)" in out
    assert cli.main(["derive", "--ndim", "1", "--linear"]) == 0
    assert "no solution" in capsys.readouterr().out


def test_cli_derive_bad_usage(capsys):
    assert cli.main(["derive", "--ndim", "0"]) == 2
    assert capsys.readouterr().err.strip() == "attn-expressivity: error: `ndim` must be >= 1, got 0"
    assert cli.main(["derive", "--anisotropic", "--linear"]) == 2
    assert cli.main(["prove", "--claim", "Lemma 9"]) == 2


def test_import_does_not_load_sympy():
    code = "import sys, attn_expressivity; print('sympy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
