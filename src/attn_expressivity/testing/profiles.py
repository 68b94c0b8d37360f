"""The hypothesis profiles ``dev`` and ``ci``, shared by the package's suite and its users."""

from __future__ import annotations

import os
from typing import Any

from ..errors import ParameterValueError

__all__ = ["PROFILES", "PROFILE_VARIABLE", "register_profiles"]

#: The hypothesis profiles :func:`register_profiles` registers (keyword arguments
#: of ``hypothesis.settings``; health checks are added by name).
PROFILES: dict[str, dict[str, Any]] = {
    "dev": {"max_examples": 15, "deadline": None},
    "ci": {"max_examples": 40, "deadline": None, "derandomize": True, "print_blob": True,
           "suppress_health_check": ["too_slow"]},
}

#: Name of the environment variable that selects the profile.
PROFILE_VARIABLE = "HYPOTHESIS_PROFILE"


def register_profiles(*, load: bool = True) -> str | None:
    """Register the ``dev`` and ``ci`` hypothesis profiles (see :data:`PROFILES`).

    ``dev`` is fast (15 examples, no deadline). ``ci`` runs more examples,
    derandomized (the same examples on every run, so a failure reproduces),
    without a deadline and printing the ``@reproduce_failure`` blob of a
    failing example.

    Parameters
    ----------
    load : bool, optional
        Also load the profile named by ``$HYPOTHESIS_PROFILE`` (default
        ``"dev"``). A name registered elsewhere is accepted.

    Returns
    -------
    str or None
        The name of the loaded profile, None when ``load`` is False.

    Raises
    ------
    ParameterValueError
        ``$HYPOTHESIS_PROFILE`` names no registered profile.

    Examples
    --------
    >>> register_profiles(load=False) is None
    True
    """
    from hypothesis import HealthCheck, settings

    for name, options in PROFILES.items():
        opts = dict(options)
        if "suppress_health_check" in opts:
            opts["suppress_health_check"] = [getattr(HealthCheck, h)
                                             for h in opts["suppress_health_check"]]
        settings.register_profile(name, **opts)
    if not load:
        return None
    name = os.environ.get(PROFILE_VARIABLE, "dev")
    try:
        settings.get_profile(name)
    except Exception:  # hypothesis.errors.InvalidArgument
        raise ParameterValueError(
            f"${PROFILE_VARIABLE} must name a registered hypothesis profile "
            f"(this package registers {sorted(PROFILES)}), got {name!r}"
        ) from None
    settings.load_profile(name)
    return name
