"""The leak bound: off-target mass ≤ 1 − θ₃(e^(−α))^(−D), independent of the image size.

Steps: distinct integer points are at squared distance ≥ 1 (proved for D = 1, 2, 3
by a symbolic case split; checked exhaustively on boxes); the lattice Gaussian sum
factorises over coordinates (checked on finite boxes, generic terms); 1/p_Δ is
dominated coefficient-wise by the box sum (checked for a few D, K); bounds.leak_bound
matches 1 − θ₃^(−D) at generic α (checked numerically). The general statement, for
every D and every key set, with θ₃ as the sum of its series, is the Coq theorem
Concentration.concentration. Exit status 1 if a step fails.
"""

import sys

from _common import run

if __name__ == "__main__":
    sys.exit(run("Leak bound: 1 - theta_3(e^-alpha)^-D", ["Leak bound"]))
