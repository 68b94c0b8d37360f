"""Regenerate docs/derivations.md from the symbolic engine.

Usage: ``python docs/generate_derivations.py`` (the same as
``attn-expressivity prove --markdown docs/derivations.md``). Exit status 1 if an
obligation fails; the page is written either way, with the failures marked.
"""

from __future__ import annotations

import pathlib
import sys

from attn_expressivity import symbolic

PAGE = pathlib.Path(__file__).with_name("derivations.md")

if __name__ == "__main__":
    report = symbolic.prove()
    PAGE.write_text(symbolic.derivation_document(report), encoding="utf-8")
    print(report.table())
    sys.exit(0 if report.holds else 1)
