"""Validation of convolution hyper-parameters, with PyTorch's semantics.

:class:`ConvConfig` holds the *arguments* of a convolution after validation
(types, ranges, PyTorch's rejection rules) and the per-axis padding they imply.
It does no arithmetic on images: the reference convolution
(:mod:`attn_expressivity.convolution.reference`) and the attention construction
(:mod:`attn_expressivity.theorem.construction`) each compute with these numbers
in their own way, so they remain independent oracles.

Padding semantics (PyTorch ``Conv{1,2,3}d``):

* ``"valid"``: no padding.
* ``"same"``: total ``d·(K−1)`` per axis, ``⌊total/2⌋`` on the left and the rest
  on the right; refused with ``stride > 1`` (as PyTorch does).
* an int or a per-axis tuple ``p``: ``p`` on both sides.
* ``padding_mode``: ``"zeros"``, ``"reflect"`` (needs ``pad < size``),
  ``"replicate"``, ``"circular"`` (needs ``pad <= size``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import as_int, as_int_tuple
from ..errors import ParameterTypeError, ParameterValueError, ShapeError

__all__ = ["ConvConfig", "NUMPY_PAD_MODE", "PADDING_MODES", "check_image", "make_config"]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


@dataclass(frozen=True)
class ConvConfig:
    """A validated convolution configuration (see :func:`make_config`)."""

    ndim: int
    kernel_size: tuple[int, ...]
    d_in: int
    d_out: int
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    padding: str | tuple[int, ...]
    padding_mode: str
    pad_width: tuple[tuple[int, int], ...]

    def output_shape(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        """Spatial output shape for an input of spatial shape ``spatial``.

        Raises
        ------
        ShapeError
            When the (dilated) kernel is larger than the padded input, or the
            padding is too large for ``padding_mode``.
        """
        self.check_input_spatial(spatial)
        out = []
        for size, (lo, hi), k, d, s in zip(spatial, self.pad_width, self.kernel_size,
                                            self.dilation, self.stride):
            span = size + lo + hi - d * (k - 1)
            out.append((span - 1) // s + 1)
        return tuple(out)

    def check_input_spatial(self, spatial: tuple[int, ...]) -> None:
        """Refuse spatial shapes that PyTorch refuses for this configuration."""
        for axis, (size, (lo, hi), k, d) in enumerate(
            zip(spatial, self.pad_width, self.kernel_size, self.dilation)
        ):
            if size < 1:
                raise ShapeError(f"spatial axis {axis} of `x` must have size >= 1, got {size}")
            if self.padding_mode == "reflect" and max(lo, hi) >= size:
                raise ShapeError(
                    f"reflect padding needs pad < input size on every axis; axis {axis} "
                    f"has size {size} and padding {(lo, hi)}"
                )
            if self.padding_mode == "circular" and max(lo, hi) > size:
                raise ShapeError(
                    f"circular padding needs pad <= input size on every axis; axis {axis} "
                    f"has size {size} and padding {(lo, hi)}"
                )
            span = size + lo + hi
            if span < d * (k - 1) + 1:
                raise ShapeError(
                    f"kernel larger than the padded input on spatial axis {axis}: the kernel "
                    f"spans {d * (k - 1) + 1} pixels (size {k}, dilation {d}) but the padded "
                    f"input has {span} ({size} + padding {lo} + {hi})"
                )

    def interior_mask(self, spatial: tuple[int, ...]) -> np.ndarray:
        """True for the output pixels whose receptive field avoids the padding.

        Parameters
        ----------
        spatial : tuple of int
            The input's spatial shape.

        Returns
        -------
        ndarray of bool, shape ``self.output_shape(spatial)``

        Examples
        --------
        >>> make_config((3, 1, 1)).interior_mask((5,)).tolist()
        [False, True, True, True, False]
        """
        axes = []
        for size, (lo, _), k, d, s, n in zip(spatial, self.pad_width, self.kernel_size,
                                             self.dilation, self.stride, self.output_shape(spatial)):
            start = np.arange(n) * s           # window [start, start + d(K-1)] in padded coordinates
            axes.append((start >= lo) & (start + d * (k - 1) <= lo + size - 1))
        mask = axes[0]
        for a in axes[1:]:
            mask = mask[..., None] & a
        return mask

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly view."""
        return {
            "ndim": self.ndim,
            "kernel_size": list(self.kernel_size),
            "in_channels": self.d_in,
            "out_channels": self.d_out,
            "stride": list(self.stride),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "padding": self.padding if isinstance(self.padding, str) else list(self.padding),
            "padding_mode": self.padding_mode,
        }


