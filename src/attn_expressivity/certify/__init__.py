"""Certified instance checks: a layer and its convolution evaluated in ball arithmetic.

* :mod:`~attn_expressivity.certify.instance`: :func:`certify_layer` proves
  ``|MHSA_exact(x) − conv_exact(x)| <= ε`` element by element;
* :mod:`~attn_expressivity.certify.report`: :class:`CertificationReport`, what it returns.

The enclosures themselves come from :mod:`attn_expressivity.balls`.
"""

from .instance import MAX_CERTIFY_WORK, certify_layer, certify_work
from .report import CertificationReport

__all__ = ["MAX_CERTIFY_WORK", "CertificationReport", "certify_layer", "certify_work"]
