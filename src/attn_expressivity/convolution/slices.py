"""Kernel slices ``W_Δ``: the ``(d_in, d_out)`` matrix a kernel applies at one kernel index.

Lemma 1 gives each head the slice of its shift; with ``groups = g`` a slice is
block diagonal (input block ``j`` feeds output block ``j`` only). Slices are
listed in raster (C) order of kernel indices, the order of
:func:`attn_expressivity.shift_set`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["kernel_slices"]


def kernel_slices(weight: np.ndarray, groups: int = 1) -> np.ndarray:
    """The full ``(d_in, d_out)`` matrix ``W_Δ`` of every kernel index, in raster order.

    Parameters
    ----------
    weight : ndarray, shape ``(*kernel_size, d_in // groups, d_out)``
    groups : int, optional
        Must divide ``d_out`` (validated by the callers through
        :func:`attn_expressivity.convolution.config.make_config`).

    Returns
    -------
    ndarray, shape ``(prod(kernel_size), d_in, d_out)``
        In the dtype of ``weight``.

    Examples
    --------
    >>> kernel_slices(np.ones((1, 1, 2)), groups=2)[0].tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    ks = weight.shape[:-2]
    c_in, d_out = weight.shape[-2:]
    c_out = d_out // groups
    flat = weight.reshape((math.prod(ks), c_in, d_out))
    full = np.zeros((flat.shape[0], c_in * groups, d_out), dtype=weight.dtype)
    for j in range(groups):
        full[:, j * c_in:(j + 1) * c_in, j * c_out:(j + 1) * c_out] = flat[:, :, j * c_out:(j + 1) * c_out]
    return full