def make_config(weight_shape: tuple[int, ...], *, stride: object = 1, padding: object = "same",
                dilation: object = 1, groups: object = 1, padding_mode: object = "zeros") -> ConvConfig:
    """Validate a convolution's hyper-parameters against its kernel shape.

    Parameters
    ----------
    weight_shape : tuple of int
        ``(*kernel_size, d_in // groups, d_out)``; ``ndim = len(weight_shape) - 2``.
    stride, dilation : int or tuple of int
        Per spatial axis, ``>= 1``.
    padding : {"same", "valid"} or int or tuple of int
        See the module docstring.
    groups : int
        Must divide both ``d_in`` and ``d_out``.
    padding_mode : {"zeros", "reflect", "replicate", "circular"}

    Returns
    -------
    ConvConfig

    Raises
    ------
    ShapeError, ParameterValueError, ParameterTypeError
        With a message naming the argument, what was expected and what was given.

    Examples
    --------
    >>> make_config((4, 3, 2, 5)).pad_width
    ((1, 2), (1, 1))
    """
    if len(weight_shape) < 3:
        raise ShapeError(
            "`weight` must have shape (*kernel_size, d_in // groups, d_out) with at least "
            f"one spatial axis, got shape {tuple(weight_shape)}"
        )
    ndim = len(weight_shape) - 2
    kernel_size = tuple(int(k) for k in weight_shape[:ndim])
    if any(k < 1 for k in kernel_size):
        raise ShapeError(f"kernel sizes must be >= 1, got weight shape {tuple(weight_shape)}")
    d_in_g, d_out = int(weight_shape[-2]), int(weight_shape[-1])
    if d_in_g < 1 or d_out < 1:
        raise ShapeError(f"channel axes of `weight` must be >= 1, got shape {tuple(weight_shape)}")
    groups = as_int(groups, "groups", minimum=1)
    if d_out % groups:
        raise ParameterValueError(
            f"`groups` ({groups}) must divide the output channels ({d_out})"
        )
    stride_t = as_int_tuple(stride, ndim, "stride", minimum=1)
    dilation_t = as_int_tuple(dilation, ndim, "dilation", minimum=1)
    if not isinstance(padding_mode, str):
        raise ParameterTypeError(
            f"`padding_mode` must be one of {PADDING_MODES}, got {type(padding_mode).__name__}"
        )
    if padding_mode not in PADDING_MODES:
        raise ParameterValueError(f"`padding_mode` must be one of {PADDING_MODES}, got {padding_mode!r}")
    pad: str | tuple[int, ...]
    if isinstance(padding, str):
        if padding == "valid":
            pad_width = tuple((0, 0) for _ in range(ndim))
        elif padding == "same":
            if any(s != 1 for s in stride_t):
                raise ParameterValueError(
                    f"padding='same' is not supported for strided convolutions (as in PyTorch), "
                    f"got stride {stride_t}"
                )
            totals = [d * (k - 1) for k, d in zip(kernel_size, dilation_t)]
            pad_width = tuple((t // 2, t - t // 2) for t in totals)
        else:
            raise ParameterValueError(
                f"`padding` must be 'same', 'valid', an int or a tuple of {ndim} ints, got {padding!r}"
            )
        pad = padding
    else:
        pad = as_int_tuple(padding, ndim, "padding", minimum=0)
        pad_width = tuple((p, p) for p in pad)
    return ConvConfig(ndim=ndim, kernel_size=kernel_size, d_in=d_in_g * groups, d_out=d_out,
                      stride=stride_t, dilation=dilation_t, groups=groups, padding=pad,
                      padding_mode=padding_mode, pad_width=pad_width)


NUMPY_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def check_image(x: np.ndarray, cfg: ConvConfig, name: str = "x") -> None:
    """Check that ``x`` has ``(*batch, *spatial, d_in)`` axes matching ``cfg``."""
    if x.ndim < cfg.ndim + 1:
        raise ShapeError(
            f"`{name}` must have shape (*batch, *spatial, d_in) with {cfg.ndim} spatial axes "
            f"(from the kernel), got shape {x.shape}"
        )
    if x.shape[-1] != cfg.d_in:
        raise ShapeError(
            f"channel mismatch: `{name}` has {x.shape[-1]} channels (last axis) but the kernel "
            f"expects d_in = {cfg.d_in} (= {cfg.d_in // cfg.groups} per group x {cfg.groups} groups)"
        )
    cfg.check_input_spatial(tuple(x.shape[-cfg.ndim - 1:-1]))
