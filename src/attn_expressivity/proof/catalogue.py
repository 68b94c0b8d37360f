"""The catalogue of proof obligations: every step of the paper's argument.

Built by :func:`build_obligations`; the public entry points are
:func:`attn_expressivity.symbolic.paper_obligations` and
:func:`attn_expressivity.symbolic.prove`. Each builder documents, in the
obligation's ``text``, exactly what is machine-checked and what (if anything)
is only stated; its ``kind`` and ``scope`` say whether it is a proof for all
values of its symbols (for which ``D``) or a check of named instances, and
``coq`` names the theorems of ``proofs/coq`` that prove the general statement
(``docs/coq.md``).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import sympy as sp

from ..convolution.shifts import shift_set
from .derive import (
    alpha_symbol,
    anisotropic_basis,
    centre_symbols,
    derive_anisotropic,
    derive_isotropic,
    derive_linear,
    offset_symbols,
    precision_symbols,
)
from .numeric import numeric_obligations
from .obligation import (
    CHECK,
    PROOF,
    Obligation,
    exhaustive_obligation,
    identity_obligation,
    limit_obligation,
)

CLAIMS = ("Lemma 1", "Lemma 2", "Anisotropic encoding", "Concentration", "Leak bound", "Theorem 1",
          "Heads lower bound")

_SEED = 20200426  # fixed, so the numeric cross-checks are reproducible

# The Coq theorems (proofs/coq, Module.name) that prove each general statement.
COQ_LEMMA1 = ("Lemma1.lemma1",)
COQ_SHIFTS = ("Boxes.card_kidx", "Boxes.kernel_offset_inj", "Lemma1.shift_of_head_inj")
COQ_LEMMA2 = ("Lemma2.lemma2",)
COQ_LINEAR = ("Lemma2.linear_encoding_fails",)
COQ_ANISO = ("Lemma2.lemma2_aniso",)
COQ_CONCENTRATION = ("Concentration.concentration",)
COQ_LIMIT = ("Lemma2.lemma2_softmax", "Concentration.concentration", "Concentration.leak_cvg0")
COQ_LATTICE = ("Concentration.sum_gauss_box",)
COQ_THEOREM1 = ("Theorem1.theorem1_zero_pad_limit", "Theorem1.theorem1")


def _sq_norm(x: Sequence[sp.Expr]) -> sp.Expr:
    return sp.Add(*[xi**2 for xi in x])


def _dot(v: Sequence[sp.Expr], r: Sequence[sp.Expr]) -> sp.Expr:
    return sp.Add(*[a * b for a, b in zip(v, r)])


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _failing(name: str, claim: str, text: str, method: str, why: str, **scope) -> Obligation:
    """An obligation whose premise (a derivation) is missing: it fails with ``why``."""
    return Obligation(name, claim, text, sp.S.false, method, lambda: (False, why), **scope)


def _all_of(checks: Sequence[Callable[[], tuple[bool, str]]], summary: str) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        for c in checks:
            ok, detail = c()
            if ok is not True:
                return False, detail
        return True, summary
    return check


# --------------------------------------------------------------------------- Lemma 2


def _lemma2() -> list[Obligation]:
    claim, out = "Lemma 2", []
    for nd in (1, 2, 3):
        der = derive_isotropic(nd)
        delta, centre, alpha = der.delta, centre_symbols(nd), alpha_symbol()
        name = f"lemma2.identity.D{nd}"
        text = (f"D = {nd}: the v obtained by matching coefficients (r_δ = (‖δ‖², δ_1 … δ_{nd}), "
                f"D_p = {nd + 1}) satisfies vᵀr_δ = −α(‖δ − Δ‖² − ‖Δ‖²) identically in δ, Δ and α.")
        scope = dict(kind=PROOF, scope=f"D = {nd}; all δ, Δ, α", coq=COQ_LEMMA2)
        if der.v is None:
            out.append(_failing(name, claim, text, "expansion to zero", der.message, **scope))
            continue
        lhs = _dot(der.v, der.basis)
        rhs = -alpha * (_sq_norm([d - c for d, c in zip(delta, centre)]) - _sq_norm(centre))
        out.append(identity_obligation(name, lhs, rhs, claim=claim, text=text, **scope))
    der = derive_isotropic(2)
    alpha, (d1, d2) = alpha_symbol(), centre_symbols(2)
    text = ("D = 2: the derived v is the paper's v = −α(1, −2Δ_1, −2Δ_2), and the constant "
            "softmax ignores is α‖Δ‖².")
    scope = dict(kind=PROOF, scope="D = 2; all Δ, α", coq=COQ_LEMMA2)
    if der.v is None:
        out.append(_failing("lemma2.paper_form.D2", claim, text, "expansion to zero", der.message,
                            **scope))
    else:
        paper = sp.ImmutableMatrix([-alpha, -alpha * -2 * d1, -alpha * -2 * d2])
        lhs = sp.ImmutableMatrix([*der.v, der.constant])
        rhs = sp.ImmutableMatrix([*paper, alpha * (d1**2 + d2**2)])
        out.append(identity_obligation("lemma2.paper_form.D2", lhs, rhs, claim=claim, text=text,
                                       **scope))
    for nd in (1, 2):
        der = derive_linear(nd)
        v = sp.symbols(f"v_1:{nd + 1}")
        ansatz = sp.Eq(_dot(v, der.basis) + sp.Symbol("c"), der.score, evaluate=False)

        def check(der=der) -> tuple[bool, str]:
            if der.v is not None:
                return False, f"a solution was returned: {list(der.v)}"
            ok = der.message.startswith("no solution")
            return ok, der.message
        out.append(Obligation(
            f"lemma2.linear_encoding_fails.D{nd}", claim,
            f"D = {nd}, linear-only encoding r_δ = δ (D_p = {nd}): for α > 0 no v, c make "
            "vᵀr_δ + c equal −α‖δ − Δ‖² for all δ; the coefficient equations of δ_i² read 0 = −α "
            "and sympy.linsolve returns the empty set.",
            ansatz, "coefficient matching (inconsistent linear system)", check, kind=PROOF,
            scope=f"D = {nd}; all Δ, α > 0", coq=COQ_LINEAR))
    return out


# --------------------------------------------------------------------------- anisotropic


def _anisotropic() -> list[Obligation]:
    claim, out = "Anisotropic encoding", []
    for nd in (1, 2, 3):
        der = derive_anisotropic(nd)
        delta, centre, lam = der.delta, centre_symbols(nd), precision_symbols(nd)
        name = f"anisotropic.identity.D{nd}"
        text = (f"D = {nd}: with a symmetric Λ = Σ⁻¹ and r_δ the {nd} linear and "
                f"{nd * (nd + 1) // 2} quadratic monomials (D_p = {nd * (nd + 3) // 2}), the derived v "
                "satisfies vᵀr_δ = −½(δ − Δ)ᵀΛ(δ − Δ) + ½ΔᵀΛΔ identically.")
        scope = dict(kind=PROOF, scope=f"D = {nd}; all δ, Δ, symmetric Λ",
                     coq=COQ_ANISO if nd == 2 else ())
        if der.v is None:
            out.append(_failing(name, claim, text, "expansion to zero", der.message, **scope))
            continue
        diff, cen = sp.Matrix([d - c for d, c in zip(delta, centre)]), sp.Matrix(centre)
        rhs = (-sp.Rational(1, 2) * diff.T * lam * diff + sp.Rational(1, 2) * cen.T * lam * cen)[0, 0]
        out.append(identity_obligation(name, _dot(der.v, der.basis), rhs, claim=claim, text=text,
                                       **scope))

    def dimension() -> tuple[bool, str]:
        for nd in range(1, 5):
            der = derive_anisotropic(nd)
            monomials = {sp.Poly(b, *der.delta).monoms()[0] for b in der.basis}
            if der.encoding_dim != nd * (nd + 3) // 2 or len(monomials) != der.encoding_dim:
                return False, f"D={nd}: {der.encoding_dim} basis entries, {len(monomials)} distinct"
            if not der.solvable:
                return False, f"D={nd}: {der.message}"
        return True, "D = 1 … 4: D(D+3)/2 distinct monomials and a unique v with zero residual"

    D = sp.Symbol("D", integer=True, positive=True)
    out.append(Obligation(
        "anisotropic.unique_solution", claim,
        "For D = 1 … 4 the basis has D(D + 3)/2 distinct monomials (5 in 2-D) and coefficient "
        "matching has exactly one solution, with residual expanded to 0.",
        sp.Eq(sp.Symbol("D_p"), D * (D + 3) / 2), "coefficient matching, D = 1 … 4", dimension,
        kind=PROOF, scope="D = 1, 2, 3, 4; all Δ, symmetric Λ", coq=()))

    alpha = alpha_symbol()
    iso, aniso = derive_isotropic(2), derive_anisotropic(2)
    lam = precision_symbols(2)
    text = "D = 2: with Λ = 2αI the anisotropic score vᵀr_δ is the isotropic score of Lemma 2."
    scope = dict(kind=PROOF, scope="D = 2; all δ, Δ, α", coq=COQ_ANISO + COQ_LEMMA2)
    if iso.v is None or aniso.v is None:
        out.append(_failing("anisotropic.reduces_to_isotropic.D2", claim, text, "expansion to zero",
                            "a derivation failed", **scope))
    else:
        sub = {lam[0, 0]: 2 * alpha, lam[1, 1]: 2 * alpha, lam[0, 1]: 0}
        out.append(identity_obligation(
            "anisotropic.reduces_to_isotropic.D2", _dot(aniso.v, aniso.basis).subs(sub),
            _dot(iso.v, iso.basis), claim=claim, text=text, **scope))
    out.append(Obligation(
        "anisotropic.numeric_least_squares", claim,
        "D = 2, 3: for random SPD Σ and real Δ, a numpy least-squares fit of (v, c) to the "
        "score at every offset in {−2 … 2}^D agrees with the lambdified symbolic v and c "
        "within the fit's conditioning bound.",
        sp.Eq(sp.Symbol("v_lstsq"), sp.Symbol("v_symbolic")), "numeric comparison (lambdify)",
        _anisotropic_lstsq, kind=CHECK, scope=f"D = 2, 3; 3 random (Σ, Δ) each, seed {_SEED + 1}",
        coq=COQ_ANISO))
    return out


def _anisotropic_lstsq() -> tuple[bool, str]:
    rng = np.random.default_rng(_SEED + 1)
    eps = np.finfo(np.float64).eps
    for nd in (2, 3):
        der = derive_anisotropic(nd)
        lam_sym = precision_symbols(nd)
        lam_args = [lam_sym[i, j] for i in range(nd) for j in range(i, nd)]
        args = [*centre_symbols(nd), *lam_args]
        f = sp.lambdify(args, [*der.v, der.constant], "numpy")
        g = sp.lambdify(list(der.delta), list(anisotropic_basis(der.delta)), "numpy")
        offsets = np.array(list(itertools.product(range(-2, 3), repeat=nd)), dtype=float)  # (n, nd)
        for _ in range(3):
            a = rng.normal(size=(nd, nd))
            sigma = a @ a.T + nd * np.eye(nd)  # SPD
            lam = np.linalg.inv(sigma)
            lam = (lam + lam.T) / 2
            centre = rng.uniform(-2, 2, size=nd)
            diff = offsets - centre  # (n, nd)
            score = -0.5 * np.einsum("ni,ij,nj->n", diff, lam, diff)  # (n,)
            design = np.array([[float(x) for x in g(*o)] + [-1.0] for o in offsets])  # (n, D_p + 1)
            fit, *_ = np.linalg.lstsq(design, score, rcond=None)  # v·r - c = s
            lam_vals = [lam[i, j] for i in range(nd) for j in range(i, nd)]
            exact = np.array([float(x) for x in f(*centre, *lam_vals)])
            # Backward-stable least squares on a consistent system: forward error of order
            # cond(design) · eps · ‖x‖; allow a factor 100 over that.
            tol = 100 * np.linalg.cond(design) * eps * max(1.0, float(np.abs(exact).max()))
            err = float(np.abs(fit - exact).max())
            if err > tol:
                return False, f"D={nd}: least squares {fit} vs symbolic {exact} (error {err:.2e} > {tol:.2e})"
    return True, ("D = 2, 3 with 3 random (Σ, Δ) each: every fitted coefficient within "
                  "100·cond·eps·max(1, |x|) of the symbolic one")


# --------------------------------------------------------------------------- concentration


def _softmax_rows(nd: int, k: int) -> list[tuple[tuple[int, ...], list[tuple[int, ...]], list[sp.Expr]]]:
    """For each target Δ of the K^D shift set: the keys and the exact softmax of vᵀr_δ."""

    der = derive_isotropic(nd)
    if der.v is None:
        raise ValueError(der.message)
    keys = [tuple(int(x) for x in row) for row in shift_set(k, ndim=nd)]
    rows = []
    for target in keys:
        v = der.v.subs(dict(zip(centre_symbols(nd), target)))
        scores = [_dot(v, [b.subs(dict(zip(der.delta, key))) for b in der.basis]) for key in keys]
        z = sp.Add(*[sp.exp(s) for s in scores])
        rows.append((target, keys, [sp.exp(s) / z for s in scores]))
    return rows


def _concentration() -> list[Obligation]:
    claim, out = "Concentration", []
    alpha = alpha_symbol()
    for nd, k in ((1, 3), (2, 2), (2, 3)):
        rows = _softmax_rows(nd, k)
        cases = [(p, 1 if key == target else 0) for target, keys, probs in rows
                 for key, p in zip(keys, probs)]
        target, keys, probs = rows[-1]
        shown = sp.Eq(sp.Limit(probs[keys.index(target)], alpha, sp.oo), 1, evaluate=False)
        out.append(limit_obligation(
            f"concentration.limit.D{nd}.K{k}", cases, alpha, claim=claim, statement=shown,
            text=(f"D = {nd}, the {k}^{nd} keys of a K = {k} neighbourhood, every target Δ among "
                  "them: with the exact softmax of Lemma 2's scores vᵀr_δ (symbolic α), the "
                  f"target's probability tends to 1 and each of the other {k**nd - 1} to 0 as "
                  "α → ∞ (sympy.limit on each of the "
                  f"{len(cases)} expressions)."),
            kind=CHECK, scope=f"D = {nd}, K = {k}: {k**nd} targets × {k**nd} keys",
            coq=COQ_LIMIT))
    out.append(_concentration_bound(2, 3))
    return out


def _exp_to_q(expr: sp.Expr, q: sp.Symbol) -> sp.Expr:
    """Rewrite ``exp(-m α)`` (integer m) as ``q**m``; refuse anything else."""
    alpha = alpha_symbol()

    def to_q(e: sp.Expr) -> sp.Expr:
        m = sp.expand(-e.args[0] / alpha)
        if not (m.is_Integer):
            raise ValueError(f"exponent {e.args[0]} is not an integer multiple of -alpha")
        return q**m
    return expr.replace(lambda e: isinstance(e, sp.exp), to_q)


def _concentration_bound(nd: int, k: int) -> Obligation:
    alpha = alpha_symbol()
    t = sp.Symbol("t", positive=True)
    n_keys = k**nd

    def check() -> tuple[bool, str]:
        for target, keys, probs in _softmax_rows(nd, k):
            leak = 1 - probs[keys.index(target)]
            bound = (n_keys - 1) * sp.exp(-alpha)
            # α > 0  <=>  t = e^α − 1 > 0, and e^{−mα} = (1 + t)^{−m}: a rational function of t.
            gap = sp.together(_exp_to_q(sp.expand(bound - leak), 1 / (1 + t)))
            num, den = sp.fraction(gap)
            num = sp.expand(num)
            if num.is_nonnegative is not True or den.is_positive is not True:
                return False, f"target {target}: cannot show {bound} - leak >= 0 (numerator {num})"
        lim = sp.limit((n_keys - 1) * sp.exp(-alpha), alpha, sp.oo)
        if lim != 0:
            return False, f"the bound tends to {lim}, not 0"
        return True, (f"all {n_keys} targets: (N−1)e^(−α) − leak is a ratio of polynomials in "
                      "t = e^α − 1 with non-negative coefficients; the bound tends to 0")

    target, keys, probs = _softmax_rows(nd, k)[0]
    statement = sp.Le(1 - probs[keys.index(target)], (n_keys - 1) * sp.exp(-alpha))
    return Obligation(
        f"concentration.bound.D{nd}.K{k}", "Concentration",
        f"D = {nd}, K = {k}, every target: the off-target mass 1 − p_Δ is at most "
        f"(K^D − 1)e^(−α) = {n_keys - 1}e^(−α) for every α > 0 (substituting t = e^α − 1 > 0, "
        "the difference is a ratio of polynomials in t with non-negative coefficients), and "
        "that bound tends to 0 as α → ∞.",
        statement, "inequality (rational function of t = e^α − 1) + limit", check, kind=CHECK,
        scope=f"D = {nd}, K = {k}: every target, all α > 0", coq=COQ_CONCENTRATION)


# --------------------------------------------------------------------------- leak bound


def _leak() -> list[Obligation]:
    claim, out = "Leak bound", []

    def lattice_symbolic() -> tuple[bool, str]:
        n_cases = 0
        for nd in (1, 2, 3):
            for i in range(nd):
                # Case "coordinate i of z = δ − Δ is non-zero" (one holds when δ ≠ Δ).
                z = [sp.Symbol(f"z_{j + 1}", integer=True, nonzero=(j == i)) for j in range(nd)]
                terms = [z[i] ** 2 - 1] + [z[j] ** 2 for j in range(nd) if j != i]
                if sp.expand(sp.Add(*terms) - (_sq_norm(z) - 1)) != 0:
                    return False, "term split does not add up"
                for term in terms:
                    if term.is_nonnegative is not True:
                        return False, f"D={nd}, case z_{i + 1} != 0: sympy cannot show {term} >= 0"
                n_cases += 1
        return True, (f"{n_cases} cases (D = 1, 2, 3; which coordinate is non-zero): "
                      "‖z‖² − 1 = (z_i² − 1) + Σ_j≠i z_j², each term >= 0 for integers with z_i ≠ 0")

    z1, z2 = sp.Symbol("z_1", integer=True, nonzero=True), sp.Symbol("z_2", integer=True)
    out.append(Obligation(
        "leak.lattice.symbolic", claim,
        "Distinct integer points are at squared distance ≥ 1: for z = δ − Δ ∈ Z^D \\ {0} "
        "(D = 1, 2, 3), some z_i ≠ 0, and ‖z‖² − 1 splits into z_i² − 1 ≥ 0 (a non-zero "
        "integer) plus squares.",
        sp.Ge(z1**2 + z2**2, 1), "inequality (case split, sympy integer assumptions)", lattice_symbolic,
        kind=PROOF, scope="D = 1, 2, 3; all z ∈ Z^D \\ {0}", coq=COQ_LATTICE))

    def lattice_exhaustive() -> tuple[bool, str]:
        pairs = 0
        for nd, side in ((1, 9), (2, 7), (3, 4)):
            pts = np.array(list(itertools.product(range(-side // 2, side - side // 2), repeat=nd)))
            d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)  # (n, n)
            off = ~np.eye(len(pts), dtype=bool)
            if d2[off].min() < 1:
                return False, f"D={nd}: two distinct points at squared distance {d2[off].min()}"
            pairs += int(off.sum())
        return True, f"{pairs} ordered pairs of distinct points in boxes of side 9 (1-D), 7 (2-D), 4 (3-D)"

    d, c = offset_symbols(2), centre_symbols(2)
    out.append(Obligation(
        "leak.lattice.exhaustive", claim,
        "The same fact checked on every pair of distinct points of integer boxes (1-D side 9, "
        "2-D side 7, 3-D side 4), independently of the symbolic argument.",
        sp.Ge(_sq_norm([a - b for a, b in zip(d, c)]), 1), "exhaustive finite check",
        lattice_exhaustive, kind=CHECK, scope="boxes of side 9 (D = 1), 7 (D = 2), 4 (D = 3)",
        coq=COQ_LATTICE))
    out.append(_factorisation())
    out.append(_domination())
    return out


def _factorisation() -> Obligation:
    alpha = alpha_symbol()

    def check() -> tuple[bool, str]:
        for nd in (1, 2, 3):
            for n in (1, 2, 3):
                a = {m: sp.Symbol(f"a_{m}") for m in range(-n, n + 1)}
                box = itertools.product(range(-n, n + 1), repeat=nd)
                lhs = sp.Add(*[sp.Mul(*[a[zi] for zi in z]) for z in box])
                if sp.expand(lhs - sp.Add(*a.values()) ** nd) != 0:
                    return False, f"D={nd}, N={n}: distributive law fails"
        return True, ("Σ_{z∈{−N…N}^D} Π a_{z_i} − (Σ_n a_n)^D expands to 0 for generic a_n, "
                      "D = 1, 2, 3, N = 1, 2, 3; with a_n = e^(−α n²) this is the lattice sum, "
                      "as e^(−α‖z‖²) = Π e^(−α z_i²) by the law of exponents (not a separate check)")

    n, N = sp.Symbol("n", integer=True), sp.Symbol("N", integer=True, positive=True)
    zz = sp.symbols("z_1 z_2", integer=True)
    statement = sp.Eq(
        sp.Sum(sp.exp(-alpha * (zz[0] ** 2 + zz[1] ** 2)), (zz[0], -N, N), (zz[1], -N, N)),
        sp.Sum(sp.exp(-alpha * n**2), (n, -N, N)) ** 2, evaluate=False)
    return Obligation(
        "leak.factorisation", "Leak bound",
        "Checked: on every finite box {−N … N}^D (D, N ∈ {1, 2, 3}) the sum of Π_i a_{z_i} equals "
        "(Σ_n a_n)^D for symbolic a_n (the distributive law), and e^(−α‖z‖²) = Π_i e^(−α z_i²), "
        "so Σ_box e^(−α‖z‖²) = (Σ_{|n|≤N} e^(−αn²))^D. For every D and N, and with "
        "N → ∞ (θ₃ as the sum of its series), this is proved in Coq "
        "(Concentration.sum_gauss_box, Concentration.theta_cvg).",
        statement, "expansion to zero (finite boxes, generic term values)", check, kind=CHECK,
        scope="D, N ∈ {1, 2, 3}; all term values a_n",
        coq=COQ_LATTICE + ("Concentration.theta_cvg",))


def _domination() -> Obligation:
    q = sp.Symbol("q", positive=True)

    def check() -> tuple[bool, str]:
        count = 0
        for nd, k in ((1, 3), (1, 4), (2, 2), (2, 3), (3, 2)):
            box = sp.Add(*[q ** (m * m) for m in range(-(k - 1), k)]) ** nd  # |δ − Δ_i| ≤ K − 1
            for target, keys, probs in _softmax_rows(nd, k):
                inv = _exp_to_q(sp.expand(1 / probs[keys.index(target)]), q)  # 1/p_Δ as a polynomial in q
                if not inv.is_polynomial(q):
                    return False, f"1/p is not a polynomial in q: {inv}"
                gap = sp.Poly(sp.expand(box - inv), q)
                if any(cf < 0 for cf in gap.coeffs()):
                    return False, f"D={nd}, K={k}, target {target}: box sum - 1/p has a negative coefficient"
                count += 1
        return True, (f"{count} (D, K, target) cases: 1/p_Δ = Σ_keys q^‖δ−Δ‖² and the box sum minus "
                      "it has non-negative coefficients in q = e^(−α)")

    alpha = alpha_symbol()
    d = sp.Symbol("D", integer=True, positive=True)
    theta = sp.Function("vartheta_3")(sp.exp(-alpha))
    return Obligation(
        "leak.domination", "Leak bound",
        "Checked for D = 1 (K = 3, 4), D = 2 (K = 2, 3), D = 3 (K = 2), every target: with Lemma "
        "2's exact softmax, 1/p_Δ = Σ_keys e^(−α‖δ−Δ‖²) is a polynomial in q = e^(−α) dominated "
        "coefficient-wise by the box sum (Σ_{|n|≤K−1} q^(n²))^D (the offsets δ − Δ are distinct "
        "lattice points of that box). With the box sum ≤ θ₃(q)^D (positive tail) and "
        "leak.factorisation: 1 − p_Δ ≤ 1 − θ₃(e^(−α))^(−D), whatever the image size.",
        sp.Le(1 - sp.Symbol("p_Delta"), 1 - theta ** (-d)),
        "inequality (polynomial coefficients in q = e^(−α))", check, kind=CHECK,
        scope="D = 1 (K = 3, 4), D = 2 (K = 2, 3), D = 3 (K = 2); every target, all α > 0",
        coq=COQ_LATTICE + COQ_CONCENTRATION)


# --------------------------------------------------------------------------- Lemma 1


def _kernel_shift(index: Sequence[int], k: int) -> tuple[int, ...]:
    """The project's shift convention, written out independently of ``shift_set``: i − ⌊(K − 1)/2⌋."""
    return tuple(i - (k - 1) // 2 for i in index)


def _lemma1_instance(nd: int, k: int, d_in: int, d_out: int, size: int):
    """Symbolic X on a padded grid, kernel slices W_i, bias b, and the interior queries."""
    pad_lo, pad_hi = (k - 1) // 2, k // 2
    side = size + pad_lo + pad_hi
    tokens = list(itertools.product(range(side), repeat=nd))
    index = {t: n for n, t in enumerate(tokens)}
    x = sp.Matrix(len(tokens), d_in, lambda n, c: sp.Symbol(f"x_{n}_{c}"))  # (n_tokens, d_in)
    kernel = {i: sp.Matrix(d_in, d_out, lambda a, b, i=i: sp.Symbol("w_" + "".join(map(str, i)) + f"_{a}{b}"))
              for i in itertools.product(range(k), repeat=nd)}  # each (d_in, d_out)
    bias = sp.Matrix(1, d_out, lambda _, o: sp.Symbol(f"b_{o}"))  # (1, d_out)
    queries = [tuple(pad_lo + j for j in q) for q in itertools.product(range(size), repeat=nd)]
    return tokens, index, x, kernel, bias, queries


def _conv_rows(nd, k, index, x, kernel, bias, queries) -> sp.Matrix:
    """The convolution by its definition: Conv(X)_q = Σ_i X_{q + shift(i)} W_i + b."""
    rows = []
    for q in queries:
        acc = bias
        for i, w in kernel.items():
            key = tuple(a + s for a, s in zip(q, _kernel_shift(i, k)))
            acc = acc + x[index[key], :] * w
        rows.append(acc)
    return sp.Matrix.vstack(*rows)  # (n_queries, d_out)


def _lemma1(nd: int, k: int, d_in: int, d_out: int, size: int) -> Obligation:

    tokens, index, x, kernel, bias, queries = _lemma1_instance(nd, k, d_in, d_out, size)
    shifts = [tuple(int(s) for s in row) for row in shift_set(k, ndim=nd)]  # head h -> Δ_h
    heads = list(itertools.product(range(k), repeat=nd))  # raster order: head h <-> kernel index
    name = f"lemma1.D{nd}.K{k}"
    text = (f"D = {nd}, K = {k}, D_in = {d_in}, D_out = {d_out}, {len(queries)} queries of a "
            f"padded image whose pixels, padding included, are symbols (so any padding values): b + Σ_h e_(q+Δ_h)ᵀ X W^(h) with one-hot "
            "attention rows and W^(h) = W_(Δ_h) (heads from shifts.shift_set) equals the "
            "convolution sum Σ_i X_(q+Δ(i)) W_i + b written from its definition.")
    scope = dict(kind=CHECK, coq=COQ_LEMMA1,
                 scope=(f"D = {nd}, K = {k}, D_in = {d_in}, D_out = {d_out}, "
                        f"{_count(len(queries), 'query', 'queries')}"))
    mhsa = sp.Matrix.vstack(*[bias] * len(queries))  # b_out = b, (n_queries, d_out)
    for h, delta in enumerate(shifts):
        # One-hot attention: row q of head h puts probability 1 on the key k = q + Δ_h.
        attn = sp.zeros(len(queries), len(tokens))
        for r, q in enumerate(queries):
            key = tuple(a + s for a, s in zip(q, delta))
            if key not in index:
                return _failing(name, "Lemma 1", text, "expansion to zero",
                                f"head {h} (shift {delta}) points outside the padded image at query {q}",
                                **scope)
            attn[r, index[key]] = 1
        mhsa = mhsa + attn * x * kernel[heads[h]]  # W^(h) = W_val^(h) W_out^(h) = W_{Δ_h}
    conv = _conv_rows(nd, k, index, x, kernel, bias, queries)
    return identity_obligation(name, mhsa, conv, claim="Lemma 1", text=text, **scope)


def _shift_bijection() -> Obligation:

    cases = [((k,) * nd, d) for nd in (1, 2, 3) for k in range(1, 6) for d in (1, 2)
             if k**nd <= 125] + [((2, 3), 1), ((3, 4), 2), ((1, 5), 1), ((2, 3, 4), 1)]

    def bijective(case) -> bool:
        ks, d = case
        rows = [tuple(int(v) for v in r) for r in shift_set(ks, dilation=d)]
        expected = {tuple(i * d - d * (k - 1) // 2 for i, k in zip(idx, ks))
                    for idx in itertools.product(*[range(k) for k in ks])}
        raster = [tuple(i * d - d * (k - 1) // 2 for i, k in zip(np.unravel_index(h, ks), ks))
                  for h in range(math.prod(ks))]
        return len(rows) == math.prod(ks) == len(set(rows)) and set(rows) == expected and rows == raster

    h = sp.Symbol("h", integer=True, nonnegative=True)
    return exhaustive_obligation(
        "lemma1.shift_bijection", bijective, cases, claim="Lemma 1",
        text=("For every kernel checked (K = 1 … 5 in 1-D, 2-D, 3-D up to 125 heads, dilation 1 "
              "and 2, and rectangular kernels), shifts.shift_set has prod(K) distinct rows, row h "
              "is the offset of the raster-order kernel index h, and the rows are exactly the "
              "shift set {i·d − ⌊d(K−1)/2⌋}: a bijection from heads onto shifts."),
        statement=sp.Eq(sp.Function("Delta")(h), sp.Symbol("i") * sp.Symbol("d")
                        - sp.floor(sp.Symbol("d") * (sp.Symbol("K") - 1) / 2)),
        scope=f"{len(cases)} kernels: K = 1 … 5 in 1-D to 3-D, dilation 1 and 2, 4 rectangular",
        coq=COQ_SHIFTS)


# --------------------------------------------------------------------------- Theorem 1


def _theorem1(nd: int, k: int, size: int) -> Obligation:

    alpha = alpha_symbol()
    d_in = d_out = 1
    tokens, index, x, kernel, bias, queries = _lemma1_instance(nd, k, d_in, d_out, size)
    der = derive_isotropic(nd)
    heads = list(itertools.product(range(k), repeat=nd))
    shifts = [tuple(int(s) for s in row) for row in shift_set(k, ndim=nd)]

    def probabilities(q, delta) -> list[sp.Expr]:
        v = der.v.subs(dict(zip(centre_symbols(nd), delta)))
        scores = [_dot(v, [b.subs(dict(zip(der.delta, [a - c for a, c in zip(key, q)]))) for b in der.basis])
                  for key in tokens]  # (n_tokens,) over every key of the padded image
        z = sp.Add(*[sp.exp(s) for s in scores])
        return [sp.exp(s) / z for s in scores]

    def check() -> tuple[bool, str]:
        if der.v is None:
            return False, der.message
        rows = []
        n_limits = 0
        for q in queries:
            acc = bias
            for h, delta in enumerate(shifts):
                # The output is linear in X with α-dependent coefficients, so its limit is
                # taken coefficient by coefficient.
                lim = [sp.limit(p, alpha, sp.oo) for p in probabilities(q, delta)]
                n_limits += len(lim)
                acc = acc + sp.Matrix([lim]) * x * kernel[heads[h]]
            rows.append(acc)
        layer = sp.Matrix.vstack(*rows)
        conv = _conv_rows(nd, k, index, x, kernel, bias, queries)
        if any(sp.expand(e) != 0 for e in layer - conv):
            return False, "the α → ∞ limit of the layer differs from the convolution"
        return True, f"{n_limits} softmax limits, then lim MHSA − Conv expanded to 0"

    p = sp.Function("MHSA_alpha")(sp.Symbol("X"))
    return Obligation(
        f"theorem1.limit.D{nd}.K{k}", "Theorem 1",
        (f"D = {nd}, K = {k}: the assembled layer (heads from shift_set, Lemma 2's v derived by "
         "the engine, exact softmax over every key of the padded image (pixels, padding included, symbolic), W^(h) = W_(Δ_h), "
         f"b_out = b) tends, as α → ∞, to the convolution at all {len(queries)} queries, for "
         "symbolic pixels and weights."),
        sp.Eq(sp.Limit(p, alpha, sp.oo), sp.Function("Conv")(sp.Symbol("X")), evaluate=False),
        "limit + expansion to zero", check, kind=CHECK,
        scope=f"D = {nd}, K = {k}, D_in = D_out = 1, {_count(len(queries), 'query', 'queries')}",
        coq=COQ_THEOREM1)


# --------------------------------------------------------------------------- heads lower bound
# An addition of the project (docs/lower_bound.md): fewer heads than r(W) = rank U(W)
# cannot express the convolution. Its own block, built by _heads_lower_bound().


def _lower_bound_linearisation(n_keys: int) -> Obligation:
    """d/dt at 0 of Σ_k softmax_k(a + t b + t² c) · t e_k is Σ_k softmax_k(a) e_k."""
    t = sp.Symbol("t")
    a, b, c, e = (sp.symbols(f"{x}_1:{n_keys + 1}") for x in "abce")
    scores = [ak + t * bk + t**2 * ck for ak, bk, ck in zip(a, b, c)]
    z = sp.Add(*[sp.exp(sk) for sk in scores])
    head = sp.Add(*[sp.exp(sk) / z * t * ek for sk, ek in zip(scores, e)])      # one output entry
    lhs = sp.diff(head, t).subs(t, 0)
    z0 = sp.Add(*[sp.exp(ak) for ak in a])
    rhs = sp.Add(*[sp.exp(ak) / z0 * ek for ak, ek in zip(a, e)])
    ob = identity_obligation(
        f"lower_bound.linearisation.N{n_keys}", lhs, rhs, claim="Heads lower bound",
        text=(f"{n_keys} keys, one output entry of a head on the input X = tE: its scores are "
              "a_k + t b_k + t² c_k for symbolic a, b, c (the four-term score at X = tE: the "
              "position term a, the content-position and global content terms linear in t, the "
              "content-content term quadratic), its values t e_k. The derivative at t = 0 is "
              "Σ_k softmax_k(a) e_k for all values of the symbols: the content terms drop out and "
              "the head acts with the fixed positional weights P = softmax(a)."),
        scope=f"{n_keys} keys; all scores a, b, c and values e", coq=("LowerBound.linearisation",))
    # display the derivative itself; the check compares its evaluation with the right side
    shown = sp.Eq(sp.Subs(sp.Derivative(head, t), t, 0), rhs, evaluate=False)
    return dataclasses.replace(ob, statement=shown)


def _lower_bound_rearrangement() -> Obligation:
    """The rearrangement A ⊗ B ↦ vec(A) vec(B)ᵀ of two heads, entry by entry."""
    n_heads, (n_o, n_p), (n_c, n_d) = 2, (2, 3), (2, 2)
    p = [sp.Matrix(n_o, n_p, lambda i, j, h=h: sp.Symbol(f"p{h}_{i}{j}")) for h in range(n_heads)]
    m = [sp.Matrix(n_c, n_d, lambda i, j, h=h: sp.Symbol(f"m{h}_{i}{j}")) for h in range(n_heads)]
    tensor = {(o, q, c, d): sp.Add(*[p[h][o, q] * m[h][c, d] for h in range(n_heads)])
              for o, q, c, d in itertools.product(range(n_o), range(n_p), range(n_c), range(n_d))}
    rearranged = sp.Matrix(n_o * n_p, n_c * n_d,
                           lambda r, k: tensor[(r // n_p, r % n_p, k // n_d, k % n_d)])
    vec = lambda a: a.reshape(a.rows * a.cols, 1)                                # noqa: E731
    outer = sp.Add(*[vec(p[h]) * vec(m[h]).T for h in range(n_heads)], sp.zeros(n_o * n_p, n_c * n_d))
    return identity_obligation(
        "lower_bound.rearrangement", rearranged, outer, claim="Heads lower bound",
        text=("Two heads, P_h of shape 2×3, M_h of shape 2×2, symbolic entries: the four-index "
              "tensor Σ_h (P_h)_{op} (M_h)_{cd}, read as a matrix with rows (o, p) and columns "
              "(c, d), is Σ_h vec(P_h) vec(M_h)ᵀ, a matrix of rank at most N_h; the shift side "
              "Σ_Δ S_Δ ⊗ W_Δ becomes S U(W) the same way (the rearrangement only permutes "
              "entries, so it keeps the Frobenius norm)."),
        scope="2 heads, P_h 2×3, M_h 2×2; all entries", coq=("LowerBound.heads_ge_rank",))


def _lower_bound_gaussian() -> Obligation:
    """E‖D x‖² = ‖D‖_F² for x with independent standard normal entries (2×3, symbolic D)."""
    d = sp.Matrix(2, 3, lambda i, j: sp.Symbol(f"d_{i}{j}"))
    x = sp.symbols("x_0:3")
    quad = sp.expand(sum(((d * sp.Matrix(x))[i]) ** 2 for i in range(2)))
    poly = sp.Poly(quad, *x)
    # expectation monomial by monomial: E[x_i x_j] = 1 if i = j else 0 (independent, unit variance)
    expected = sp.Add(*[cf for mon, cf in poly.terms() if sorted(mon) == [0, 0, 2]])
    frob = sp.Add(*[v**2 for v in d])
    return identity_obligation(
        "lower_bound.gaussian_mean", expected, frob, claim="Heads lower bound",
        method="expansion to zero (second moments E[x_i x_j] = δ_ij)",
        text=("For a symbolic 2×3 matrix D and x with independent entries of mean 0 and variance 1, "
              "E‖Dx‖² (the quadratic form expanded, each x_i x_j replaced by its moment δ_ij) is "
              "‖D‖_F²: for inputs with i.i.d. standard normal entries the expected squared error "
              "of a positional layer is the squared Frobenius norm of L_MHSA − L_conv."),
        scope="D of shape 2×3; all entries")


def _padded_source(t: int, n: int, mode: str) -> int | None:
    """Image index a padded coordinate reads (relative to the image; None: a zero of the padding)."""
    if 0 <= t < n:
        return t
    if mode == "zeros":
        return None
    if mode == "reflect":
        return -t if t < 0 else 2 * (n - 1) - t
    if mode == "replicate":
        return min(max(t, 0), n - 1)
    return t % n


def _shift_matrices(size, ks, stride, dil, pad, mode) -> np.ndarray:
    """``S_Δ`` from the definition, one output pixel and one tap at a time: ``(n_taps, n_out, n_in)``."""
    outs = [(n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, d, p in zip(size, ks, stride, dil, pad)]
    taps = list(itertools.product(*[range(k) for k in ks]))
    mats = np.zeros((len(taps), math.prod(outs), math.prod(size)), dtype=np.int64)
    for ti, tap in enumerate(taps):
        for oi, o in enumerate(itertools.product(*[range(n) for n in outs])):
            src = [_padded_source(oa * s + i * d - p, n, mode)
                   for oa, i, s, d, p, n in zip(o, tap, stride, dil, pad, size)]
            if None not in src:
                mats[ti, oi, np.ravel_multi_index(tuple(src), size)] = 1
    return mats


def _lower_bound_shift_gram() -> Obligation:
    modes = ("zeros", "reflect", "replicate", "circular")
    cases = [(size, ks, st, dl, pd, mode)
             for nd in (1, 2) for mode in modes
             for ks in itertools.product((2, 3), repeat=nd)
             for st in itertools.product((1, 2), repeat=nd)
             for dl in ((1,) * nd, (2,) * nd)
             for pd in ((1,) * nd, (2,) * nd)
             for size in (((3,), (4,)) if nd == 1 else ((3, 4),))
             if all(n + 2 * p >= d * (k - 1) + 1 for n, k, d, p in zip(size, ks, dl, pd))
             and (mode != "reflect" or min(size) > max(pd)) and (mode != "circular" or min(size) >= max(pd))]

    def holds(case) -> bool:
        size, ks, st, dl, pd, mode = case
        s = _shift_matrices(size, ks, st, dl, pd, mode)
        gram = np.einsum("iop,jop->ij", s, s)
        per_axis = np.ones((1, 1), dtype=np.int64)
        for a in range(len(size)):
            s_a = _shift_matrices(size[a:a + 1], ks[a:a + 1], st[a:a + 1], dl[a:a + 1], pd[a:a + 1], mode)
            per_axis = np.kron(per_axis, np.einsum("iop,jop->ij", s_a, s_a))
        if not np.array_equal(gram, per_axis):
            return False
        if mode == "zeros":   # each output reads a pixel through one tap at most: disjoint supports
            return bool((s.sum(axis=0) <= 1).all()) and np.array_equal(gram, np.diag(np.diag(gram)))
        return True

    return exhaustive_obligation(
        "lower_bound.shift_gram", holds, cases, claim="Heads lower bound",
        text=(f"Checked on {len(cases)} convolutions (1-D and 2-D, K = 2, 3 per axis, stride and "
              "dilation 1 or 2, padding 1 or 2, the four padding modes, small images): with the "
              "shift matrices S_Δ built from the definition (output o reads the pixel its tap "
              "lands on, through the padding formula), the Gram matrix ⟨S_Δ, S_Δ'⟩ is the "
              "Kronecker product of the per-axis Gram matrices, and with zero padding the S_Δ "
              "have disjoint supports (G = diag(c_Δ)), the two facts heads_lower_bound uses."),
        statement=sp.Eq(sp.Symbol("G"), sp.Symbol("G_1") * sp.Symbol("G_2")),
        scope=f"{len(cases)} convolutions (1-D, 2-D; K, stride, dilation, padding, 4 modes)",
        coq=("LowerBound.shift_mx_free",))


def _heads_lower_bound() -> list[Obligation]:
    """The obligations of the lower bound on the number of heads."""
    return [_lower_bound_linearisation(2), _lower_bound_linearisation(3), _lower_bound_rearrangement(),
            _lower_bound_gaussian(), _lower_bound_shift_gram()]


# --------------------------------------------------------------------------- all


def build_obligations() -> list[Obligation]:
    """Every obligation, pending, in the order of the paper's argument."""
    return [
        *_lemma2(),
        *numeric_obligations(),
        *_anisotropic(),
        *_concentration(),
        *_leak(),
        _shift_bijection(),
        _lemma1(1, 2, 2, 2, 3),
        _lemma1(1, 3, 2, 2, 3),
        _lemma1(2, 2, 2, 2, 2),
        _lemma1(2, 3, 2, 1, 2),
        _theorem1(1, 3, 2),
        _theorem1(2, 2, 1),
        *_heads_lower_bound(),
    ]
