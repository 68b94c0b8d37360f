"""Shift sets: the bijection between attention heads and kernel offsets.

Convention (docs/conventions.md, "shift set"): along an axis with kernel size
``K`` and dilation ``d``, kernel index ``i`` sits at offset

.. math:: \\Delta(i) = i\\,d - \\lfloor d (K - 1) / 2 \\rfloor ,

which is the paper's ``{-⌊K/2⌋, …, ⌊K/2⌋}`` for odd ``K`` and PyTorch's
``padding="same"`` for even ``K``. Heads are numbered in raster (C) order of
kernel indices, and head ``h`` attends to the key at ``k = q + Δ_h``
(``Δ_h = k − q``; the paper's Lemma 1 writes ``f(h) = q − k = −Δ_h``).
"""

from __future__ import annotations

import numpy as np

from .._validation import as_int, as_int_tuple
from ..errors import ShapeError

__all__ = ["shift_set", "axis_shifts", "left_offsets"]


def _kernel_tuple(kernel_size: object, ndim: int | None) -> tuple[int, ...]:
    if isinstance(kernel_size, (tuple, list, np.ndarray)):
        ks = as_int_tuple(kernel_size, len(kernel_size), "kernel_size", minimum=1)
        if not ks:
            raise ShapeError("`kernel_size` must have at least one axis, got ()")
        if ndim is not None and as_int(ndim, "ndim", minimum=1) != len(ks):
            raise ShapeError(f"`kernel_size` {ks} has {len(ks)} axes but `ndim` is {ndim}")
        return ks
    nd = 2 if ndim is None else as_int(ndim, "ndim", minimum=1)
    return as_int_tuple(kernel_size, nd, "kernel_size", minimum=1)


def left_offsets(kernel_size: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[int, ...]:
    """Per-axis ``⌊d (K − 1) / 2⌋``: the offset of kernel index 0 is minus this."""
    return tuple(d * (k - 1) // 2 for k, d in zip(kernel_size, dilation))


def axis_shifts(size: int, dilation: int = 1) -> np.ndarray:
    """Offsets of the kernel indices ``0 … size-1`` along one axis.

    Parameters
    ----------
    size : int
        Kernel size ``K`` along the axis (``>= 1``).
    dilation : int, optional
        Dilation ``d`` (``>= 1``).

    Returns
    -------
    numpy.ndarray of int64, shape ``(size,)``
        ``i·d − ⌊d(K−1)/2⌋`` for ``i = 0 … K−1``.

    Examples
    --------
    >>> axis_shifts(3).tolist(), axis_shifts(4).tolist(), axis_shifts(2, 2).tolist()
    ([-1, 0, 1], [-1, 0, 1, 2], [-1, 1])
    """
    size = as_int(size, "size", minimum=1)
    dilation = as_int(dilation, "dilation", minimum=1)
    return np.arange(size, dtype=np.int64) * dilation - dilation * (size - 1) // 2


def shift_set(kernel_size: int | tuple[int, ...], *, dilation: int | tuple[int, ...] = 1,
              ndim: int | None = None) -> np.ndarray:
    """The offsets ``Δ_h = k − q`` of the heads that express a convolution.

    Parameters
    ----------
    kernel_size : int or tuple of int
        Kernel size per spatial axis. An int is used for every axis; the number
        of axes is then ``ndim`` (2, the paper's setting, when ``ndim`` is None).
    dilation : int or tuple of int, optional
        Dilation per axis (default 1).
    ndim : int, optional
        Number of spatial axes when ``kernel_size`` is an int.

    Returns
    -------
    numpy.ndarray of int64, shape ``(n_heads, ndim)``
        ``n_heads = prod(kernel_size)``; row ``h`` is the offset of the kernel
        index whose raster (C-order) position is ``h``.

    Raises
    ------
    ParameterTypeError
        A size or dilation that is not an integer.
    ParameterValueError
        A size or dilation below 1.
    ShapeError
        A per-axis tuple whose length does not match the number of axes.

    Examples
    --------
    >>> shift_set(3).tolist()
    [[-1, -1], [-1, 0], [-1, 1], [0, -1], [0, 0], [0, 1], [1, -1], [1, 0], [1, 1]]
    >>> shift_set((2,), dilation=2).tolist()
    [[-1], [1]]
    """
    ks = _kernel_tuple(kernel_size, ndim)
    dil = as_int_tuple(dilation, len(ks), "dilation", minimum=1)
    grids = np.meshgrid(*[axis_shifts(k, d) for k, d in zip(ks, dil)], indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=-1)
