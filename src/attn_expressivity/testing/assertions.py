"""``assert_reproduces_conv``: a layer against its convolution and verify's bound, as an assertion."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from .._validation import as_alpha, as_float_array
from ..attention.layer import MultiHeadSelfAttention
from ..convolution.config import check_image
from ..convolution.reference import conv
from ..errors import ParameterValueError
from ..theorem.construction import ConvAttention, conv_to_mhsa
from ..verify import VerifyReport, check_layer
from .strategies import conv_options

__all__ = ["ReproductionReport", "assert_reproduces_conv"]


@dataclass
class ReproductionReport(VerifyReport):
    """A :class:`~attn_expressivity.VerifyReport` that also names the head behind a failure.

    Attributes
    ----------
    head_errors : list of float
        Only on failure: ``|head_h(x) − x_{q+Δ_h} W_{Δ_h}|`` at the worst output
        element for every head ``h`` (each head's own deviation); empty otherwise.
    worst_head : int or None
        The head with the largest deviation there (None when the check holds).
    worst_shift : tuple of int or None
        That head's shift ``Δ_h``.
    """

    head_errors: list[float] = field(default_factory=list)
    worst_head: int | None = None
    worst_shift: tuple[int, ...] | None = None


def _head_errors(layer: ConvAttention, x: np.ndarray, index: tuple[int, ...]) -> list[float]:
    """Each head's deviation from its kernel slice at output element ``index``."""
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
        k_index = np.unravel_index(int(layer.kernel_indices[h]), cfg.kernel_size)
        slice_h[k_index] = layer.kernel[k_index]
        want = conv(x, slice_h, **conv_options(cfg))
        errors.append(float(abs(got[index] - want[index])))
    return errors


def assert_reproduces_conv(layer_or_weight: ConvAttention | np.ndarray, x: np.ndarray,
                           bias: np.ndarray | None = None, *, alpha: float | None = None,
                           d_head: int | str | None = None, path: str = "auto",
                           **conv_options_: Any) -> ReproductionReport:
    """Assert that an attention layer reproduces its convolution within verify's bound.

    With a :class:`~attn_expressivity.ConvAttention` (built by
    :func:`~attn_expressivity.conv_to_mhsa`, possibly modified by you), runs it
    and the reference :func:`~attn_expressivity.conv` with the layer's kernel,
    bias and hyper-parameters. With a weight array, first builds the layer with
    ``conv_to_mhsa(weight, bias, alpha=alpha, d_head=d_head, **conv_options)``.
    The comparison is :func:`attn_expressivity.verify.check_layer`'s: element by
    element against the rigorous bound of ``docs/bounds.md`` (rounding of the
    arithmetic that ran, the leak of the heads' computed weights, the
    factorisation residual). Heads must be Lemma 2's up to the rounding of
    their stored vectors, their weights may leak no more than the theory allows,
    and value and output blocks must multiply to the kernel slices within the
    allowance of their split: a head that does not fails the assertion, named.

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
    base = check_layer(layer, x, path=path)
    report = ReproductionReport(**{f.name: getattr(base, f.name) for f in fields(VerifyReport)})
    if report.holds:
        return report
    if report.factorisation_excess:
        e = report.factorisation_excess[0]
        raise AssertionError(
            f"the value/output blocks do not express the kernel: head {e['head']} (shift "
            f"{tuple(e['shift'])}) has |W_Δ - W_val W_out| = {e['residual']:.6e}, above its "
            f"allowance {e['allowance']:.6e} ({len(report.factorisation_excess)} head(s) in all); "
            f"observed error {report.max_abs_error:.6e}, bound {report.bound:.6e}, "
            f"alpha = {layer.alpha}, dtype = {report.config['dtype']}"
        )
    worst = report.worst_index
    report.head_errors = _head_errors(layer, x, worst)
    h = int(np.argmax(report.head_errors))
    report.worst_head = h
    report.worst_shift = tuple(int(c) for c in layer.shifts[h])
    nd = layer.config.ndim
    n_batch = x.ndim - nd - 1
    pixel = worst[n_batch:-1]
    where = "interior" if layer.config.interior_mask(tuple(x.shape[n_batch:-1]))[pixel] else "border"
    raise AssertionError(
        f"MHSA does not reproduce the convolution: |MHSA - conv| = {report.max_abs_error:.6e} at "
        f"output pixel {pixel} ({where}), channel {worst[-1]}"
        + (f", batch index {worst[:n_batch]}" if n_batch else "")
        + f", exceeds the bound {report.bound:.6e} (leak {report.leak_term:.3e} + rounding "
        f"{report.rounding_term:.3e} + factorisation {report.factorisation_term:.3e}); "
        f"alpha = {layer.alpha}, dtype = {report.config['dtype']}; the largest deviation there is "
        f"head {h} (shift {report.worst_shift}), error {report.head_errors[h]:.6e}"
    )
