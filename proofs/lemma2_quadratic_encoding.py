"""Lemma 2 (quadratic encoding): v = −α(1, −2Δ) centres the scores on Δ.

Derives v by matching coefficients for D = 1, 2, 3 (never hard-coded), proves
vᵀr_δ = −α(‖δ − Δ‖² − ‖Δ‖²), compares with the paper's formula and with the
numeric code, and shows that a linear-only encoding has no solution.
Exit status 1 if a step fails.
"""

import sys

from _common import run

from attn_expressivity import symbolic

if __name__ == "__main__":
    derivations = [symbolic.derive_isotropic(d) for d in (1, 2, 3)] + [symbolic.derive_linear(2)]
    sys.exit(run("Lemma 2: the quadratic relative encoding", ["Lemma 2"], derivations))
