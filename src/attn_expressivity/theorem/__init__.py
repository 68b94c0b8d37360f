"""Theorem 1 as code: Lemma 1 (heads as shifts) + Lemma 2 (the quadratic encoding).

* :mod:`~attn_expressivity.theorem.factorisation`: Lemma 1's value and output
  blocks, ``W_val^(h) W_out^(h) = W_Δh``, with the smallest head dimension;
* :mod:`~attn_expressivity.theorem.construction`: :func:`conv_to_mhsa`, the
  layer of Theorem 1 for any convolution, and :class:`ConvAttention`, that
  layer with the convolution's padding, cropping and stride;
* :mod:`~attn_expressivity.theorem.heads`: Lemma 2's head vectors as stored, ``α`` and
  the centre read back exactly, and the heads that are not Lemma 2's;
* :mod:`~attn_expressivity.theorem.border`: the paper's padding remark, measured;
* :mod:`~attn_expressivity.theorem.lower_bound`: Theorem 1 is tight: fewer heads
  than the rank of the kernel's unfolding cannot express the convolution
  (:func:`min_heads`, :func:`heads_lower_bound`).
"""

from .border import border_effect
from .construction import ConvAttention, conv_to_mhsa
from .factorisation import factorisation_allowance, split_slices
from .lower_bound import heads_lower_bound, min_heads

__all__ = ["ConvAttention", "border_effect", "conv_to_mhsa", "factorisation_allowance",
           "split_slices", "heads_lower_bound", "min_heads"]
