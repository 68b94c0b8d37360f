"""Bounds: the leak of a quadratic head, floating-point rounding, and the output error they cause.

* :mod:`~attn_expressivity.bounds.leak`: the off-target softmax mass
  ``1 − θ₃(e^{−α})^{−D}`` from above, and the ``α`` a tolerance needs;
* :mod:`~attn_expressivity.bounds.rounding`: unit roundoff, Higham's ``γ_m``, the
  underflow unit and the accuracy assumed of ``exp``;
* :mod:`~attn_expressivity.bounds.scale`: the data factor ``S`` of the leak term;
* :mod:`~attn_expressivity.bounds.tables`: the weights a path computed against the
  convolution's one-hot rows and against the theory's leak for the stored ``α``;
* :mod:`~attn_expressivity.bounds.elementwise`: the bound on ``|layer(x) − conv(x)|``
  element by element (rounding + leak + factorisation) that :func:`attn_expressivity.verify`
  checks small instances against;
* :mod:`~attn_expressivity.bounds.error`: the same bound per output channel, from a few
  maxima, for large instances;
* :mod:`~attn_expressivity.bounds.dtypes`: the ``α`` each float type needs.

The float bounds compute in floating point with rigorous rounding terms; the
only door to ball arithmetic is the leak bound, whose float value is the upper
end of an enclosure (:mod:`attn_expressivity.balls`).
"""

from .dtypes import dtype_alpha_table, format_dtype_table
from .error import error_bound
from .leak import ALPHA_RESOLUTION, alpha_for_tolerance, leak_bound
from .rounding import gamma, unit_roundoff
from .scale import scale_factor, scale_from_bound

__all__ = ["ALPHA_RESOLUTION", "alpha_for_tolerance", "dtype_alpha_table", "error_bound",
           "format_dtype_table", "gamma", "leak_bound", "scale_factor", "scale_from_bound",
           "unit_roundoff"]
