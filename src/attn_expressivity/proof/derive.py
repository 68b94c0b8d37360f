"""The derivation engine: solve for a head vector ``v`` by matching coefficients.

Given a target score ``s(δ)`` and a basis of monomials ``r_δ``,
:func:`derive_head_vector` solves for the head vector ``v`` by matching the
coefficients of every monomial in ``δ`` in

.. math:: v^{\\top} r_\\delta = s(\\delta) + c ,

where the constant ``c`` may depend on the centre and the width but not on
``δ`` (softmax over keys ignores it). It returns ``v``, ``c`` and the residual
``vᵀr_δ − s(δ) − c`` expanded to the zero polynomial, or reports that the linear
system has no solution. :func:`derive_isotropic` (Lemma 2),
:func:`derive_anisotropic` (the appendix's learned covariance, written with the
precision matrix ``Λ = Σ⁻¹``) and :func:`derive_linear` (the failure case) build
the three targets of the paper.

Symbols: ``delta_i`` is the relative offset ``δ = k − q``, ``Delta_i`` the
centre ``Δ``, ``alpha`` the inverse width ``α > 0``, ``Lambda_ij`` the entries
of the symmetric precision matrix ``Λ = Σ⁻¹``, ``v_i`` and ``c`` the unknowns.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import sympy as sp

from .._validation import as_int
from ..errors import ParameterTypeError, ParameterValueError

__all__ = [
    "MAX_NDIM",
    "Derivation",
    "alpha_symbol",
    "anisotropic_basis",
    "centre_symbols",
    "derive_anisotropic",
    "derive_head_vector",
    "derive_isotropic",
    "derive_linear",
    "format_derivation",
    "offset_symbols",
    "precision_symbols",
]

#: Largest number of spatial dimensions the derivation helpers accept.
MAX_NDIM = 6

#: Status values of an :class:`Obligation`.
PENDING, PROVED, FAILED, ERROR = "pending", "proved", "failed", "error"

# --------------------------------------------------------------------------- symbols


def _ndim(ndim: object) -> int:
    nd = as_int(ndim, "ndim", minimum=1)
    if nd > MAX_NDIM:
        raise ParameterValueError(
            f"`ndim` must be between 1 and {MAX_NDIM} for a symbolic derivation, got {nd}"
        )
    return nd


def alpha_symbol() -> sp.Symbol:
    """The inverse width ``α``, a positive real symbol.

    Examples
    --------
    >>> alpha_symbol().is_positive
    True
    """
    return sp.Symbol("alpha", positive=True)


def offset_symbols(ndim: int) -> tuple[sp.Symbol, ...]:
    """The relative offset ``δ = k − q`` as ``ndim`` real symbols ``delta_1 …``.

    Examples
    --------
    >>> offset_symbols(2)
    (delta_1, delta_2)
    """
    return tuple(sp.Symbol(f"delta_{i}", real=True) for i in range(1, _ndim(ndim) + 1))


def centre_symbols(ndim: int) -> tuple[sp.Symbol, ...]:
    """The head centre ``Δ`` as ``ndim`` real symbols ``Delta_1 …``.

    Examples
    --------
    >>> centre_symbols(3)
    (Delta_1, Delta_2, Delta_3)
    """
    return tuple(sp.Symbol(f"Delta_{i}", real=True) for i in range(1, _ndim(ndim) + 1))


def precision_symbols(ndim: int) -> sp.ImmutableMatrix:
    """The symmetric precision matrix ``Λ = Σ⁻¹`` with symbolic entries.

    Returns
    -------
    sympy.ImmutableMatrix, shape ``(ndim, ndim)``
        Entry ``(i, j)`` is the real symbol ``Lambda_ij`` with ``i ≤ j``, so the
        matrix is symmetric by construction.

    Examples
    --------
    >>> precision_symbols(2)
    Matrix([
    [Lambda_11, Lambda_12],
    [Lambda_12, Lambda_22]])
    """
    nd = _ndim(ndim)
    sym = {}
    for i in range(nd):
        for j in range(i, nd):
            sym[i, j] = sym[j, i] = sp.Symbol(f"Lambda_{i + 1}{j + 1}", real=True)
    return sp.ImmutableMatrix(nd, nd, lambda i, j: sym[i, j])


# --------------------------------------------------------------------------- engine


@dataclass(frozen=True)
class Derivation:
    """The outcome of matching coefficients for a head vector.

    Attributes
    ----------
    case : str
        ``"isotropic"``, ``"anisotropic"``, ``"linear"`` or ``"custom"``.
    ndim : int
        Number of spatial dimensions ``D``.
    delta : tuple of sympy.Symbol, length ``D``
        The offset symbols the polynomials are taken in.
    score : sympy.Expr
        The target score ``s(δ)``.
    basis : tuple of sympy.Expr, length ``D_p``
        The encoding ``r_δ``.
    unknowns : tuple of sympy.Symbol, length ``D_p + 1``
        ``v_1 … v_{D_p}`` and the constant ``c``.
    equations : tuple of (sympy.Expr, sympy.Eq)
        One coefficient equation per monomial of ``δ`` (the monomial ``1`` for
        the constant term): coefficient in ``vᵀr_δ`` = coefficient in ``s + c``.
    v : sympy.ImmutableMatrix or None, shape ``(D_p, 1)``
        The solution, or None when the system has no (unique) solution.
    constant : sympy.Expr or None
        ``c`` with ``vᵀr_δ = s(δ) + c``; free of ``δ``.
    residual : sympy.Expr or None
        ``vᵀr_δ − s(δ) − c`` after expansion; ``0`` when the derivation holds.
    message : str
        Why there is no solution, or ``""``.
    """

    case: str
    ndim: int
    delta: tuple[sp.Symbol, ...]
    score: sp.Expr
    basis: tuple[sp.Expr, ...]
    unknowns: tuple[sp.Symbol, ...]
    equations: tuple[tuple[sp.Expr, sp.Eq], ...]
    v: sp.ImmutableMatrix | None
    constant: sp.Expr | None
    residual: sp.Expr | None
    message: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def solvable(self) -> bool:
        """True when a unique ``v`` exists and the residual expands to zero."""
        return self.v is not None and self.residual == 0

    @property
    def encoding_dim(self) -> int:
        """``D_p``, the length of ``r_δ``."""
        return len(self.basis)


def _is_polynomial(expr: sp.Expr, gens: Sequence[sp.Symbol]) -> bool:
    return sp.sympify(expr).is_polynomial(*gens)


def derive_head_vector(score: sp.Expr, basis: Sequence[sp.Expr], delta: Sequence[sp.Symbol],
                       *, case: str = "custom", notes: Sequence[str] = ()) -> Derivation:
    """Solve ``vᵀr_δ = s(δ) + c`` for ``v`` and ``c`` by matching coefficients in ``δ``.

    Both sides are polynomials in ``δ``; they are equal for every ``δ`` iff the
    coefficients of every monomial agree. That is a linear system in the
    unknowns ``v_1 … v_{D_p}, c`` (solved exactly with ``sympy.linsolve``),
    whose coefficient matrix holds the numbers in the basis monomials, so no
    division by a parameter such as ``α`` occurs.

    Parameters
    ----------
    score : sympy.Expr
        Target score ``s(δ)``, a polynomial in ``delta`` whose coefficients may
        involve other symbols (the centre, the width).
    basis : sequence of sympy.Expr, length ``D_p``
        The encoding ``r_δ``, polynomials in ``delta``.
    delta : sequence of sympy.Symbol, length ``D``
        The offset symbols.
    case : str, optional
        A label stored on the result.
    notes : sequence of str, optional
        Remarks stored on the result (shown by :func:`format_derivation`).

    Returns
    -------
    Derivation
        With ``v`` and ``constant`` set and ``residual == 0`` when a unique
        solution exists; otherwise ``v is None`` and ``message`` says why (no
        solution, or a family of solutions because the basis is dependent).

    Raises
    ------
    ParameterTypeError
        ``delta`` holds something other than sympy symbols.
    ParameterValueError
        ``basis`` is empty, or ``score`` or an entry of ``basis`` is not a
        polynomial in ``delta``.

    Examples
    --------
    >>> d, = offset_symbols(1); D, = centre_symbols(1); a = alpha_symbol()
    >>> res = derive_head_vector(-a * (d - D)**2, [d**2, d], [d])
    >>> res.v.T, res.constant, res.residual
    (Matrix([[-alpha, 2*Delta_1*alpha]]), Delta_1**2*alpha, 0)
    >>> derive_head_vector(-a * (d - D)**2, [d], [d]).message
    'no solution: the coefficient equations are inconsistent'
    """
    delta = tuple(delta)
    if not delta or not all(isinstance(s, sp.Symbol) for s in delta):
        raise ParameterTypeError(f"`delta` must be a non-empty sequence of sympy Symbols, got {delta!r}")
    basis = tuple(sp.sympify(b) for b in basis)
    score = sp.sympify(score)
    if not basis:
        raise ParameterValueError("`basis` must hold at least one monomial, got an empty sequence")
    for name, expr in [("score", score), *((f"basis[{i}]", b) for i, b in enumerate(basis))]:
        if not _is_polynomial(expr, delta):
            raise ParameterValueError(
                f"`{name}` must be a polynomial in {delta}, got {expr}"
            )
    p = len(basis)
    v = sp.symbols(f"v_1:{p + 1}")
    c = sp.Symbol("c")
    lhs = sp.Poly(sum(vi * ri for vi, ri in zip(v, basis)), *delta)
    rhs = sp.Poly(score + c, *delta)
    monomials = sorted(set(lhs.monoms()) | set(rhs.monoms()), key=lambda m: (sum(m), m), reverse=True)
    equations = tuple(
        (sp.Mul(*[s**e for s, e in zip(delta, m)]),
         sp.Eq(lhs.coeff_monomial(m), rhs.coeff_monomial(m), evaluate=False))
        for m in monomials
    )
    solutions = sp.linsolve([eq.lhs - eq.rhs for _, eq in equations], [*v, c])
    common = dict(case=case, ndim=len(delta), delta=delta, score=score, basis=basis,
                  unknowns=(*v, c), equations=equations, notes=tuple(notes))
    if solutions == sp.S.EmptySet:
        return Derivation(v=None, constant=None, residual=None,
                          message="no solution: the coefficient equations are inconsistent", **common)
    (solution,) = solutions
    free = set().union(*(s.free_symbols for s in solution)) & {*v, c}
    if free:
        return Derivation(v=None, constant=None, residual=None,
                          message=f"no unique solution: {sorted(map(str, free))} stay free "
                          "(the basis is linearly dependent)", **common)
    vec = sp.ImmutableMatrix(solution[:p])
    const = solution[p]
    residual = sp.expand(sum(vi * ri for vi, ri in zip(vec, basis)) - score - const)
    if const.free_symbols & set(delta):  # cannot happen for a solution of the system above
        return Derivation(v=None, constant=None, residual=residual,
                          message=f"the constant {const} depends on δ", **common)
    return Derivation(v=vec, constant=const, residual=residual, **common)


def _sq_norm(x: Sequence[sp.Expr]) -> sp.Expr:
    return sp.Add(*[xi**2 for xi in x])


def derive_isotropic(ndim: int) -> Derivation:
    """Lemma 2 in ``D`` dimensions: the score ``−α‖δ − Δ‖²`` with ``r_δ = (‖δ‖², δ_1 … δ_D)``.

    Parameters
    ----------
    ndim : int
        ``D``, between 1 and :data:`MAX_NDIM`. ``D_p = D + 1``.

    Returns
    -------
    Derivation
        ``v`` of shape ``(D + 1, 1)``; for ``D = 2`` it is the paper's
        ``−α (1, −2Δ_1, −2Δ_2)`` and the constant is ``α‖Δ‖²``.

    Raises
    ------
    ParameterTypeError
        ``ndim`` is not an integer.
    ParameterValueError
        ``ndim`` outside ``1 … MAX_NDIM``.

    Examples
    --------
    >>> res = derive_isotropic(2)
    >>> list(res.v), res.constant
    ([-alpha, 2*Delta_1*alpha, 2*Delta_2*alpha], Delta_1**2*alpha + Delta_2**2*alpha)
    """
    nd = _ndim(ndim)
    delta, centre, alpha = offset_symbols(nd), centre_symbols(nd), alpha_symbol()
    score = -alpha * _sq_norm([d - c for d, c in zip(delta, centre)])
    basis = (_sq_norm(delta), *delta)
    return derive_head_vector(score, basis, delta, case="isotropic")


def anisotropic_basis(delta: Sequence[sp.Symbol]) -> tuple[sp.Expr, ...]:
    """The linear then quadratic monomials of ``δ``: ``D(D + 3)/2`` of them.

    Order: ``δ_1 … δ_D``, the squares ``δ_1² … δ_D²``, then the cross terms
    ``δ_i δ_j`` (``i < j``) in lexicographic order, which in 2-D is the paper's
    ``(δ_1, δ_2, δ_1², δ_2², δ_1δ_2)``.

    Examples
    --------
    >>> anisotropic_basis(offset_symbols(2))
    (delta_1, delta_2, delta_1**2, delta_2**2, delta_1*delta_2)
    """
    delta = tuple(delta)
    cross = [a * b for a, b in itertools.combinations(delta, 2)]
    return (*delta, *(d**2 for d in delta), *cross)


def derive_anisotropic(ndim: int) -> Derivation:
    """The appendix's score ``−½(δ − Δ)ᵀ Λ (δ − Δ)`` with a symmetric ``Λ = Σ⁻¹``.

    Parameters
    ----------
    ndim : int
        ``D``, between 1 and :data:`MAX_NDIM`. ``D_p = D(D + 3)/2``.

    Returns
    -------
    Derivation
        ``v`` of shape ``(D(D+3)/2, 1)`` over :func:`anisotropic_basis`; the
        constant is ``½ ΔᵀΛΔ``.

    Raises
    ------
    ParameterTypeError
        ``ndim`` is not an integer.
    ParameterValueError
        ``ndim`` outside ``1 … MAX_NDIM``.

    Examples
    --------
    >>> res = derive_anisotropic(2)
    >>> res.encoding_dim, list(res.v)[2:]
    (5, [-Lambda_11/2, -Lambda_22/2, -Lambda_12])
    """
    nd = _ndim(ndim)
    delta, centre, lam = offset_symbols(nd), centre_symbols(nd), precision_symbols(nd)
    diff = sp.Matrix([d - c for d, c in zip(delta, centre)])
    score = sp.expand(-sp.Rational(1, 2) * (diff.T * lam * diff)[0, 0])
    return derive_head_vector(score, anisotropic_basis(delta), delta, case="anisotropic",
                              notes=("s(δ) = -½ (δ - Δ)ᵀ Λ (δ - Δ), shown expanded; Λ = Σ⁻¹ is "
                                     "the head's symmetric precision matrix.",))


def derive_linear(ndim: int) -> Derivation:
    """The failure case: ``−α‖δ − Δ‖²`` with the linear-only encoding ``r_δ = δ`` (``D_p = D``).

    The quadratic coefficient ``−α`` of ``δ_i²`` must be matched by a basis
    that has no quadratic monomial, so for ``α > 0`` the system has no
    solution; the result says so instead of returning a vector. (A linear score
    ``vᵀδ`` is maximised on the boundary of any box of keys, never at an
    interior centre.)

    Parameters
    ----------
    ndim : int
        ``D``, between 1 and :data:`MAX_NDIM`.

    Returns
    -------
    Derivation
        With ``v is None`` and ``solvable`` False.

    Raises
    ------
    ParameterTypeError
        ``ndim`` is not an integer.
    ParameterValueError
        ``ndim`` outside ``1 … MAX_NDIM``.

    Examples
    --------
    >>> derive_linear(2).solvable
    False
    """
    nd = _ndim(ndim)
    delta, centre, alpha = offset_symbols(nd), centre_symbols(nd), alpha_symbol()
    score = -alpha * _sq_norm([d - c for d, c in zip(delta, centre)])
    return derive_head_vector(score, delta, delta, case="linear",
                              notes=("α > 0, so the δ_i² equations 0 = -α cannot hold.",))


# --------------------------------------------------------------------------- presentation

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
_GREEK = {"alpha": "α", "delta": "δ", "Delta": "Δ", "Lambda": "Λ"}


def _oneline(expr: object) -> str:
    """A one-line, terminal-friendly rendering (``δ1²``, ``α``, ``·``) of ``sstr``."""
    if isinstance(expr, sp.Equality):
        return f"{_oneline(expr.lhs)} = {_oneline(expr.rhs)}"
    text = sp.sstr(expr)
    text = re.sub(r"\b(alpha|delta|Delta|Lambda|v)(?:_(\d+))?\b",
                  lambda m: _GREEK.get(m.group(1), m.group(1)) + (m.group(2) or ""), text)
    text = re.sub(r"\*\*(-?\d+)", lambda m: m.group(1).translate(_SUPERSCRIPT), text)
    return text.replace("**", "^").replace("*", "·")


def _shorten(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _factored(vec: Iterable[sp.Expr]) -> tuple[sp.Expr, list[sp.Expr]]:
    """Split ``v = g · w`` with ``g`` the symbolic gcd of the entries, sign from the first."""
    items = list(vec)
    g = sp.gcd_list(items)
    if g == 0 or g.is_Number:
        g = sp.S.One
    w = [sp.cancel(x / g) for x in items]
    first = next((x for x in w if x != 0), sp.S.One)
    if first.could_extract_minus_sign():
        g, w = -g, [-x for x in w]
    return g, w


def format_derivation(derivation: Derivation) -> str:
    """The derivation as plain text for a terminal.

    Parameters
    ----------
    derivation : Derivation

    Returns
    -------
    str
        Target, basis, the coefficient equations, the solution ``v`` (with a
        common factor pulled out), the constant and the residual.

    Examples
    --------
    >>> print(format_derivation(derive_isotropic(1)))  # doctest: +ELLIPSIS
    Head vector v for the isotropic score, D = 1 (D_p = 2)
    ...
    solution      v = -α · (1, -2·Δ1)
    ...
    """
    d = derivation
    titles = {"isotropic": "the isotropic score", "anisotropic": "the anisotropic score",
              "linear": "the isotropic score with a linear-only encoding", "custom": "a custom score"}
    lines = [f"Head vector v for {titles.get(d.case, d.case)}, D = {d.ndim} (D_p = {d.encoding_dim})"]
    lines += [f"  note: {n}" for n in d.notes]
    lines += [
        f"target score  s(δ) = {_oneline(d.score)}",
        "encoding      r_δ = (" + ", ".join(_oneline(b) for b in d.basis) + ")",
        "ansatz        vᵀ r_δ = s(δ) + c   for every δ   (c free of δ: softmax ignores it)",
        "coefficient equations, one per monomial of δ:",
    ]
    width = max(len(_oneline(m)) for m, _ in d.equations)
    lines += [f"  {_oneline(m):>{width}} :  {_oneline(eq.lhs)} = {_oneline(eq.rhs)}"
              for m, eq in d.equations]
    if d.v is None:
        lines.append(f"result        {d.message}")
        return "\n".join(lines)
    g, w = _factored(d.v)
    prefix = "" if g == 1 else f"{_oneline(g)} · "
    lines.append(f"solution      v = {prefix}(" + ", ".join(_oneline(x) for x in w) + ")")
    if d.case == "anisotropic" or d.encoding_dim > 4:
        width = max(len(_oneline(b)) for b in d.basis)
        lines += [f"  {_oneline(b):>{width}} :  {_oneline(x)}" for b, x in zip(d.basis, d.v)]
    lines += [
        f"constant      c = {_oneline(sp.factor(d.constant))}",
        f"residual      vᵀ r_δ - s(δ) - c = {_oneline(d.residual)}  (expanded)",
    ]
    return "\n".join(lines)


def _latex_vector(vec: Iterable[sp.Expr]) -> str:
    g, w = _factored(vec)
    body = sp.latex(sp.ImmutableMatrix([w]))
    return body if g == 1 else f"{sp.latex(g)} \\, {body}"


def _derivation_markdown(d: Derivation, heading: str) -> list[str]:
    out = [f"### {heading}", ""]
    out += [f"*{n}*" for n in d.notes] + ([""] if d.notes else [])
    out += ["Target score and encoding:", "",
            f"$$s(\\delta) = {sp.latex(d.score)}, \\qquad "
            f"r_\\delta = {sp.latex(sp.ImmutableMatrix([list(d.basis)]))}^\\top \\quad (D_p = {d.encoding_dim})$$",
            "", "Matching the coefficient of every monomial of $\\delta$ in "
            "$v^\\top r_\\delta = s(\\delta) + c$:", "", "$$\\begin{aligned}"]
    out += [f"{sp.latex(m)}:&\\quad {sp.latex(eq.lhs)} = {sp.latex(eq.rhs)} \\\\" for m, eq in d.equations]
    out += ["\\end{aligned}$$", ""]
    if d.v is None:
        out += [f"**Result:** {d.message}.", ""]
        return out
    out += ["Solution, constant and residual:", "",
            f"$$v = {_latex_vector(d.v)}, \\qquad c = {sp.latex(sp.factor(d.constant))}, \\qquad "
            f"v^\\top r_\\delta - s(\\delta) - c = {sp.latex(d.residual)}$$", ""]
    return out
