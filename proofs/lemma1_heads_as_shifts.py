"""Lemma 1 (heads as shifts): one-hot heads with W^(h) = W_(Δ_h) sum to the convolution.

Checks that the head <-> shift map is a bijection onto the shift set, then, for
1-D and 2-D, K = 2 and 3, that Σ_h e_(q+Δ_h)ᵀ X W^(h) + b equals the convolution
sum for symbolic pixels X, kernel slices W_Δ and bias b: instances. For every D,
kernel box and channel count it is the Coq theorem Lemma1.lemma1 (proofs/coq).
Exit status 1 if a step fails.
"""

import sys

from _common import run

PREAMBLE = """
Convention: Δ_h = k − q is the offset head h attends to (the paper's f(h) = q − k = −Δ_h),
heads are numbered in raster order of kernel indices, and kernel index i sits at
shift i − ⌊(K − 1)/2⌋. The convolution is the deep-learning one (cross-correlation).
"""

if __name__ == "__main__":
    sys.exit(run("Lemma 1: multi-head attention with one-hot heads is a convolution",
                 ["Lemma 1"], preamble=PREAMBLE))
