"""The leak bound: off-target mass ≤ 1 − θ₃(e^(−α))^(−D), independent of the image size.

Steps: distinct integer points are at squared distance ≥ 1 (symbolic case split and
an exhaustive check); the lattice Gaussian sum factorises over coordinates (finite
boxes, generic terms; the limit N → ∞ by positivity is stated); 1/p_Δ is dominated
coefficient-wise by the box sum; bounds.leak_bound matches 1 − θ₃^(−D) numerically.
Exit status 1 if a step fails.
"""

import sys

from _common import run

if __name__ == "__main__":
    sys.exit(run("Leak bound: 1 - theta_3(e^-alpha)^-D", ["Leak bound"]))
