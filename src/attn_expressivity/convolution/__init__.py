"""The reference side: a convolution's hyper-parameters, its shift set and the convolution itself.

* :mod:`~attn_expressivity.convolution.config`: PyTorch's hyper-parameters, validated
  (:func:`~attn_expressivity.convolution.config.make_config`);
* :mod:`~attn_expressivity.convolution.shifts`: the head offsets ``Δ_h`` of each kernel index;
* :mod:`~attn_expressivity.convolution.slices`: the kernel slice ``W_Δ`` of each kernel index;
* :mod:`~attn_expressivity.convolution.accurate`: the same definition summed with
  error-free transformations, as accurate as twice the working precision;
* :mod:`~attn_expressivity.convolution.reference`: the reference convolution, written
  from the definition; it imports neither the shift sets nor anything of the
  attention side, so it stays an independent oracle;
* :mod:`~attn_expressivity.convolution.instances`: random instances for examples and checks.
"""

from .config import PADDING_MODES, ConvConfig, make_config
from .instances import Instance, random_instance
from .reference import conv
from .shifts import axis_shifts, left_offsets, shift_set
from .slices import kernel_slices

__all__ = ["PADDING_MODES", "ConvConfig", "Instance", "axis_shifts", "conv", "kernel_slices",
           "left_offsets", "make_config", "random_instance", "shift_set"]
