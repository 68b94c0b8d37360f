"""Random convolution instances: a standard-normal kernel, bias and image.

The command line's ``verify``, the benchmarks and the examples draw their
instances here, so a seed names the same instance everywhere.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._validation import as_int, as_int_tuple
from ..errors import ParameterValueError

__all__ = ["Instance", "random_instance"]


class Instance(NamedTuple):
    """A random convolution and input (see :func:`random_instance`)."""

    weight: np.ndarray
    x: np.ndarray
    bias: np.ndarray | None


def random_instance(*, kernel_size=3, in_channels: int = 8, out_channels: int = 16,
                    image_size=32, ndim: int | None = None, groups: int = 1, bias: bool = True,
                    batch: tuple[int, ...] = (), seed: int = 0) -> Instance:
    """Standard-normal kernel, bias and image for a configuration.

    Parameters
    ----------
    kernel_size, image_size : int or tuple of int
        Per spatial axis; an int (or 1-tuple) is used on every axis.
    in_channels, out_channels, groups : int
    ndim : int, optional
        Spatial axes (default: the longer of the two tuples, else 2).
    bias : bool
    batch : tuple of int
    seed : int
        ``>= 0``.

    Returns
    -------
    Instance
        ``weight (*kernel_size, in_channels // groups, out_channels)``,
        ``x (*batch, *image_size, in_channels)``, ``bias (out_channels,)`` or None.

    Raises
    ------
    ParameterTypeError, ParameterValueError, ShapeError
        Non-integer sizes, sizes below 1, a negative seed, ``groups`` not
        dividing the channels, tuples of different lengths.

    Examples
    --------
    >>> w, x, b = random_instance(kernel_size=(3, 5), in_channels=2, out_channels=4, image_size=7)
    >>> w.shape, x.shape, b.shape
    ((3, 5, 2, 4), (7, 7, 2), (4,))
    """
    ks = kernel_size if isinstance(kernel_size, tuple) else (kernel_size,)
    im = image_size if isinstance(image_size, tuple) else (image_size,)
    if ndim is None:
        ndim = max(len(ks), len(im)) if max(len(ks), len(im)) > 1 else 2
    ndim = as_int(ndim, "ndim", minimum=1)
    ks = as_int_tuple(ks[0] if len(ks) == 1 else ks, ndim, "kernel_size", minimum=1)
    im = as_int_tuple(im[0] if len(im) == 1 else im, ndim, "image_size", minimum=1)
    d_in = as_int(in_channels, "in_channels", minimum=1)
    d_out = as_int(out_channels, "out_channels", minimum=1)
    groups = as_int(groups, "groups", minimum=1)
    if d_in % groups or d_out % groups:
        raise ParameterValueError(
            f"`groups` ({groups}) must divide in_channels ({d_in}) and out_channels ({d_out})"
        )
    rng = np.random.default_rng(as_int(seed, "seed", minimum=0))
    weight = rng.standard_normal(ks + (d_in // groups, d_out))
    x = rng.standard_normal(tuple(batch) + im + (d_in,))
    b = rng.standard_normal(d_out) if bias else None
    return Instance(weight, x, b)
