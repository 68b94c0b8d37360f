"""Hypothesis strategies: convolution configurations, inputs and kernels that fit them.

hypothesis is imported when a strategy is called, never when this module is imported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import as_int
from ..convolution.config import PADDING_MODES, ConvConfig, make_config
from ..errors import ParameterTypeError, ParameterValueError

if TYPE_CHECKING:  # pragma: no cover
    from hypothesis.strategies import SearchStrategy

__all__ = ["conv_configs", "conv_options", "images", "kernels", "min_image_shape"]


def _bound(value: object, name: str, minimum: int) -> int:
    return as_int(value, name, minimum=minimum)


def conv_options(config: ConvConfig) -> dict[str, Any]:
    """The keyword arguments of :func:`~attn_expressivity.conv` that ``config`` stands for.

    Parameters
    ----------
    config : ConvConfig

    Returns
    -------
    dict
        ``stride``, ``padding``, ``dilation``, ``groups``, ``padding_mode``.

    Raises
    ------
    ParameterTypeError
        ``config`` is not a :class:`~attn_expressivity.convolution.config.ConvConfig`.

    Examples
    --------
    >>> from attn_expressivity.convolution.config import make_config
    >>> conv_options(make_config((3, 2, 4), padding="valid"))["padding"]
    'valid'
    """
    _check_config(config)
    return {"stride": config.stride, "padding": config.padding, "dilation": config.dilation,
            "groups": config.groups, "padding_mode": config.padding_mode}


def _check_config(config: object) -> None:
    if not isinstance(config, ConvConfig):
        raise ParameterTypeError(
            f"`config` must be a ConvConfig (drawn from conv_configs() or made by "
            f"make_config()), got {type(config).__name__}"
        )


def conv_configs(*, ndim: int | Sequence[int] = (1, 2, 3), max_kernel_size: int = 3,
                 max_channels: int = 4, max_groups: int = 2, max_stride: int = 2,
                 max_dilation: int = 2, max_padding: int = 2,
                 padding_modes: Sequence[str] = PADDING_MODES) -> SearchStrategy[ConvConfig]:
    """Convolution hyper-parameters that are valid together.

    Draws the number of spatial axes, a kernel size, stride and dilation per
    axis, ``groups`` and channel counts it divides, an explicit or ``"same"``
    / ``"valid"`` padding (``"same"`` only with stride 1, as in PyTorch) and
    a padding mode, and validates them with
    :func:`~attn_expressivity.convolution.config.make_config`. Every bound is inclusive.

    Parameters
    ----------
    ndim : int or sequence of int, optional
        The spatial dimension, or the dimensions to choose from (default 1, 2, 3).
    max_kernel_size, max_stride, max_dilation : int, optional
        Per-axis upper bounds (default 3, 2, 2), each ``>= 1``.
    max_channels : int, optional
        Upper bound on ``d_in`` and ``d_out`` (default 4).
    max_groups : int, optional
        Upper bound on ``groups`` (default 2); also capped by ``max_channels``.
    max_padding : int, optional
        Upper bound on an explicit per-axis padding (default 2), ``>= 0``.
    padding_modes : sequence of str, optional
        Modes to choose from (default all four).

    Returns
    -------
    hypothesis.strategies.SearchStrategy of ConvConfig
        Its weight shape is ``(*config.kernel_size, config.d_in // config.groups,
        config.d_out)``; draw inputs with :func:`images`.

    Raises
    ------
    ParameterTypeError, ParameterValueError
        A bound that is not an integer or is below its minimum; an unknown
        padding mode; no ``ndim`` to choose from.

    Examples
    --------
    >>> from hypothesis import find
    >>> cfg = find(conv_configs(ndim=2, max_groups=1), lambda c: c.kernel_size == (3, 2))
    >>> cfg.ndim, cfg.kernel_size, cfg.d_in, cfg.groups
    (2, (3, 2), 1, 1)
    """
    from hypothesis import strategies as st

    dims = [ndim] if isinstance(ndim, int) or not isinstance(ndim, Sequence) else list(ndim)
    if not dims:
        raise ParameterValueError("`ndim` must be an int >= 1 or a non-empty sequence of them, got []")
    dims = [_bound(d, "ndim", 1) for d in dims]
    k_max = _bound(max_kernel_size, "max_kernel_size", 1)
    c_max = _bound(max_channels, "max_channels", 1)
    g_max = min(_bound(max_groups, "max_groups", 1), c_max)
    s_max = _bound(max_stride, "max_stride", 1)
    d_max = _bound(max_dilation, "max_dilation", 1)
    p_max = _bound(max_padding, "max_padding", 0)
    if isinstance(padding_modes, str) or not isinstance(padding_modes, Sequence) or not padding_modes:
        raise ParameterValueError(
            f"`padding_modes` must be a non-empty sequence of {PADDING_MODES}, got {padding_modes!r}"
        )
    for mode in padding_modes:
        if mode not in PADDING_MODES:
            raise ParameterValueError(f"`padding_modes` must hold modes of {PADDING_MODES}, got {mode!r}")

    @st.composite
    def draw(draw_: Any) -> ConvConfig:
        nd = draw_(st.sampled_from(dims))
        per_axis = lambda hi: st.tuples(*[st.integers(1, hi)] * nd)  # noqa: E731
        kernel_size = draw_(per_axis(k_max))
        groups = draw_(st.integers(1, g_max))
        d_in = groups * draw_(st.integers(1, c_max // groups))
        d_out = groups * draw_(st.integers(1, c_max // groups))
        stride = draw_(per_axis(s_max))
        dilation = draw_(per_axis(d_max))
        kinds = ["valid", "int", "tuple"] + (["same"] if max(stride) == 1 else [])
        kind = draw_(st.sampled_from(kinds))
        padding: object
        if kind in ("valid", "same"):
            padding = kind
        elif kind == "int":
            padding = draw_(st.integers(0, p_max))
        else:
            padding = draw_(st.tuples(*[st.integers(0, p_max)] * nd))
        mode = draw_(st.sampled_from(list(padding_modes)))
        return make_config(kernel_size + (d_in // groups, d_out), stride=stride, padding=padding,
                           dilation=dilation, groups=groups, padding_mode=mode)

    return draw()


def min_image_shape(config: ConvConfig) -> tuple[int, ...]:
    """The smallest spatial shape ``config`` accepts, per axis.

    An axis of size ``n`` with padding ``(lo, hi)`` needs ``n + lo + hi >=
    d(K − 1) + 1`` (the dilated kernel fits), ``n > max(lo, hi)`` for reflect
    padding and ``n >= max(lo, hi)`` for circular padding.

    Parameters
    ----------
    config : ConvConfig

    Returns
    -------
    tuple of int, length ``config.ndim``

    Raises
    ------
    ParameterTypeError
        ``config`` is not a ConvConfig.

    Examples
    --------
    >>> from attn_expressivity.convolution.config import make_config
    >>> min_image_shape(make_config((3, 5, 1, 1), padding="valid"))
    (3, 5)
    >>> min_image_shape(make_config((3, 1, 1), padding=2, padding_mode="reflect"))
    (3,)
    """
    _check_config(config)
    shape = []
    for (lo, hi), k, d in zip(config.pad_width, config.kernel_size, config.dilation):
        need = max(1, d * (k - 1) + 1 - lo - hi)
        if config.padding_mode == "reflect":
            need = max(need, max(lo, hi) + 1)
        elif config.padding_mode == "circular":
            need = max(need, max(lo, hi))
        shape.append(need)
    return tuple(shape)


def _elements(dtype: np.dtype, max_abs: float, min_abs: float) -> Any:
    from hypothesis import strategies as st

    width = 32 if dtype == np.float32 else 64
    mag = st.floats(min_abs, max_abs, width=width)
    return st.one_of(st.just(0.0), mag, mag.map(lambda v: -v))


def _check_dtype(dtype: object) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ParameterTypeError(f"`dtype` must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise ParameterTypeError(f"`dtype` must be float32 or float64, got {dt}")
    return dt


def _check_range(max_abs: object, min_abs: object) -> tuple[float, float]:
    for name, value in (("max_abs", max_abs), ("min_abs", min_abs)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterTypeError(f"`{name}` must be a real number, got {type(value).__name__}")
    if not (0 < float(min_abs) <= float(max_abs) < math.inf):
        raise ParameterValueError(
            f"need 0 < min_abs <= max_abs < inf, got min_abs={min_abs!r}, max_abs={max_abs!r}"
        )
    return float(max_abs), float(min_abs)


def images(config: ConvConfig, *, batch_shape: tuple[int, ...] = (), max_extra: int = 4,
           dtype: object = np.float64, max_abs: float = 1.0, min_abs: float = 2.0**-16,
           elements: Any = None) -> SearchStrategy[np.ndarray]:
    """Inputs ``x`` of shape ``(*batch_shape, *spatial, d_in)`` that ``config`` accepts.

    Each spatial side lies between :func:`min_image_shape` and that plus
    ``max_extra``. Entries are 0 or have magnitude in ``[min_abs, max_abs]``:
    the default keeps products of inputs and weights far from underflow, which
    the rounding analysis of :func:`~attn_expressivity.verify` does not model.

    Parameters
    ----------
    config : ConvConfig
    batch_shape : tuple of int, optional
    max_extra : int, optional
        ``>= 0`` (default 4).
    dtype : {float64, float32}, optional
    max_abs, min_abs : float, optional
        ``0 < min_abs <= max_abs < inf`` (default ``1`` and ``2**-16``).
    elements : hypothesis strategy, optional
        Replaces the default element strategy (it must give values of ``dtype``).

    Returns
    -------
    hypothesis.strategies.SearchStrategy of numpy.ndarray

    Raises
    ------
    ParameterTypeError, ParameterValueError
        A bad ``config``, ``dtype``, size or range.

    Examples
    --------
    >>> from attn_expressivity.convolution.config import make_config
    >>> from hypothesis import find
    >>> x = find(images(make_config((3, 2, 5), padding="valid"), max_extra=0), lambda x: True)
    >>> x.shape, x.dtype
    ((3, 2), dtype('float64'))
    """
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    _check_config(config)
    dt = _check_dtype(dtype)
    extra = _bound(max_extra, "max_extra", 0)
    batch = tuple(_bound(b, f"batch_shape[{i}]", 1) for i, b in enumerate(batch_shape))
    hi, lo = _check_range(max_abs, min_abs)
    elems = _elements(dt, hi, lo) if elements is None else elements
    low = min_image_shape(config)
    spatial = st.tuples(*[st.integers(n, n + extra) for n in low])
    return spatial.flatmap(lambda sp: arrays(dt, batch + sp + (config.d_in,), elements=elems))


def kernels(config: ConvConfig, *, dtype: object = np.float64, max_abs: float = 1.0,
            min_abs: float = 2.0**-16, elements: Any = None) -> SearchStrategy[np.ndarray]:
    """Weights of shape ``(*kernel_size, d_in // groups, d_out)`` for ``config``.

    Parameters
    ----------
    config : ConvConfig
    dtype : {float64, float32}, optional
    max_abs, min_abs : float, optional
        Entries are 0 or have magnitude in ``[min_abs, max_abs]``.
    elements : hypothesis strategy, optional
        Replaces the default element strategy.

    Returns
    -------
    hypothesis.strategies.SearchStrategy of numpy.ndarray

    Raises
    ------
    ParameterTypeError, ParameterValueError
        A bad ``config``, ``dtype`` or range.

    Examples
    --------
    >>> from attn_expressivity.convolution.config import make_config
    >>> from hypothesis import find
    >>> find(kernels(make_config((3, 2, 2, 4), groups=2)), lambda w: True).shape
    (3, 2, 2, 4)
    """
    from hypothesis.extra.numpy import arrays

    _check_config(config)
    dt = _check_dtype(dtype)
    hi, lo = _check_range(max_abs, min_abs)
    elems = _elements(dt, hi, lo) if elements is None else elements
    shape = config.kernel_size + (config.d_in // config.groups, config.d_out)
    return arrays(dt, shape, elements=elems)
