"""Softmax concentration: as α → ∞ each head's attention becomes one-hot on k = q + Δ.

Checks instances: sympy limits of the exact softmax of Lemma 2's scores over a
K×K (and 1-D) neighbourhood, for every target, and the explicit bound
1 − p_Δ ≤ (K^D − 1)e^(−α) → 0 for D = 2, K = 3 and every α > 0. The general
statement (any D, any key set) is the Coq theorem Concentration.concentration.
Exit status 1 if a step fails.
"""

import sys

from _common import run

if __name__ == "__main__":
    sys.exit(run("Softmax concentration of the quadratic heads", ["Concentration"]))
