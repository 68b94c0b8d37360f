"""The reference convolution (deep-learning cross-correlation), N-D, channels last.

Written as plain shifted sums over kernel indices, independently of the
attention code: it never uses shift sets, encodings or softmax. It is checked
against ``scipy.signal.correlate`` and, where installed, PyTorch.
"""

from __future__ import annotations

import itertools

import numpy as np

from .._validation import as_float_array
from ..errors import NonFiniteError, ShapeError
from .config import NUMPY_PAD_MODE, check_image, make_config

__all__ = ["conv"]


def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, *, stride=1,
         padding="same", dilation=1, groups=1, padding_mode="zeros") -> np.ndarray:
    """Convolution in the deep-learning sense (cross-correlation), channels last.

    ``out[o] = Σ_i xpad[o·s + i·d] @ W[i] + b`` for kernel indices ``i``, where
    ``xpad`` is ``x`` padded according to ``padding``/``padding_mode``; with
    ``groups = g`` the channels split into ``g`` consecutive blocks, as in PyTorch.

    Parameters
    ----------
    x : ndarray, shape ``(*batch, *spatial, d_in)``
        Real floating-point input; ``len(spatial) = weight.ndim - 2``.
    weight : ndarray, shape ``(*kernel_size, d_in // groups, d_out)``
    bias : ndarray, shape ``(d_out,)``, optional
    stride, dilation : int or tuple of int, optional
    padding : {"same", "valid"} or int or tuple of int, optional
        PyTorch's semantics ("same" pads ``⌊d(K−1)/2⌋`` on the left).
    groups : int, optional
    padding_mode : {"zeros", "reflect", "replicate", "circular"}, optional

    Returns
    -------
    ndarray, shape ``(*batch, *out_spatial, d_out)``
        In the result dtype of ``x``, ``weight`` and ``bias``.

    Raises
    ------
    ShapeError
        Wrong number of axes, channel mismatch, kernel larger than the padded
        input, padding too large for the padding mode.
    ParameterTypeError
        Non-floating arrays, non-integer sizes.
    ParameterValueError
        Unknown padding or padding mode, groups not dividing the channels,
        ``"same"`` with stride > 1, sizes below 1.
    NonFiniteError
        NaN or infinity in ``x``, ``weight`` or ``bias``, or a result that
        overflows the floating-point range.

    Examples
    --------
    >>> x = np.arange(5.0).reshape(5, 1)            # 1-D signal, one channel
    >>> w = np.array([1.0, 0.0, -1.0]).reshape(3, 1, 1)
    >>> conv(x, w)[:, 0].tolist()                  # x[q-1] - x[q+1], zero padded
    [-1.0, -2.0, -2.0, -2.0, 3.0]
    """
    weight = as_float_array(weight, "weight")
    cfg = make_config(weight.shape, stride=stride, padding=padding, dilation=dilation,
                      groups=groups, padding_mode=padding_mode)
    x = as_float_array(x, "x")
    check_image(x, cfg)
    if bias is not None:
        bias = as_float_array(bias, "bias")
        if bias.shape != (cfg.d_out,):
            raise ShapeError(f"`bias` must have shape ({cfg.d_out},), got {bias.shape}")

    nd = cfg.ndim
    batch = x.shape[: x.ndim - nd - 1]
    widths = [(0, 0)] * len(batch) + list(cfg.pad_width) + [(0, 0)]
    xp = np.pad(x, widths, mode=NUMPY_PAD_MODE[cfg.padding_mode])
    out_spatial = cfg.output_shape(tuple(x.shape[len(batch):-1]))
    dtype = np.result_type(x, weight, *([] if bias is None else [bias]))
    c_in, c_out = cfg.d_in // cfg.groups, cfg.d_out // cfg.groups
    out = np.zeros(batch + out_spatial + (cfg.groups, c_out), dtype=dtype)
    # weight[i] is (c_in, g * c_out); output channel o belongs to group o // c_out.
    w_groups = weight.reshape(cfg.kernel_size + (c_in, cfg.groups, c_out))
    with np.errstate(over="ignore", invalid="ignore"):   # overflow is reported below
        _accumulate(out, xp, w_groups, cfg, out_spatial)
        out = out.reshape(batch + out_spatial + (cfg.d_out,))
        if bias is not None:
            out += bias
    if not np.isfinite(out).all():
        raise NonFiniteError(
            f"the convolution overflowed the {out.dtype.name} range (max |x| = "
            f"{float(np.abs(x).max()):.3e}, max |weight| = {float(np.abs(weight).max()):.3e}); "
            f"rescale the input or the kernel"
        )
    return out


def _accumulate(out: np.ndarray, xp: np.ndarray, w_groups: np.ndarray, cfg, out_spatial) -> None:
    """``out[..., g, :] += Σ_i xpad[o·s + i·d] @ W[i]`` over kernel indices ``i``."""
    g, c_in = cfg.groups, w_groups.shape[-3]
    for index in itertools.product(*[range(k) for k in cfg.kernel_size]):
        window = tuple(
            slice(i * d, i * d + s * (n - 1) + 1, s)
            for i, d, s, n in zip(index, cfg.dilation, cfg.stride, out_spatial)
        )
        patch = xp[(Ellipsis,) + window + (slice(None),)]          # (*batch, *out, d_in)
        patch = patch.reshape(patch.shape[:-1] + (g, c_in))        # (*batch, *out, g, c_in)
        w = w_groups[index]                                        # (c_in, g, c_out)
        if g == 1:
            out[..., 0, :] += patch[..., 0, :] @ w[:, 0, :]
        else:
            out += np.einsum("...gc,cgo->...go", patch, w)
