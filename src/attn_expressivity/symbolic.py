"""Symbolic derivations and machine-checked proof obligations (sympy).

This is the only module (with its private catalogue :mod:`._obligations`) that
imports sympy; ``import attn_expressivity`` does not load it.

Two things live here.

**The derivation engine.** Given a target score ``s(δ)`` and a basis of
monomials ``r_δ``, :func:`derive_head_vector` solves for the head vector ``v``
by matching the coefficients of every monomial in ``δ`` in

.. math:: v^{\\top} r_\\delta = s(\\delta) + c ,

where the constant ``c`` may depend on the centre and the width but not on
``δ`` (softmax over keys ignores it). It returns ``v``, ``c`` and the residual
``vᵀr_δ − s(δ) − c`` expanded to the zero polynomial, or reports that the linear
system has no solution. :func:`derive_isotropic` (Lemma 2),
:func:`derive_anisotropic` (the appendix's learned covariance, written with the
precision matrix ``Λ = Σ⁻¹``) and :func:`derive_linear` (the failure case) build
the three targets of the paper.

**Proof obligations.** An :class:`Obligation` is a named statement (a sympy
expression and a sentence), the method that discharges it and a status.
:func:`paper_obligations` lists every step of the paper's argument and
:func:`prove` discharges them. The checkers are deliberately strict: an identity
holds only if ``lhs − rhs`` expands to the zero polynomial, an inequality only if
sympy's assumption system answers ``True`` (``None`` is a failure), a limit only
if sympy returns the expected number.

Symbols: ``delta_i`` is the relative offset ``δ = k − q``, ``Delta_i`` the
centre ``Δ``, ``alpha`` the inverse width ``α > 0``, ``Lambda_ij`` the entries
of the symmetric precision matrix ``Λ = Σ⁻¹``, ``v_i`` and ``c`` the unknowns.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import sympy as sp

from ._validation import as_int
from .errors import ParameterTypeError, ParameterValueError

__all__ = [
    "MAX_NDIM",
    "Derivation",
    "Obligation",
    "ProofReport",
    "alpha_symbol",
    "centre_symbols",
    "offset_symbols",
    "precision_symbols",
    "anisotropic_basis",
    "derive_head_vector",
    "derive_isotropic",
    "derive_anisotropic",
    "derive_linear",
    "format_derivation",
    "identity_obligation",
    "inequality_obligation",
    "limit_obligation",
    "exhaustive_obligation",
    "paper_obligations",
    "prove",
    "derivation_document",
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


# --------------------------------------------------------------------------- obligations


@dataclass(frozen=True)
class Obligation:
    """One named, machine-checkable step of the paper's argument.

    Attributes
    ----------
    name : str
        A dotted identifier, e.g. ``"lemma2.identity.D2"``.
    claim : str
        The paper statement the step serves (``"Lemma 2"``, ``"Leak bound"`` …).
    text : str
        The statement in words, saying exactly what was proved.
    statement : sympy.Basic
        The statement as a sympy expression (an ``Eq``, an inequality, a
        ``Limit`` …), rendered with ``sympy.latex`` in the documents.
    method : str
        How it is discharged: ``"expansion to zero"``, ``"limit"``,
        ``"inequality"``, ``"exhaustive finite check"`` …
    check : callable
        ``check() -> (bool, str)``: whether it holds and a short detail.
    status : str
        ``"pending"`` until :meth:`discharge`; then ``"proved"``, ``"failed"``
        or ``"error"`` (the check raised).
    seconds : float or None
        Wall time of the check.
    detail : str
        What the check found.
    """

    name: str
    claim: str
    text: str
    statement: sp.Basic
    method: str
    check: Callable[[], tuple[bool, str]] = field(repr=False, compare=False)
    status: str = PENDING
    seconds: float | None = None
    detail: str = ""

    @property
    def holds(self) -> bool:
        """True when the obligation has been discharged and proved."""
        return self.status == PROVED

    def discharge(self) -> Obligation:
        """Run the check and return a copy with status, time and detail set."""
        start = time.perf_counter()
        try:
            ok, detail = self.check()
            status = PROVED if ok is True else FAILED
        except Exception as exc:  # noqa: BLE001 - a crashing check is a failed step
            status, detail = ERROR, f"{type(exc).__name__}: {exc}"
        return dataclasses.replace(self, status=status, detail=detail,
                                   seconds=time.perf_counter() - start)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields (the statement as sympy ``str`` and LaTeX)."""
        return {"name": self.name, "claim": self.claim, "text": self.text,
                "statement": sp.sstr(self.statement), "latex": sp.latex(self.statement),
                "method": self.method, "status": self.status, "seconds": self.seconds,
                "detail": self.detail}


