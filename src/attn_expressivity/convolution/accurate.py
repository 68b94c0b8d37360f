"""The reference convolution summed with error-free transformations (Ogita, Rump & Oishi).

The same definition as :mod:`~attn_expressivity.convolution.reference`,
``out[o] = Σ_i xpad[o·s + i·d] @ W[i] + b``, evaluated as one compensated dot
product per output element (algorithm Dot2 of Ogita, Rump & Oishi, *Accurate
sum and dot product*, SIAM J. Sci. Comput. 26, 2005): every product
``a·b = p + q`` is split exactly (Dekker's TwoProduct with Veltkamp's
splitting) and every sum ``s + p = s' + r`` too (Knuth's TwoSum); the
rounding errors ``q + r`` are accumulated in a second float. Their Theorem 5.3
(applied without the final rounding): the pair ``(s, c)`` satisfies

.. math::
    |s + c - \\sum_j a_j b_j| \\le \\gamma_{m-1}^2 \\sum_j |a_j b_j|
    \\quad (\\text{for } (m - 1) u < 1/2),

so the reference is as accurate as if it were computed in twice the working
precision, with no rounding to the working precision at the end. The split is
exact when nothing overflows or underflows in it, which :func:`conv_accurate`
checks on its inputs (every non-zero entry within ``[2^-400, 2^400]`` in
magnitude); outside that range it returns None and the caller falls back on
the plain reference and its rounding bound.

Like the plain reference, it never sees shift sets, encodings or softmax.
"""

from __future__ import annotations

import itertools

import numpy as np

from .._validation import as_float_array
from .config import NUMPY_PAD_MODE, check_image, make_config

__all__ = ["SAFE_RANGE", "conv_accurate"]

#: Magnitudes (powers of 2) within which the error-free transformations are exact.
SAFE_RANGE = (-400, 400)
_SPLIT = 134217729.0        # 2^27 + 1: Veltkamp's splitting constant for float64


def _in_range(*arrays: np.ndarray) -> bool:
    lo, hi = 2.0 ** SAFE_RANGE[0], 2.0 ** SAFE_RANGE[1]
    for a in arrays:
        mag = np.abs(a[a != 0])
        if mag.size and (mag.min() < lo or mag.max() > hi):
            return False
    return True


def _two_product(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a·b = p + q`` exactly (Dekker, with Veltkamp's splitting)."""
    p = a * b
    ca = _SPLIT * a
    a_hi = ca - (ca - a)
    a_lo = a - a_hi
    cb = _SPLIT * b
    b_hi = cb - (cb - b)
    b_lo = b - b_hi
    q = a_lo * b_lo - (((p - a_hi * b_hi) - a_lo * b_hi) - a_hi * b_lo)
    return p, q


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a + b = s + r`` exactly (Knuth)."""
    s = a + b
    z = s - a
    return s, (a - (s - z)) + (b - z)


def conv_accurate(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, *, stride=1,
                  padding="same", dilation=1, groups=1,
                  padding_mode="zeros") -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The convolution as an unevaluated sum ``s + c``, with an elementwise error bound.

    Parameters
    ----------
    x, weight, bias, stride, padding, dilation, groups, padding_mode
        As for :func:`attn_expressivity.conv`; the arrays are taken in float64
        (float16 and float32 entries are exact float64 numbers).

    Returns
    -------
    (s, c, err) : tuple of ndarray, each of the output's shape, or None
        ``|s + c − conv_exact| <= err``; None when an entry lies outside
        :data:`SAFE_RANGE` (the error-free transformations could over- or underflow).

    Examples
    --------
    >>> x = np.array([[1.0], [1e-17], [-1.0]])                 # 1 + 1e-17 - 1 in one output
    >>> s, c, err = conv_accurate(x, np.ones((3, 1, 1)), padding="valid")
    >>> float(s[0, 0] + c[0, 0]), bool(err[0, 0] < 1e-29)
    (1e-17, True)
    """
    weight = as_float_array(weight, "weight").astype(np.float64)
    cfg = make_config(weight.shape, stride=stride, padding=padding, dilation=dilation,
                      groups=groups, padding_mode=padding_mode)
    x = as_float_array(x, "x").astype(np.float64)
    check_image(x, cfg)
    b = np.zeros(cfg.d_out) if bias is None else as_float_array(bias, "bias").astype(np.float64)
    if not _in_range(x, weight, b):
        return None
    nd = cfg.ndim
    batch = x.shape[: x.ndim - nd - 1]
    xp = np.pad(x, [(0, 0)] * len(batch) + list(cfg.pad_width) + [(0, 0)],
                mode=NUMPY_PAD_MODE[cfg.padding_mode])
    out_spatial = cfg.output_shape(tuple(x.shape[len(batch):-1]))
    g, c_in = cfg.groups, cfg.d_in // cfg.groups
    c_out = cfg.d_out // g
    w = weight.reshape(cfg.kernel_size + (c_in, g, c_out))
    shape = batch + out_spatial + (g, c_out)
    s = np.zeros(shape)
    c = np.zeros(shape)
    mag = np.zeros(shape)
    terms = 0
    with np.errstate(under="ignore"):
        for index in itertools.product(*[range(k) for k in cfg.kernel_size]):
            window = tuple(slice(i * d, i * d + st * (n - 1) + 1, st)
                           for i, d, st, n in zip(index, cfg.dilation, cfg.stride, out_spatial))
            patch = xp[(Ellipsis,) + window + (slice(None),)].reshape(batch + out_spatial + (g, c_in))
            for i in range(c_in):
                a = patch[..., i][..., None]                          # (..., g, 1)
                wi = w[index][i]                                      # (g, c_out)
                p, q = _two_product(a, wi)
                s, r = _two_sum(s, p)
                c += q + r
                mag += np.abs(p)
                terms += 1
        s, r = _two_sum(s, np.broadcast_to(b.reshape(g, c_out), shape))
        c += r
        mag += np.abs(b.reshape(g, c_out))
        terms += 1
    u = 2.0**-53
    gam = terms * u / (1 - terms * u)
    # Σ|a_j b_j| <= (1 + u) Σ|fl(a_j b_j)|, and that sum, computed in float64, is raised by 2 γ_terms
    bound = gam * gam * mag * (1 + u) * (1 + 2 * gam) + terms * 5e-324
    full = batch + out_spatial + (cfg.d_out,)
    return s.reshape(full), c.reshape(full), bound.reshape(full)
