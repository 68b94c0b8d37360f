"""Reading attention: how convolutional is a given attention layer.

The paper shows that attention *can* express a convolution (Theorem 1); this
room reads an existing layer and says how close it is to one. Per head: the
centre ``Δ_h`` and width ``α_h`` of its positional score, the weight on the
nearest integer offset with the certified leak bound at that ``α``, the mean
attention distance and the entropy; ties reported as ties. For the layer:
whether the nearest offsets form a shift set, the nearest convolution
(Lemma 1 read backwards) and its distance from the layer on given inputs,
under the a-priori bound where that applies.

* :mod:`~attn_expressivity.analysis.forms`: a positional score as a quadratic
  form, its centre and width, from coefficients in any component order;
* :mod:`~attn_expressivity.analysis.readers`: every supported layer in one form;
* :mod:`~attn_expressivity.analysis.statistics`: the per-head statistics over a grid;
* :mod:`~attn_expressivity.analysis.nearest`: shift sets, the nearest convolution,
  the distance and the bound;
* :mod:`~attn_expressivity.analysis.report`: :class:`AttentionReport`;
* :mod:`~attn_expressivity.analysis.analyse`: :func:`analyse_attention`.
"""

from .analyse import analyse_attention, attention_maps_of, read_layer
from .forms import forms_from_coefficients, read_forms
from .nearest import shift_grid
from .report import AttentionReport

__all__ = ["AttentionReport", "analyse_attention", "attention_maps_of", "forms_from_coefficients",
           "read_forms", "read_layer", "shift_grid"]