def _zero_polynomial(expr: sp.Expr) -> bool:
    """True iff ``expr`` expands to the zero polynomial in its free symbols."""
    expanded = sp.expand(expr)
    if expanded == 0:
        return True
    gens = sorted(expanded.free_symbols, key=str)
    if gens and expanded.is_polynomial(*gens):
        return sp.Poly(expanded, *gens).is_zero
    return False


def identity_obligation(name: str, lhs: sp.Basic, rhs: sp.Basic, *, claim: str, text: str,
                        method: str = "expansion to zero") -> Obligation:
    """An identity ``lhs = rhs`` proved by expanding ``lhs − rhs`` to the zero polynomial.

    Works for scalars and (entry-wise) for matrices. A difference that does not
    expand to ``0`` fails the obligation: no ``simplify`` heuristics.

    Parameters
    ----------
    name, claim, text : str
        See :class:`Obligation`.
    lhs, rhs : sympy.Expr or sympy.Matrix
        The two sides; matrices must have the same shape.
    method : str, optional
        The method label (default ``"expansion to zero"``).

    Returns
    -------
    Obligation
        Pending; call :meth:`Obligation.discharge`.

    Examples
    --------
    >>> x, y = sp.symbols("x y")
    >>> identity_obligation("sq", (x + y)**2, x**2 + 2*x*y + y**2, claim="demo", text="").discharge().status
    'proved'
    >>> identity_obligation("bad", (x + y)**2, x**2 + y**2, claim="demo", text="").discharge().status
    'failed'
    """
    def check() -> tuple[bool, str]:
        if isinstance(lhs, sp.MatrixBase) or isinstance(rhs, sp.MatrixBase):
            left, right = sp.Matrix(lhs), sp.Matrix(rhs)
            if left.shape != right.shape:
                return False, f"shapes differ: {left.shape} vs {right.shape}"
            bad = [i for i, e in enumerate(left - right) if not _zero_polynomial(e)]
            if bad:
                return False, f"{len(bad)} of {len(left)} entries do not expand to 0, e.g. {sp.expand((left - right)[bad[0]])}"
            return True, f"all {len(left)} entries of lhs - rhs expand to 0"
        diff = sp.expand(lhs - rhs)
        if _zero_polynomial(diff):
            return True, "lhs - rhs expands to 0"
        return False, f"lhs - rhs expands to {diff}, not 0"

    statement = sp.Eq(sp.ImmutableMatrix(lhs) if isinstance(lhs, sp.MatrixBase) else lhs,
                      sp.ImmutableMatrix(rhs) if isinstance(rhs, sp.MatrixBase) else rhs,
                      evaluate=False)
    return Obligation(name, claim, text, statement, method, check)


