"""Shared test configuration: hypothesis profiles.

``dev`` (default) is fast; ``ci`` runs more examples, derandomized, without a
deadline and printing reproduction blobs. Select with ``HYPOTHESIS_PROFILE``.
The profiles are defined in :mod:`attn_expressivity.testing`, so users get the same ones.
"""

from attn_expressivity.testing import register_profiles

register_profiles()
