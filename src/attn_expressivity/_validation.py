"""Validation helpers shared by the public functions.

Every public entry point validates its arguments here, with messages that say
what was expected and what was given. Nothing is silently coerced: a float
where an int is expected, or an integer image, is an error.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from .errors import (
    NonFiniteError,
    ParameterTypeError,
    ParameterValueError,
    ShapeError,
)


def as_int(value: object, name: str, *, minimum: int | None = None) -> int:
    """Return ``value`` as a Python int, refusing bools, floats and strings."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterTypeError(
            f"`{name}` must be an integer, got {type(value).__name__} {value!r}"
        )
    value = int(value)
    if minimum is not None and value < minimum:
        raise ParameterValueError(f"`{name}` must be >= {minimum}, got {value}")
    return value


def as_int_tuple(value: object, ndim: int, name: str, *, minimum: int | None = None) -> tuple[int, ...]:
    """Broadcast an int or a length-``ndim`` sequence of ints to a tuple."""
    if isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, str):
        items = list(value)
        if len(items) != ndim:
            raise ShapeError(
                f"`{name}` must be an int or a sequence of {ndim} ints "
                f"(one per spatial axis), got {len(items)} values: {tuple(items)!r}"
            )
        return tuple(as_int(v, f"{name}[{i}]", minimum=minimum) for i, v in enumerate(items))
    return (as_int(value, name, minimum=minimum),) * ndim


def as_alpha(alpha: object) -> float:
    """Validate the inverse width alpha: a real number in [0, inf]."""
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise ParameterTypeError(
            f"`alpha` must be a real number in [0, inf], got {type(alpha).__name__} {alpha!r}"
        )
    alpha = float(alpha)
    if math.isnan(alpha) or alpha < 0:
        raise ParameterValueError(f"`alpha` must be a real number in [0, inf], got {alpha!r}")
    return alpha


_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def as_float_array(value: object, name: str, *, min_ndim: int = 0, allow_nonfinite: bool = False) -> np.ndarray:
    """Return ``value`` as a floating-point ndarray without changing its dtype.

    Integer, boolean, complex and object arrays are refused rather than cast.
    """
    arr = np.asarray(value)
    if arr.dtype not in _FLOAT_DTYPES:
        raise ParameterTypeError(
            f"`{name}` must be a real floating-point array (float16, float32 or float64), "
            f"got dtype {arr.dtype}"
        )
    if arr.ndim < min_ndim:
        raise ShapeError(f"`{name}` must have at least {min_ndim} axes, got shape {arr.shape}")
    if not allow_nonfinite and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise NonFiniteError(
            f"`{name}` must hold only finite values, got {arr[tuple(bad)].item()!r} at index {tuple(int(i) for i in bad)}"
        )
    return arr


def as_real(value: object, name: str) -> float:
    """Return ``value`` as a Python float, refusing bools, strings and other non-reals."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterTypeError(f"`{name}` must be a real number, got {type(value).__name__} {value!r}")
    return float(value)
