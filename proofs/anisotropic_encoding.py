"""The generalised quadratic encoding: −½(δ − Δ)ᵀ Σ⁻¹ (δ − Δ) with D_p = D(D + 3)/2.

Derives the head vector over the linear and quadratic monomials of δ (5 in 2-D),
proves the identity for D = 1, 2, 3, checks uniqueness, the isotropic special case
and a numeric least-squares fit. Exit status 1 if a step fails.
"""

import sys

from _common import run

from attn_expressivity import symbolic

if __name__ == "__main__":
    sys.exit(run("Generalised (anisotropic) quadratic encoding", ["Anisotropic encoding"],
                 [symbolic.derive_anisotropic(2)]))
