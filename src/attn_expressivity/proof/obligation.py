"""Proof obligations: named statements, the method that discharges each, and a report.

An :class:`Obligation` is a named statement (a sympy expression and a
sentence), the method that discharges it and a status. The checkers are
deliberately strict: an identity holds only if ``lhs − rhs`` expands to the
zero polynomial, an inequality only if sympy's assumption system answers
``True`` (``None`` is a failure), a limit only if sympy returns the expected
number. :class:`ProofReport` collects discharged obligations.

Two words for success, never mixed up: an obligation of kind ``"proof"`` is
**proved**: its statement holds for every value of its symbols (the number of
spatial dimensions ``D`` may be fixed, and its ``scope`` says which); an
obligation of kind ``"check"`` is **checked**: finitely many instances or a
numeric comparison, named in its ``scope``. Each obligation names the Coq
theorems (``proofs/coq``) that prove the general statement, if any.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import sympy as sp

from .derive import _oneline, _shorten

__all__ = [
    "CHECK",
    "CHECKED",
    "ERROR",
    "FAILED",
    "PENDING",
    "PROOF",
    "PROVED",
    "Obligation",
    "ProofReport",
    "exhaustive_obligation",
    "identity_obligation",
    "inequality_obligation",
    "limit_obligation",
]

#: Status values of an :class:`Obligation`.
PENDING, PROVED, CHECKED, FAILED, ERROR = "pending", "proved", "checked", "failed", "error"
#: Kinds of :class:`Obligation`: a proof for all values of the symbols, or a check of instances.
PROOF, CHECK = "proof", "check"



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
    kind : {"proof", "check"}
        ``"proof"``: the statement holds for all values of its symbols
        (``scope`` says for which ``D``); ``"check"``: finitely many
        instances or a numeric comparison (``scope`` names them).
    scope : str
        For which dimensions, or on which instances, it is established.
    coq : tuple of str
        The Coq theorems (``Module.name`` in ``proofs/coq``) that prove the
        general statement; empty when it is not mechanised.
    status : str
        ``"pending"`` until :meth:`discharge`; then ``"proved"`` (a proof),
        ``"checked"`` (a check), ``"failed"`` or ``"error"`` (the check raised).
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
    kind: str = PROOF
    scope: str = ""
    coq: tuple[str, ...] = ()
    status: str = PENDING
    seconds: float | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in (PROOF, CHECK):
            raise ValueError(f"`kind` must be {PROOF!r} or {CHECK!r}, got {self.kind!r}")

    @property
    def holds(self) -> bool:
        """True when the obligation has been discharged and proved (a proof) or checked (a check)."""
        return self.status in (PROVED, CHECKED)

    def with_scope(self, kind: str, scope: str, coq: tuple[str, ...] = ()) -> Obligation:
        """A copy that says what it establishes: its kind, its scope and the Coq theorems."""
        return dataclasses.replace(self, kind=kind, scope=scope, coq=tuple(coq))

    def discharge(self) -> Obligation:
        """Run the check and return a copy with status, time and detail set."""
        start = time.perf_counter()
        try:
            ok, detail = self.check()
            status = (PROVED if self.kind == PROOF else CHECKED) if ok is True else FAILED
        except Exception as exc:  # noqa: BLE001 - a crashing check is a failed step
            status, detail = ERROR, f"{type(exc).__name__}: {exc}"
        return dataclasses.replace(self, status=status, detail=detail,
                                   seconds=time.perf_counter() - start)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields (the statement as sympy ``str`` and LaTeX)."""
        return {"name": self.name, "claim": self.claim, "text": self.text,
                "statement": sp.sstr(self.statement), "latex": sp.latex(self.statement),
                "method": self.method, "kind": self.kind, "scope": self.scope,
                "coq": list(self.coq), "status": self.status, "seconds": self.seconds,
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
                        method: str = "expansion to zero", kind: str = PROOF, scope: str = "",
                        coq: Sequence[str] = ()) -> Obligation:
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
    kind, scope, coq : optional
        See :class:`Obligation` (default: a proof, no scope, no Coq theorem).

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
    return Obligation(name, claim, text, statement, method, check, kind=kind, scope=scope,
                      coq=tuple(coq))


