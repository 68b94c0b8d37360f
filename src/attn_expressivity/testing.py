"""Testing tools for attention constructions: hypothesis strategies and an assertion.

Property-test your own construction with the strategies the package's own
suite uses, and check it against the a-priori bound of
:func:`attn_expressivity.verify`:

* :func:`conv_configs` draws convolution hyper-parameters that are valid
  together (kernel sizes, channels, groups, stride, dilation, padding,
  padding mode), as a :class:`~attn_expressivity.config.ConvConfig`;
* :func:`images` and :func:`kernels` draw an input and a weight for a
  configuration;
* :func:`assert_reproduces_conv` runs an attention layer (or builds one from a
  kernel) and the reference convolution, and raises an ``AssertionError``
  that names the pixel, the head and its shift, the error, the bound, ``α``
  and the dtype when the error exceeds the bound. It returns the report
  otherwise and hides itself from pytest tracebacks.
* :func:`register_profiles` registers the hypothesis profiles ``dev`` (fast)
  and ``ci`` (more examples, derandomized, no deadline, reproduction blobs)
  and loads the one named by the ``HYPOTHESIS_PROFILE`` environment variable.

hypothesis is imported when a strategy or :func:`register_profiles` is
called, never when the package is imported; :func:`assert_reproduces_conv`
needs numpy only.

Examples
--------
>>> import numpy as np
>>> from hypothesis import given, settings, strategies as st
>>> from attn_expressivity.testing import (
...     assert_reproduces_conv, conv_configs, conv_options, images, kernels)
>>> @settings(max_examples=3, database=None)
... @given(cfg=conv_configs(ndim=2), data=st.data())
... def test_theorem1(cfg, data):
...     x, w = data.draw(images(cfg)), data.draw(kernels(cfg))
...     assert_reproduces_conv(w, x, alpha=30.0, **conv_options(cfg))
>>> test_theorem1()
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ._validation import as_alpha, as_float_array, as_int
from .config import PADDING_MODES, ConvConfig, check_image, make_config
from .construction import ConvAttention, conv_to_mhsa
from .conv import conv
from .errors import ParameterTypeError, ParameterValueError
from .verify import VerifyReport, _interior_mask, error_bound

if TYPE_CHECKING:  # pragma: no cover
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "ReproductionReport",
    "assert_reproduces_conv",
    "conv_configs",
    "conv_options",
    "images",
    "kernels",
    "register_profiles",
    "PROFILES",
]

#: The hypothesis profiles :func:`register_profiles` registers (keyword arguments
#: of ``hypothesis.settings``; health checks are added by name).
PROFILES: dict[str, dict[str, Any]] = {
    "dev": {"max_examples": 15, "deadline": None},
    "ci": {"max_examples": 40, "deadline": None, "derandomize": True, "print_blob": True,
           "suppress_health_check": ["too_slow"]},
}

#: Name of the environment variable that selects the profile.
PROFILE_VARIABLE = "HYPOTHESIS_PROFILE"


def register_profiles(*, load: bool = True) -> str | None:
    """Register the ``dev`` and ``ci`` hypothesis profiles (see :data:`PROFILES`).

    ``dev`` is fast (15 examples, no deadline). ``ci`` runs more examples,
    derandomized (the same examples on every run, so a failure reproduces),
    without a deadline and printing the ``@reproduce_failure`` blob of a
    failing example.

    Parameters
    ----------
    load : bool, optional
        Also load the profile named by ``$HYPOTHESIS_PROFILE`` (default
        ``"dev"``). A name registered elsewhere is accepted.

    Returns
    -------
    str or None
        The name of the loaded profile, None when ``load`` is False.

    Raises
    ------
    ParameterValueError
        ``$HYPOTHESIS_PROFILE`` names no registered profile.

    Examples
    --------
    >>> register_profiles(load=False) is None
    True
    """
    from hypothesis import HealthCheck, settings

    for name, options in PROFILES.items():
        opts = dict(options)
        if "suppress_health_check" in opts:
            opts["suppress_health_check"] = [getattr(HealthCheck, h)
                                             for h in opts["suppress_health_check"]]
        settings.register_profile(name, **opts)
    if not load:
        return None
    name = os.environ.get(PROFILE_VARIABLE, "dev")
    try:
        settings.get_profile(name)
    except Exception:  # hypothesis.errors.InvalidArgument
        raise ParameterValueError(
            f"${PROFILE_VARIABLE} must name a registered hypothesis profile "
            f"(this package registers {sorted(PROFILES)}), got {name!r}"
        ) from None
    settings.load_profile(name)
    return name


# --------------------------------------------------------------------------- strategies


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
        ``config`` is not a :class:`~attn_expressivity.config.ConvConfig`.

    Examples
    --------
    >>> from attn_expressivity.config import make_config
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
    :func:`~attn_expressivity.config.make_config`. Every bound is inclusive.

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
    >>> from attn_expressivity.config import make_config
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
    >>> from attn_expressivity.config import make_config
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
    >>> from attn_expressivity.config import make_config
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


# --------------------------------------------------------------------------- assertion


@dataclass
class ReproductionReport(VerifyReport):
    """A :class:`~attn_expressivity.VerifyReport` that also locates the largest error.

    Attributes
    ----------
    worst_index : tuple of int
        Index ``(*batch, *out_spatial, channel)`` of the largest ``|MHSA − conv|``.
    head_errors : list of float
        Only on failure: ``|head_h(x) − x_{q+Δ_h} W_{Δ_h}|`` at the worst output
        element for every head ``h`` (each head's own deviation); empty otherwise.
    worst_head : int or None
        The head with the largest deviation there (None when the check holds).
    worst_shift : tuple of int or None
        That head's shift ``Δ_h``.
    """

    worst_index: tuple[int, ...] = ()
    head_errors: list[float] = field(default_factory=list)
    worst_head: int | None = None
    worst_shift: tuple[int, ...] | None = None


def _head_errors(layer: ConvAttention, x: np.ndarray, index: tuple[int, ...]) -> list[float]:
    """Each head's deviation from its kernel slice at output element ``index``."""
    from .attention import MultiHeadSelfAttention

    m, cfg = layer.mhsa, layer.config
    H, dh = m.n_heads, m.d_head
    xp = layer.pad(x)
    nd = cfg.ndim
    window = layer.crop(xp.shape[xp.ndim - nd - 1:-1])
    errors = []
    for h in range(H):
        keep = np.zeros((H * dh, 1), dtype=m.w_out.dtype)
        keep[h * dh:(h + 1) * dh] = 1
        single = MultiHeadSelfAttention(m.w_qry, m.w_key, m.w_key_hat, m.u, m.v, m.w_val,
                                        m.w_out * keep, np.zeros_like(m.b_out),
                                        encoding=m.encoding, ndim=m.ndim, beta=m.beta)
        got = single(xp)[(Ellipsis,) + window + (slice(None),)]
        slice_h = np.zeros_like(layer.kernel)
        k_index = np.unravel_index(h, cfg.kernel_size)
        slice_h[k_index] = layer.kernel[k_index]
        want = conv(x, slice_h, **conv_options(cfg))
        errors.append(float(abs(got[index] - want[index])))
    return errors


def assert_reproduces_conv(layer_or_weight: ConvAttention | np.ndarray, x: np.ndarray,
                           bias: np.ndarray | None = None, *, alpha: float | None = None,
                           d_head: int | str | None = None, path: str = "auto",
                           **conv_options_: Any) -> ReproductionReport:
    """Assert that an attention layer reproduces its convolution within the a-priori bound.

    With a :class:`~attn_expressivity.ConvAttention` (built by
    :func:`~attn_expressivity.conv_to_mhsa`, possibly modified by you), runs it
    and the reference :func:`~attn_expressivity.conv` with the layer's kernel,
    bias and hyper-parameters. With a weight array, first builds the layer with
    ``conv_to_mhsa(weight, bias, alpha=alpha, d_head=d_head, **conv_options)``.
    The bound is :func:`attn_expressivity.verify.error_bound` (leak, rounding in
    the computation's dtype, factorisation residual). Value and output blocks
    must also multiply to the kernel slices within
    :func:`attn_expressivity.construction.factorisation_allowance`: a head whose
    blocks do not fails the assertion (its residual is not allowed to widen the
    bound).

    Parameters
    ----------
    layer_or_weight : ConvAttention or ndarray, shape ``(*kernel_size, d_in // groups, d_out)``
    x : ndarray, shape ``(*batch, *spatial, d_in)``
    bias : ndarray, shape ``(d_out,)``, optional
        Only with a weight (a layer carries its own).
    alpha : float, optional
        Required with a weight, in ``[0, ∞]``; not allowed with a layer (it has one).
    d_head : int, "paper" or None, optional
        Only with a weight; as for :func:`~attn_expressivity.conv_to_mhsa`.
    path : {"auto", "dense", "separable"}, optional
        The attention path to run and bound (see
        :meth:`~attn_expressivity.MultiHeadSelfAttention.select_path`).
    **conv_options_
        ``stride``, ``padding``, ``dilation``, ``groups``, ``padding_mode``;
        only with a weight.

    Returns
    -------
    ReproductionReport
        When ``max |layer(x) − conv(x)| <= bound``.

    Raises
    ------
    AssertionError
        When the error exceeds the bound. The message gives the output index
        (batch, pixel, channel) of the largest error, whether the pixel is
        interior or on the border, the error, the bound and its terms, ``α``,
        the dtype, and the head (with its shift ``Δ_h``) that deviates most there.
    ParameterTypeError, ParameterValueError, ShapeError, NonFiniteError, HeadDimensionError
        Bad arguments, as for :func:`~attn_expressivity.conv_to_mhsa`; options
        given with a layer; a missing ``alpha`` with a weight.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> w, x = rng.standard_normal((3, 3, 2, 4)), rng.standard_normal((7, 5, 2))
    >>> report = assert_reproduces_conv(w, x, alpha=40.0)
    >>> report.max_abs_error <= report.bound
    True
    >>> layer = conv_to_mhsa(w, alpha=40.0)
    >>> layer.mhsa.v[4] = layer.mhsa.v[5]       # head 4 now looks where head 5 looks
    >>> assert_reproduces_conv(layer, x)
    Traceback (most recent call last):
    ...
    AssertionError: MHSA does not reproduce the convolution: ... head 4 (shift (0, 0))...
    """
    __tracebackhide__ = True
    if isinstance(layer_or_weight, ConvAttention):
        given = [name for name, value in (("alpha", alpha), ("bias", bias), ("d_head", d_head))
                 if value is not None] + sorted(conv_options_)
        if given:
            raise ParameterValueError(
                f"with a ConvAttention layer the options come from the layer; got {given}"
            )
        layer = layer_or_weight
    else:
        if alpha is None:
            raise ParameterValueError("`alpha` is required when the first argument is a weight array")
        layer = conv_to_mhsa(layer_or_weight, bias, alpha=as_alpha(alpha), d_head=d_head,
                             **conv_options_)
    x = as_float_array(x, "x")
    check_image(x, layer.config)
    cfg = layer.config
    got = layer(x, path=path)
    want = conv(x, layer.kernel, layer.bias, **conv_options(cfg))
    err = np.abs(got - want)
    terms = error_bound(layer, x, path=path)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape))
    max_err = float(err[worst])
    nd = cfg.ndim
    spatial = tuple(x.shape[x.ndim - nd - 1:-1])
    mask = _interior_mask(layer, spatial)
    per_pixel = err.max(axis=-1).reshape((-1,) + mask.shape).max(axis=0)
    interior = float(per_pixel[mask].max()) if mask.any() else None
    border = float(per_pixel[~mask].max()) if (~mask).any() else None
    config = cfg.as_dict()
    config.update(image_shape=list(spatial), batch_shape=list(x.shape[: x.ndim - nd - 1]),
                  alpha=layer.alpha, n_heads=layer.n_heads, d_head=layer.d_head,
                  dtype=str(got.dtype))
    excess = terms["factorisation_excess"]
    holds = bool(max_err <= terms["bound"]) and not excess
    report = ReproductionReport(
        config=config, max_abs_error=max_err, max_abs_error_interior=interior,
        max_abs_error_border=border, bound=terms["bound"], leak_term=terms["leak_term"],
        rounding_term=terms["rounding_term"], factorisation_term=terms["factorisation_term"],
        leak=terms["leak"], scale=terms["scale"], holds=holds, worst_index=worst,
        factorisation_excess=excess,
    )
    if holds:
        return report
    if excess:
        e = excess[0]
        raise AssertionError(
            f"the value/output blocks do not express the kernel: head {e['head']} (shift "
            f"{tuple(e['shift'])}) has |W_Δ - W_val W_out| = {e['residual']:.6e}, above its "
            f"allowance {e['allowance']:.6e} ({len(excess)} head(s) in all); observed error "
            f"{max_err:.6e}, bound {terms['bound']:.6e}, alpha = {layer.alpha}, dtype = {got.dtype}"
        )
    report.head_errors = _head_errors(layer, x, worst)
    h = int(np.argmax(report.head_errors))
    report.worst_head = h
    report.worst_shift = tuple(int(c) for c in layer.shifts[h])
    n_batch = x.ndim - nd - 1
    pixel = worst[n_batch:-1]
    where = "interior" if mask[pixel] else "border"
    raise AssertionError(
        f"MHSA does not reproduce the convolution: |MHSA - conv| = {max_err:.6e} at output "
        f"pixel {pixel} ({where}), channel {worst[-1]}"
        + (f", batch index {worst[:n_batch]}" if n_batch else "")
        + f", exceeds the bound {terms['bound']:.6e} (leak {terms['leak_term']:.3e} + rounding "
        f"{terms['rounding_term']:.3e} + factorisation {terms['factorisation_term']:.3e}); "
        f"alpha = {layer.alpha}, dtype = {got.dtype}; the largest deviation there is "
        f"head {h} (shift {report.worst_shift}), error {report.head_errors[h]:.6e}"
    )
