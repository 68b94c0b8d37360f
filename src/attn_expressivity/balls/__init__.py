"""Ball (interval) arithmetic: rigorous enclosures of real numbers.

* :mod:`~attn_expressivity.balls.backends`: python-flint's ``arb`` or
  ``mpmath.iv`` behind one small interface, and outward rounding to floats;
* :mod:`~attn_expressivity.balls.theta`: enclosures of ``θ₃(e^{−α}) − 1`` and
  of the leak bound ``1 − θ₃(e^{−α})^{−D}``.

The float leak bound (:func:`attn_expressivity.leak_bound`) is the upper end
of such an enclosure; the certified instance check
(:mod:`attn_expressivity.certify`) evaluates whole layers in it.
"""

from .backends import BACKENDS, DEFAULT_PRECISION, available_backends, select_backend
from .theta import Enclosure, certified_leak_bound, leak_term_within

__all__ = ["BACKENDS", "DEFAULT_PRECISION", "Enclosure", "available_backends",
           "certified_leak_bound", "leak_term_within", "select_backend"]
