"""Verdicts of ``verify`` / ``check_layer`` a second review found wrong, kept as regressions.

Each test reproduces one finding: a false PASS on a bug in the production path
``layer(x)``, a float16 instance that raised instead of giving a verdict, the
element-by-element check's memory beyond the layer's budget, a safety factor
that covered a limited number of roundings, and a wrongly worded refusal.
"""

import numpy as np
import pytest

from attn_expressivity import UnsupportedConfigurationError, conv_to_mhsa
from attn_expressivity.verify import check_layer


# content terms -------------------------------------------------------------------------------
@pytest.mark.parametrize("sharp", [True, False])
def test_content_terms_are_named_in_the_refusal(sharp):
    """A layer with a content term was refused with "this layer has neither"; the message now
    says what the layer has (content terms) and what the bound needs."""
    rng = np.random.default_rng(0)
    layer = conv_to_mhsa(rng.standard_normal((3, 3, 2, 2)), alpha=30.0)
    layer.mhsa.w_qry[0, 0, 0] = 1e-3
    with pytest.raises(UnsupportedConfigurationError) as info:
        check_layer(layer, rng.standard_normal((5, 5, 2)), sharp=sharp)
    message = str(info.value)
    assert "neither" not in message
    assert "it has content terms" in message and "without content terms" in message
