"""Shared test configuration: hypothesis profiles.

``dev`` (default) is fast; ``ci`` runs more examples, derandomized, without a
deadline and printing reproduction blobs. Select with ``HYPOTHESIS_PROFILE``.
The profiles are defined in :mod:`attn_expressivity.testing`, so users get the same ones.
"""

import pytest

from attn_expressivity.testing import register_profiles

register_profiles()



def _backends():
    from attn_expressivity.balls.backends import available_backends

    return [pytest.param(b, marks=pytest.mark.skipif(b not in available_backends(),
                                                     reason=f"needs the certify extra ({b}): pip install -e '.[certify]'"))
            for b in ("flint", "mpmath")]


@pytest.fixture(params=_backends())
def backend(request):
    """Each ball-arithmetic back-end in turn, skipped when it is not installed."""
    return request.param
