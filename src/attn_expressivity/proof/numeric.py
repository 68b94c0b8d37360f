"""The package's numbers against the proved formulas, at generic points of the whole domain.

The symbolic obligations prove the formulas (Lemma 2's head vector and
encoding, the leak ``1 − θ₃(e^{−α})^{−D}``); these obligations *check* that
the numeric code computes them. A check on a small fixed grid would let a
wrong implementation through wherever the grid does not look (a head vector
wrong only for ``|Δ| ≥ 3``, a leak bound wrong only for ``α < 0.2``), so the
points are generic: drawn at random (with a fixed seed, so the report is
reproducible) over the whole domain, ``|Δ_i|`` up to ``10⁶``, ``α`` spread
log-uniformly over ``[10⁻³, 600]`` plus ``α = 0`` and ``α = ∞``. They remain
checks, and say so: the status is ``"checked"`` and the scope names the family.

The functions under test are looked up in their modules when a check runs, so
a patched or edited implementation is what gets checked.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..attention import encoding as _encoding
from ..bounds import leak as _leak
from .derive import alpha_symbol, centre_symbols, derive_isotropic, offset_symbols
from .obligation import CHECK, Obligation

__all__ = ["ALPHA_RANGE", "SEED", "numeric_obligations"]

#: Seed of the generic points (fixed: the report and the docs are reproducible).
SEED = 20200426
#: The range of the random inverse widths (log-uniform), besides 0 and ∞.
ALPHA_RANGE = (1e-3, 600.0)
_SHIFT_MAX = 10**6          # |Δ_i| of the random head centres
_OFFSET_MAX = 2**20         # |δ_i| of the random offsets (‖δ‖² exact in float64)
_N_ALPHAS = 24
_N_POINTS = 16


def _alphas(rng: np.random.Generator) -> np.ndarray:
    lo, hi = np.log10(ALPHA_RANGE[0]), np.log10(ALPHA_RANGE[1])
    return 10.0 ** rng.uniform(lo, hi, size=_N_ALPHAS)  # (n_alphas,)


def _head_vectors() -> tuple[bool, str]:
    rng = np.random.default_rng(SEED)
    eps = np.finfo(np.float64).eps
    n = 0
    for nd in (1, 2, 3):
        der = derive_isotropic(nd)
        f = sp.lambdify([alpha_symbol(), *centre_symbols(nd)], list(der.v), "numpy")
        for alpha in _alphas(rng):
            shifts = rng.integers(-_SHIFT_MAX, _SHIFT_MAX + 1, size=(_N_POINTS, nd))  # (n_heads, nd)
            numeric = _encoding.quadratic_head_vectors(shifts, float(alpha))  # (n_heads, nd + 1)
            symbolic = np.array([[float(x) for x in f(alpha, *s)] for s in shifts])
            # Each entry is one rounded product on either side (α·(2Δ) with 2Δ exact),
            # so the two may differ by at most one rounding of each: 2 eps relative.
            if not np.all(np.abs(numeric - symbolic) <= 2 * eps * np.abs(symbolic)):
                bad = int(np.argmax(np.any(np.abs(numeric - symbolic) > 2 * eps * np.abs(symbolic), axis=1)))
                return False, (f"D={nd}, alpha={alpha!r}, Delta={shifts[bad].tolist()}: numeric "
                               f"{numeric[bad].tolist()} vs symbolic {symbolic[bad].tolist()}")
            n += len(shifts)
    return True, f"{n} (Δ, α) pairs, D = 1, 2, 3: equal within 2 eps relative"


def _encodings() -> tuple[bool, str]:
    rng = np.random.default_rng(SEED + 1)
    n = 0
    for nd in (1, 2, 3):
        der = derive_isotropic(nd)
        f = sp.lambdify(list(der.delta), list(der.basis), "numpy")
        offsets = rng.integers(-_OFFSET_MAX, _OFFSET_MAX + 1, size=(8 * _N_POINTS, nd))  # (n, nd)
        numeric = _encoding.quadratic_encoding(offsets)  # (n, nd + 1)
        symbolic = np.array([[float(x) for x in f(*o)] for o in offsets])
        if not np.array_equal(numeric, symbolic):
            bad = int(np.argmax(np.any(numeric != symbolic, axis=1)))
            return False, (f"D={nd}, delta={offsets[bad].tolist()}: quadratic_encoding gives "
                           f"{numeric[bad].tolist()}, the symbolic r_δ {symbolic[bad].tolist()}")
        n += len(offsets)
    return True, f"{n} random integer offsets, D = 1, 2, 3: equal exactly (integers below 2^53)"


def _exact_leak(alpha: float, nd: int):
    """``1 − θ₃(e^{−α})^{−D}`` in mpmath at 60 digits, from ``t = θ₃ − 1 = 2 Σ_{n≥1} e^{−αn²}``."""
    import mpmath

    with mpmath.workdps(60):
        a, t, k = mpmath.mpf(alpha), mpmath.mpf(0), 1
        while True:
            term = 2 * mpmath.exp(-a * k * k)
            t += term
            if term < t * mpmath.mpf(10) ** -62:
                break
            k += 1
        return -mpmath.expm1(-nd * mpmath.log1p(t))   # no cancellation for small t


def _leak_bound() -> tuple[bool, str]:
    import mpmath

    rng = np.random.default_rng(SEED + 2)
    alphas = _alphas(rng)
    for nd in (1, 2, 3):
        ends = {_leak.leak_bound(0.0, nd): 1.0, _leak.leak_bound(float("inf"), nd): 0.0}
        if any(got != want for got, want in ends.items()):
            return False, f"D={nd}: leak_bound at alpha = 0, inf gives {list(ends)}, expected [1.0, 0.0]"
        for a in alphas:
            exact = _exact_leak(float(a), nd)
            got = _leak.leak_bound(float(a), nd)
            # An upper bound, and a tight one: within 1e-10 relative of the true value.
            if not exact <= got <= exact * (1 + mpmath.mpf("1e-10")):
                return False, (f"leak_bound({a!r}, {nd}) = {got!r}, 1 - θ₃(e^-α)^-D = "
                               f"{mpmath.nstr(exact, 20)}")
    return True, (f"D = 1, 2, 3 at α = 0, ∞ and {len(alphas)} random α in [{ALPHA_RANGE[0]:g}, "
                  f"{ALPHA_RANGE[1]:g}] (log-uniform): bounds.leak_bound is within 1e-10 above "
                  "1 − θ₃(e^(−α))^(−D) computed in mpmath at 60 digits")


def numeric_obligations() -> list[Obligation]:
    """The three numeric checks: head vectors, encodings (Lemma 2) and the leak bound."""
    a, (d1, d2) = alpha_symbol(), centre_symbols(2)
    d = sp.Symbol("D", integer=True, positive=True)
    theta = sp.Function("vartheta_3")(sp.exp(-a))
    points = (f"D = 1, 2, 3; {_N_ALPHAS} random α in [{ALPHA_RANGE[0]:g}, {ALPHA_RANGE[1]:g}] "
              f"(log-uniform) × {_N_POINTS} random Δ ∈ [−10⁶, 10⁶]^D each, seed {SEED}")
    return [
        Obligation(
            "lemma2.numeric_head_vectors", "Lemma 2",
            "encoding.quadratic_head_vectors equals the derived v = −α(1, −2Δ), lambdified, at "
            "generic points: random integer centres with |Δ_i| up to 10⁶ and random α over "
            "six decades, for D = 1, 2, 3.",
            sp.Eq(sp.Function("quadratic_head_vectors")(sp.Tuple(d1, d2), a),
                  sp.Matrix([derive_isotropic(2).v]).T, evaluate=False),
            "numeric comparison (lambdify, generic points)", _head_vectors, kind=CHECK,
            scope=points, coq=("Lemma2.lemma2",)),
        Obligation(
            "lemma2.numeric_encoding", "Lemma 2",
            "encoding.quadratic_encoding equals the symbolic r_δ = (‖δ‖², δ), lambdified, at "
            "random integer offsets with |δ_i| up to 2²⁰, D = 1, 2, 3.",
            sp.Eq(sp.Function("quadratic_encoding")(sp.Tuple(*offset_symbols(2))),
                  sp.Matrix([derive_isotropic(2).basis]), evaluate=False),
            "numeric comparison (lambdify, generic points)", _encodings, kind=CHECK,
            scope=f"D = 1, 2, 3; {8 * _N_POINTS} random δ ∈ [−2²⁰, 2²⁰]^D each, seed {SEED + 1}",
            coq=("Lemma2.lemma2",)),
        Obligation(
            "leak.numeric_bound", "Leak bound",
            "bounds.leak_bound(α, D) is an upper bound within 1e-10 (relative) of "
            "1 − θ₃(e^(−α))^(−D), computed in mpmath at 60 digits from the series "
            "θ₃ − 1 = 2Σ_{n≥1} e^(−αn²), for D = 1, 2, 3 at α = 0, α = ∞ and random α spread "
            "over [10⁻³, 600].",
            sp.Eq(sp.Function("leak_bound")(a, d), 1 - theta ** (-d), evaluate=False),
            "numeric comparison (mpmath, generic points)", _leak_bound, kind=CHECK,
            scope=(f"D = 1, 2, 3; α = 0, ∞ and {_N_ALPHAS} random α in "
                   f"[{ALPHA_RANGE[0]:g}, {ALPHA_RANGE[1]:g}] (log-uniform), seed {SEED + 2}"),
            coq=("Concentration.concentration", "Concentration.leak_le_closed")),
    ]
