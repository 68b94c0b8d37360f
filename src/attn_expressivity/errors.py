"""The exception hierarchy.

Every exception the package raises on purpose derives from
:class:`AttnExpressivityError` *and* from the builtin that describes the
problem (``ValueError``, ``TypeError``, ``NotImplementedError`` or
``ImportError``; ``RuntimeError`` where a converted PyTorch module refuses an
input as the module it replaces does), so callers can catch either.
"""

from __future__ import annotations

__all__ = [
    "AttnExpressivityError",
    "ShapeError",
    "ParameterValueError",
    "ParameterTypeError",
    "NonFiniteError",
    "HeadDimensionError",
    "NotSeparableError",
    "CertificationSizeError",
    "UnsupportedConfigurationError",
    "OptionalDependencyError",
    "InputMismatchError",
]


class AttnExpressivityError(Exception):
    """Base class of every error raised on purpose by ``attn_expressivity``."""


class ShapeError(AttnExpressivityError, ValueError):
    """An array has the wrong number of axes, or axes that do not fit together."""


class ParameterValueError(AttnExpressivityError, ValueError):
    """A parameter has the right type but a value outside its domain."""


class ParameterTypeError(AttnExpressivityError, TypeError):
    """A parameter has the wrong type (e.g. a float kernel size, an integer image)."""


class NonFiniteError(AttnExpressivityError, ValueError):
    """An input array holds NaN or infinite values."""


class HeadDimensionError(AttnExpressivityError, ValueError):
    """The requested head dimension is below the rank a kernel slice needs."""


class NotSeparableError(AttnExpressivityError, ValueError):
    """The separable fast path was requested for a layer whose scores do not factorise."""


class CertificationSizeError(AttnExpressivityError, ValueError):
    """An instance is too large for a certified (ball-arithmetic) check."""


class UnsupportedConfigurationError(AttnExpressivityError, NotImplementedError):
    """A configuration that is valid in principle but not supported."""


class OptionalDependencyError(AttnExpressivityError, ImportError):
    """An optional dependency needed for the requested feature is not installed."""


class InputMismatchError(AttnExpressivityError, RuntimeError):
    """An input that does not fit a converted PyTorch module (dtype, device, channels, size).

    A ``RuntimeError``, as ``torch.nn.Conv{1,2,3}d`` raises for the same input.
    """