def inequality_obligation(name: str, terms: Sequence[sp.Expr], total: sp.Expr | None = None, *,
                          claim: str, text: str, statement: sp.Basic | None = None,
                          method: str = "inequality (term-wise signs from sympy assumptions)",
                          kind: str = PROOF, scope: str = "", coq: Sequence[str] = ()) -> Obligation:
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
    kind, scope, coq : optional
        See :class:`Obligation`.

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
                      method, check, kind=kind, scope=scope, coq=tuple(coq))


def limit_obligation(name: str, cases: Sequence[tuple[sp.Expr, sp.Expr]], var: sp.Symbol, *,
                     claim: str, text: str, point: sp.Expr = sp.oo,
                     statement: sp.Basic | None = None, method: str = "limit",
                     kind: str = PROOF, scope: str = "", coq: Sequence[str] = ()) -> Obligation:
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
    kind, scope, coq : optional
        See :class:`Obligation`.

    Returns
    -------
    Obligation

    Examples
    --------
    >>> from attn_expressivity.proof.derive import alpha_symbol
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
    return Obligation(name, claim, text, statement, method, check, kind=kind, scope=scope,
                      coq=tuple(coq))


def exhaustive_obligation(name: str, predicate: Callable[[object], bool], cases: Iterable[object], *,
                          claim: str, text: str, statement: sp.Basic,
                          method: str = "exhaustive finite check", scope: str = "",
                          coq: Sequence[str] = ()) -> Obligation:
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
    scope, coq : optional
        See :class:`Obligation`; an exhaustive check is always of kind ``"check"``.

    Returns
    -------
    Obligation

    Examples
    --------
    >>> n = sp.Symbol("n", integer=True)
    >>> exhaustive_obligation("sq", lambda k: k * k >= 0, range(-3, 4), claim="demo", text="",
    ...                       statement=sp.Ge(n**2, 0)).discharge().status
    'checked'
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

    return Obligation(name, claim, text, statement, method, check, kind=CHECK, scope=scope,
                      coq=tuple(coq))


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

    def summary(self) -> str:
        """One line: how many were proved, checked, not established, and the time."""
        proved = sum(o.status == PROVED for o in self.obligations)
        checked = sum(o.status == CHECKED for o in self.obligations)
        failed = len(self.obligations) - proved - checked
        return (f"{len(self.obligations)} obligations: {proved} proved (for all values of their "
                f"symbols), {checked} checked (instances and numeric comparisons), {failed} failed "
                f"in {self.seconds:.2f}s")

    def table(self, *, details: bool = False) -> str:
        """A fixed-width table: obligation, status, scope, Coq theorem, time (details: method, finding)."""
        rows = [("obligation", "status", "scope", "Coq theorem", "time")]
        rows += [(o.name, o.status, o.scope or "-", ", ".join(o.coq) or "not mechanised",
                  f"{o.seconds:.3f}s") for o in self.obligations]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = []
        for i, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
            elif details:
                o = self.obligations[i - 1]
                lines.append(f"    {o.method}: {o.detail}")
        lines.append(self.summary())
        return "\n".join(lines)

    def narrative(self) -> str:
        """Each obligation as a step: statement, what it says, scope, method, Coq theorem, status."""
        lines = []
        for i, o in enumerate(self.obligations, 1):
            lines += [f"[{i}] {o.name}  ({o.claim})",
                      f"    statement: {_shorten(_oneline(o.statement))}",
                      f"    {o.text}",
                      f"    scope:     {o.scope or '-'}",
                      f"    method:    {o.method}",
                      f"    Coq:       {', '.join(o.coq) or 'not mechanised'}",
                      f"    status:    {o.status.upper()} in {o.seconds:.3f}s: {o.detail}", ""]
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary."""
        return {"holds": self.holds, "seconds": self.seconds,
                "obligations": [o.to_dict() for o in self.obligations]}

    def to_json(self) -> str:
        """:meth:`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)
