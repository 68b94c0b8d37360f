"""Shared driver of the proof scripts: print the steps, exit 1 if any obligation fails or errs."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from attn_expressivity import symbolic


def run(title: str, claims: Iterable[str], derivations: Iterable[symbolic.Derivation] = (),
        preamble: str = "") -> int:
    """Print ``title``, the derivations and every obligation of ``claims``; return the exit status."""
    print(title)
    print("=" * len(title))
    if preamble:
        print(preamble.strip() + "\n")
    for derivation in derivations:
        print(symbolic.format_derivation(derivation) + "\n")
    report = symbolic.prove(claims=list(claims))
    print(report.narrative())
    if not report.holds:
        print("FAILED: " + ", ".join(o.name for o in report.failed), file=sys.stderr)
        return 1
    proved = sum(o.status == "proved" for o in report.obligations)
    checked = sum(o.status == "checked" for o in report.obligations)
    print(f"All steps hold: {proved} proved (for all values of their symbols), {checked} checked "
          "(instances and numeric comparisons). The general statements, for every D, are the Coq "
          "theorems named above: run proofs/coq/check.")
    return 0
