"""Regenerate the figures the documentation embeds: docs/_static/figures/*.png.

Usage: ``python docs/make_figures.py`` (the same as
``attn-expressivity plot --all --out docs/_static/figures``). Needs the ``plot``
extra (matplotlib). The figures are drawn with the defaults of
:mod:`attn_expressivity.plot` (fixed seeds), so a rerun reproduces them.
"""

from __future__ import annotations

import pathlib

from attn_expressivity.plot import FIGURES, save_figures

OUT = pathlib.Path(__file__).resolve().parent / "_static" / "figures"

if __name__ == "__main__":
    for path in save_figures(OUT, FIGURES, dpi=90):
        print(f"{path.relative_to(OUT.parents[2])}  {path.stat().st_size // 1024} KiB")
