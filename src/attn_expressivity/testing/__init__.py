"""Testing tools for attention constructions: hypothesis strategies and an assertion.

Property-test your own construction with the strategies the package's own
suite uses, and check it against the a-priori bound of
:func:`attn_expressivity.verify`:

* :func:`conv_configs` draws convolution hyper-parameters that are valid
  together (kernel sizes, channels, groups, stride, dilation, padding,
  padding mode), as a :class:`~attn_expressivity.convolution.config.ConvConfig`;
* :func:`images` and :func:`kernels` draw an input and a weight for a
  configuration;
* :func:`assert_reproduces_conv` runs an attention layer (or builds one from a
  kernel) and the reference convolution, and raises an ``AssertionError``
  that names the pixel, the head and its shift, the error, the bound, ``α``
  and the dtype when the error exceeds the bound. It returns the report
  otherwise and hides itself from pytest tracebacks.
* :func:`register_profiles` registers the hypothesis profiles ``dev`` (fast)
  and ``ci`` (more examples, derandomized, no deadline, reproduction blobs)
  and loads the one named by the ``HYPOTHESIS_PROFILE`` environment variable.

hypothesis is imported when a strategy or :func:`register_profiles` is
called, never when the package is imported; :func:`assert_reproduces_conv`
needs numpy only.

Examples
--------
>>> import numpy as np
>>> from hypothesis import given, settings, strategies as st
>>> from attn_expressivity.testing import (
...     assert_reproduces_conv, conv_configs, conv_options, images, kernels)
>>> @settings(max_examples=3, database=None)
... @given(cfg=conv_configs(ndim=2), data=st.data())
... def test_theorem1(cfg, data):
...     x, w = data.draw(images(cfg)), data.draw(kernels(cfg))
...     assert_reproduces_conv(w, x, alpha=30.0, **conv_options(cfg))
>>> test_theorem1()
"""

from .assertions import ReproductionReport, assert_reproduces_conv
from .profiles import PROFILE_VARIABLE, PROFILES, register_profiles
from .strategies import conv_configs, conv_options, images, kernels, min_image_shape

__all__ = [
    "PROFILES",
    "PROFILE_VARIABLE",
    "ReproductionReport",
    "assert_reproduces_conv",
    "conv_configs",
    "conv_options",
    "images",
    "kernels",
    "min_image_shape",
    "register_profiles",
]
