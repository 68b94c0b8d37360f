"""The paper's padding remark: attention *without* padding is not zero padding.

Attention is "same"-size by nature. Run on the unpadded image, a head whose
target ``q + Δ_h`` falls outside it cannot attend to a zero there: softmax
renormalises over the in-image pixels. So the construction pads the input with
the convolution's padding mode, attends over the padded image and crops
(:class:`~attn_expressivity.ConvAttention`); :func:`border_effect` measures
what happens without that step.
"""

from __future__ import annotations

import numpy as np

from .._validation import as_float_array
from ..convolution.config import check_image
from ..convolution.reference import conv
from .construction import conv_to_mhsa

__all__ = ["border_effect"]


def border_effect(weight: np.ndarray, x: np.ndarray, bias: np.ndarray | None = None, *,
                  alpha: float) -> dict[str, float]:
    """Attention run on the unpadded image against ``conv(..., padding="same")``.

    Runs the attention layer of a ``padding="same"``, zeros-padded convolution
    directly on the unpadded image (no pad, no crop), where softmax at the border
    renormalises over in-image pixels, and compares with ``conv(..., padding="same")``.

    Parameters
    ----------
    weight : ndarray, shape ``(*kernel_size, d_in, d_out)``
    x : ndarray, shape ``(*batch, *spatial, d_in)``
    bias : ndarray, shape ``(d_out,)``, optional
    alpha : float
        Inverse width, in ``[0, ∞]``.

    Returns
    -------
    dict
        ``interior`` and ``border``: the largest error over pixels whose
        receptive field is inside / crosses the image edge. The interior error
        vanishes as ``α → ∞``; the border error does not.

    Raises
    ------
    ShapeError, ParameterTypeError, ParameterValueError, NonFiniteError
        As for :func:`attn_expressivity.conv_to_mhsa`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> e = border_effect(rng.standard_normal((3, 3, 1, 1)), rng.standard_normal((6, 6, 1)),
    ...                   alpha=float("inf"))
    >>> e["interior"] < 1e-12 < 0.1 < e["border"]
    True
    """
    layer = conv_to_mhsa(weight, bias, alpha=alpha, padding="same")
    x = as_float_array(x, "x")
    check_image(x, layer.config)
    err = np.abs(layer.mhsa(x) - conv(x, layer.kernel, layer.bias, padding="same")).max(axis=-1)
    nd = layer.config.ndim
    mask = layer.config.interior_mask(tuple(x.shape[x.ndim - nd - 1:-1]))
    err = err.reshape((-1,) + mask.shape).max(axis=0)
    return {"interior": float(err[mask].max()) if mask.any() else 0.0,
            "border": float(err[~mask].max()) if (~mask).any() else 0.0}
