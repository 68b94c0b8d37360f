"""Discharge the paper's obligations: :func:`paper_obligations` and :func:`prove`."""

from __future__ import annotations

import time
from collections.abc import Iterable

import sympy as sp  # noqa: F401  (used by the examples)

from ..errors import ParameterValueError
from .catalogue import CLAIMS, build_obligations
from .obligation import Obligation, ProofReport, identity_obligation  # noqa: F401

__all__ = ["paper_obligations", "prove"]


def paper_obligations(claims: Iterable[str] | None = None) -> list[Obligation]:
    """Every step of the paper's argument as a pending :class:`Obligation`.

    Parameters
    ----------
    claims : iterable of str, optional
        Keep only the obligations whose ``claim`` is listed (``"Lemma 1"``,
        ``"Lemma 2"``, ``"Anisotropic encoding"``, ``"Concentration"``,
        ``"Leak bound"``, ``"Theorem 1"``, ``"Heads lower bound"``). Default: all.

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
    ['Anisotropic encoding', 'Concentration', 'Heads lower bound', 'Leak bound', 'Lemma 1',
     'Lemma 2', 'Theorem 1']
    """
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