def inequality_obligation(name: str, terms: Sequence[sp.Expr], total: sp.Expr | None = None, *,
                          claim: str, text: str, statement: sp.Basic | None = None,
                          method: str = "inequality (term-wise signs from sympy assumptions)") -> Obligation:
    """``Σ terms ≥ 0`` proved by sympy's assumptions answering ``is_nonnegative is True`` per term.

    If ``total`` is given, the obligation also proves ``Σ terms = total`` by
    expansion, so the sign argument is about ``total`` itself. An answer of
    ``None`` (unknown) is a failure.

    Parameters
    ----------
    name, claim, text : str
        See :class:`Obligation`.
    terms : sequence of sympy.Expr
        Terms each claimed non-negative under the symbols' assumptions.
    total : sympy.Expr, optional
        The expression whose sign is claimed.
    statement : sympy.Basic, optional
        Displayed statement (default ``total ≥ 0``).
    method : str, optional
        The method label.

    Returns
    -------
    Obligation

    Examples
    --------
    >>> z = sp.Symbol("z", integer=True, nonzero=True); w = sp.Symbol("w", integer=True)
    >>> inequality_obligation("lat", [z**2 - 1, w**2], z**2 + w**2 - 1, claim="demo", text="").discharge().status
    'proved'
    >>> inequality_obligation("bad", [w**2 - 1], claim="demo", text="").discharge().status
    'failed'
    """
    terms = [sp.sympify(t) for t in terms]
    whole = sp.Add(*terms) if total is None else sp.sympify(total)

    def check() -> tuple[bool, str]:
        if total is not None and not _zero_polynomial(sp.Add(*terms) - total):
            return False, "the terms do not add up to the stated expression"
        for t in terms:
            if t.is_nonnegative is not True:
                return False, f"sympy cannot show {t} >= 0 (is_nonnegative is {t.is_nonnegative})"
        return True, f"{len(terms)} term(s), each >= 0 by the symbols' assumptions"

    return Obligation(name, claim, text, statement if statement is not None else sp.Ge(whole, 0),
                      method, check)


def limit_obligation(name: str, cases: Sequence[tuple[sp.Expr, sp.Expr]], var: sp.Symbol, *,
                     claim: str, text: str, point: sp.Expr = sp.oo,
                     statement: sp.Basic | None = None, method: str = "limit") -> Obligation:
    """``lim_{var → point} expr = expected`` for each ``(expr, expected)``, with ``sympy.limit``.

    Parameters
    ----------
    name, claim, text : str
        See :class:`Obligation`.
    cases : sequence of (sympy.Expr, sympy.Expr)
        Expressions and their claimed limits (numbers).
    var : sympy.Symbol
        The variable.
    point : sympy.Expr, optional
        Where the limit is taken (default ``oo``).
    statement : sympy.Basic, optional
        Displayed statement (default: the first case as an unevaluated ``Limit``).
    method : str, optional

    Returns
    -------
    Obligation

    Examples
    --------
    >>> a = alpha_symbol()
    >>> ok = limit_obligation("l", [(1 / (1 + sp.exp(-a)), 1)], a, claim="demo", text="")
    >>> ok.discharge().status
    'proved'
    >>> limit_obligation("bad", [(sp.exp(-a), 1)], a, claim="demo", text="").discharge().status
    'failed'
    """
    cases = [(sp.sympify(e), sp.sympify(x)) for e, x in cases]

    def check() -> tuple[bool, str]:
        for expr, expected in cases:
            got = sp.limit(expr, var, point)
            if (got - expected).is_zero is not True:
                return False, f"limit of {expr} is {got}, expected {expected}"
        return True, f"{len(cases)} limit(s) as {var} -> {point} equal the expected values"

    if statement is None:
        statement = sp.Eq(sp.Limit(cases[0][0], var, point), cases[0][1], evaluate=False)
    return Obligation(name, claim, text, statement, method, check)


