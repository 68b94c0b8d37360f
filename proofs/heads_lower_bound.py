"""Theorem 1 is tight: fewer heads than r(W) = rank U(W) cannot express the convolution.

Checks the steps of the argument the symbolic engine can check: the linearisation at
X = 0 (the content terms drop out of the derivative, for symbolic scores), the
rearrangement A ⊗ B ↦ vec(A) vec(B)ᵀ that turns N_h heads into a matrix of rank at
most N_h, the Gaussian mean E‖Dx‖² = ‖D‖_F², and, on a finite family of convolutions,
the Gram matrix of the shift matrices (diagonal with zero padding, a Kronecker product
of per-axis Grams for every padding mode). Eckart–Young itself is a classical theorem,
cited, not re-proved; the rank bound and the linearisation are proved in Coq in
proofs/coq/LowerBound.v. Exit status 1 if a step fails.
"""

import sys

from _common import run

PREAMBLE = """
Chain of the argument (docs/lower_bound.md):
  1. lower_bound.linearisation.*   at X = 0 each head attends with fixed weights P_h
  2. lower_bound.rearrangement     Σ_h P_h ⊗ M_h ↦ Σ_h vec(P_h) vec(M_h)ᵀ: rank <= N_h
  3. lower_bound.shift_gram        the S_Δ: disjoint supports (zero padding), G = ⊗ G_a
  4. lower_bound.gaussian_mean     the squared Frobenius norm is the expected squared error
"""

if __name__ == "__main__":
    sys.exit(run("Theorem 1 is tight: the number of heads a convolution needs",
                 ["Heads lower bound"], preamble=PREAMBLE))