def exhaustive_obligation(name: str, predicate: Callable[[object], bool], cases: Iterable[object], *,
                          claim: str, text: str, statement: sp.Basic,
                          method: str = "exhaustive finite check") -> Obligation:
    """``predicate(case)`` for every case of a finite family, reporting the first counterexample.

    Parameters
    ----------
    name, claim, text : str
        See :class:`Obligation`.
    predicate : callable
        ``predicate(case) -> bool``.
    cases : iterable
        The finite family (materialised when the obligation is discharged).
    statement : sympy.Basic
        Displayed statement.
    method : str, optional

    Returns
    -------
    Obligation

    Examples
    --------
    >>> n = sp.Symbol("n", integer=True)
    >>> exhaustive_obligation("sq", lambda k: k * k >= 0, range(-3, 4), claim="demo", text="",
    ...                       statement=sp.Ge(n**2, 0)).discharge().status
    'proved'
    """
    def check() -> tuple[bool, str]:
        count = 0
        for case in cases:
            count += 1
            if not predicate(case):
                return False, f"counterexample: {case!r}"
        if count == 0:
            return False, "the family of cases is empty"
        return True, f"{count} case(s) checked"

    return Obligation(name, claim, text, statement, method, check)


# --------------------------------------------------------------------------- proving


@dataclass(frozen=True)
class ProofReport:
    """Discharged obligations and the total time.

    Attributes
    ----------
    obligations : tuple of Obligation
        Each with its status set.
    seconds : float
        Total wall time.
    """

    obligations: tuple[Obligation, ...]
    seconds: float

    @property
    def holds(self) -> bool:
        """True iff every obligation is proved (and there is at least one)."""
        return bool(self.obligations) and all(o.holds for o in self.obligations)

    @property
    def failed(self) -> tuple[Obligation, ...]:
        """The obligations that were not proved."""
        return tuple(o for o in self.obligations if not o.holds)

    def table(self, *, details: bool = False) -> str:
        """A fixed-width table: obligation, method, status, time (and details)."""
        rows = [("obligation", "method", "status", "time")]
        rows += [(o.name, o.method, o.status, f"{o.seconds:.3f}s") for o in self.obligations]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = []
        for i, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
            elif details:
                lines.append(f"    {self.obligations[i - 1].detail}")
        n_ok = sum(o.holds for o in self.obligations)
        lines.append(f"{n_ok}/{len(self.obligations)} obligations proved in {self.seconds:.2f}s")
        return "\n".join(lines)

    def narrative(self) -> str:
        """Each obligation as a step: statement, what it says, method, status and finding."""
        lines = []
        for i, o in enumerate(self.obligations, 1):
            lines += [f"[{i}] {o.name}  ({o.claim})",
                      f"    statement: {_shorten(_oneline(o.statement))}",
                      f"    {o.text}",
                      f"    method:    {o.method}",
                      f"    status:    {o.status.upper()} in {o.seconds:.3f}s: {o.detail}", ""]
        n_ok = sum(o.holds for o in self.obligations)
        lines.append(f"{n_ok}/{len(self.obligations)} obligations proved in {self.seconds:.2f}s")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary."""
        return {"holds": self.holds, "seconds": self.seconds,
                "obligations": [o.to_dict() for o in self.obligations]}

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)


def paper_obligations(claims: Iterable[str] | None = None) -> list[Obligation]:
    """Every step of the paper's argument as a pending :class:`Obligation`.

    Parameters
    ----------
    claims : iterable of str, optional
        Keep only the obligations whose ``claim`` is listed (``"Lemma 1"``,
        ``"Lemma 2"``, ``"Anisotropic encoding"``, ``"Concentration"``,
        ``"Leak bound"``, ``"Theorem 1"``). Default: all.

    Returns
    -------
    list of Obligation

    Raises
    ------
    ParameterValueError
        An unknown claim.

    Examples
    --------
    >>> sorted({o.claim for o in paper_obligations()})  # doctest: +NORMALIZE_WHITESPACE
    ['Anisotropic encoding', 'Concentration', 'Leak bound', 'Lemma 1', 'Lemma 2', 'Theorem 1']
    """
    from ._obligations import CLAIMS, build_obligations

    obligations = build_obligations()
    if claims is None:
        return obligations
    wanted = list(claims)
    unknown = [c for c in wanted if c not in CLAIMS]
    if unknown:
        raise ParameterValueError(f"unknown claim(s) {unknown}; expected some of {list(CLAIMS)}")
    return [o for o in obligations if o.claim in wanted]


def prove(obligations: Iterable[Obligation] | None = None, *,
          claims: Iterable[str] | None = None) -> ProofReport:
    """Discharge obligations (default: all of :func:`paper_obligations`) and report.

    Parameters
    ----------
    obligations : iterable of Obligation, optional
        The obligations to check; default ``paper_obligations(claims)``.
    claims : iterable of str, optional
        Passed to :func:`paper_obligations` when ``obligations`` is None.

    Returns
    -------
    ProofReport

    Raises
    ------
    ParameterValueError
        An unknown claim.

    Examples
    --------
    >>> x = sp.Symbol("x")
    >>> report = prove([identity_obligation("demo", (x + 1)**2, x**2 + 2*x + 1, claim="demo", text="")])
    >>> report.holds, report.obligations[0].status
    (True, 'proved')
    """
    start = time.perf_counter()
    todo = paper_obligations(claims) if obligations is None else list(obligations)
    done = tuple(o.discharge() for o in todo)
    return ProofReport(done, time.perf_counter() - start)


# --------------------------------------------------------------------------- documents

_DERIVATIONS = [
    ("Lemma 2: isotropic quadratic encoding, D = 2", lambda: derive_isotropic(2)),
    ("Lemma 2, D = 1", lambda: derive_isotropic(1)),
    ("Lemma 2, D = 3", lambda: derive_isotropic(3)),
    ("Generalised (anisotropic) quadratic encoding, D = 2", lambda: derive_anisotropic(2)),
    ("Failure case: a linear-only encoding cannot centre the scores, D = 2", lambda: derive_linear(2)),
]


def derivation_document(report: ProofReport | None = None, *, fmt: str = "markdown") -> str:
    """The derivation document: each derivation, then every obligation with its status.

    Every equation is ``sympy.latex`` of the object that was solved or checked.
    Times are left out so that the document is reproducible.

    Parameters
    ----------
    report : ProofReport, optional
        Discharged obligations (default: ``prove()``).
    fmt : {"markdown", "latex"}
        Markdown with ``$$`` maths, or a standalone LaTeX article.

    Returns
    -------
    str

    Raises
    ------
    ParameterValueError
        An unknown ``fmt``.

    Examples
    --------
    >>> x = sp.Symbol("x")
    >>> rep = prove([identity_obligation("demo", x * (x + 1), x**2 + x, claim="demo", text="a demo")])
    >>> doc = derivation_document(rep)
    >>> "| demo | demo | expansion to zero | proved |" in doc
    True
    """
    if fmt not in ("markdown", "latex"):
        raise ParameterValueError(f"`fmt` must be 'markdown' or 'latex', got {fmt!r}")
    report = prove() if report is None else report
    md = _markdown_document(report)
    return md if fmt == "markdown" else _markdown_to_latex(md)


def _markdown_document(report: ProofReport) -> str:
    n_ok = sum(o.holds for o in report.obligations)
    out = [
        "# Derivations and proof obligations", "",
        "<!-- Generated by `attn-expressivity prove --markdown docs/derivations.md`; do not edit. -->",
        "",
        "Every equation on this page is the `sympy.latex` rendering of the object that "
        "`attn_expressivity.symbolic` solved or checked. Notation: $\\delta = k - q$ the "
        "relative offset, $\\Delta$ the head centre, $\\alpha > 0$ the inverse width, "
        "$\\Lambda = \\Sigma^{-1}$ a symmetric precision matrix, $c$ the constant that softmax "
        "ignores.", "",
        f"**Status: {n_ok} of {len(report.obligations)} obligations proved.**", "",
        "## Obligations", "",
        "| obligation | claim | method | status |",
        "|---|---|---|---|",
    ]
    out += [f"| {o.name} | {o.claim} | {o.method} | {o.status} |" for o in report.obligations]
    out += ["", "## Derivations of the head vector", ""]
    for heading, make in _DERIVATIONS:
        out += _derivation_markdown(make(), heading)
    out += ["## Statements", ""]
    claim = None
    for o in report.obligations:
        if o.claim != claim:
            claim = o.claim
            out += [f"### {claim}", ""]
        out += [f"**{o.name}** ({o.method}; **{o.status}**). {o.text}", "",
                f"$${sp.latex(o.statement)}$$", "", f"Check: `{o.detail}`", ""]
    return "\n".join(out).rstrip() + "\n"


def _markdown_to_latex(md: str) -> str:
    """Turn the (restricted) Markdown of :func:`_markdown_document` into a LaTeX article."""
    body: list[str] = []
    in_table = in_math = False
    for line in md.splitlines():
        if line.startswith("<!--"):
            body.append("% " + line.strip("<!-> "))
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= {"-"}:
                continue
            if not in_table:
                body += ["\\begin{longtable}{llll}", " & ".join(_tex_text(c) for c in cells)
                         + " \\\\ \\hline"]
                in_table = True
                continue
            body.append(" & ".join(_tex_text(c) for c in cells) + " \\\\")
            continue
        if in_table:
            body.append("\\end{longtable}")
            in_table = False
        if in_math:
            if line == "\\end{aligned}$$":
                body.append("\\end{aligned}\\]")
                in_math = False
            else:
                body.append(line)
        elif line == "$$\\begin{aligned}":
            body.append("\\[\\begin{aligned}")
            in_math = True
        elif line.startswith("$$"):
            body.append(f"\\[{line[2:-2]}\\]")
        elif line.startswith("### "):
            body.append(f"\\subsection*{{{_tex_text(line[4:])}}}")
        elif line.startswith("## "):
            body.append(f"\\section*{{{_tex_text(line[3:])}}}")
        elif line.startswith("# "):
            body.append(f"\\title{{{_tex_text(line[2:])}}}\\date{{}}\\maketitle")
        else:
            body.append(_tex_mixed(line))
    if in_table:
        body.append("\\end{longtable}")
    head = ["% Compile with lualatex or xelatex: the prose uses Unicode (δ, Δ, α, ‖).",
            "\\documentclass{article}", "\\usepackage{fontspec}", "\\usepackage{amsmath,amssymb,longtable}",
            "\\usepackage[margin=2cm]{geometry}", "\\begin{document}"]
    return "\n".join(head + body + ["\\end{document}"]) + "\n"


_TEX_SPECIAL = {"\\": "\\textbackslash{}", "{": "\\{", "}": "\\}", "_": "\\_", "^": "\\^{}",
                "&": "\\&", "%": "\\%", "#": "\\#", "$": "\\$", "~": "\\~{}"}


def _tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)


def _tex_text(text: str) -> str:
    """Escape plain text for LaTeX, mapping the Markdown ``**bold**``, ``*emph*`` and ``code``."""
    out = []
    for part in re.split(r"(`[^`]*`|\*\*[^*]+\*\*|\*[^*]+\*)", text):
        if part.startswith("`"):
            out.append("\\texttt{" + _tex_escape(part[1:-1]) + "}")
        elif part.startswith("**"):
            out.append("\\textbf{" + _tex_escape(part[2:-2]) + "}")
        elif part.startswith("*") and len(part) > 1:
            out.append("\\emph{" + _tex_escape(part[1:-1]) + "}")
        else:
            out.append(_tex_escape(part))
    return "".join(out)


def _tex_mixed(line: str) -> str:
    """Plain text with inline ``$…$`` maths left untouched."""
    pieces = re.split(r"(\$[^$]+\$)", line)
    return "".join(p if p.startswith("$") else _tex_text(p) for p in pieces)
