"""Build, run, compare, report: Theorem 1 checked on an instance, against a bound.

:func:`verify` builds the layer of :func:`attn_expressivity.conv_to_mhsa`,
runs it and the independent reference :func:`attn_expressivity.conv` on the
same input, and compares the largest elementwise difference with the a-priori
bound of :func:`attn_expressivity.bounds.error.error_bound` (leak + rounding +
factorisation). :func:`check_layer` does the same for a layer you built or
edited yourself. ``holds`` is ``max_abs_error <= bound`` with every head's
value/output blocks expressing its kernel slice. Pixels whose receptive field
lies inside the unpadded image are *interior*, the others *border*; both are
reported.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ._validation import as_alpha, as_float_array
from .bounds.error import error_bound
from .certify.instance import certify_layer
from .certify.report import CertificationReport
from .convolution.config import check_image
from .convolution.reference import conv
from .errors import ParameterTypeError, ShapeError
from .theorem.construction import ConvAttention, conv_to_mhsa

__all__ = ["VerifyReport", "check_layer", "verify"]


@dataclass
class VerifyReport:
    """The outcome of :func:`verify`.

    Attributes
    ----------
    config : dict
        The convolution (kernel size, channels, stride, padding, ...), the image
        shape, ``alpha``, ``n_heads``, ``d_head`` and the dtype.
    max_abs_error : float
        ``max |MHSA(x) − conv(x)|`` over every output element.
    max_abs_error_interior, max_abs_error_border : float or None
        The same over interior / border output pixels (None when there are none).
    bound : float
        ``leak_term + rounding_term + factorisation_term``.
    holds : bool
        ``max_abs_error <= bound``, every head's factorisation residual within its
        allowance (:func:`attn_expressivity.theorem.factorisation.factorisation_allowance`),
        and, with ``certify=True``, the certificate holds.
    worst_index : tuple of int
        Index ``(*batch, *out_spatial, channel)`` of the largest ``|MHSA − conv|``.
    factorisation_excess : list of dict
        Heads whose ``|W_Δ − W_val W_out|`` exceeds the allowance (head, shift,
        residual, allowance): their value/output blocks do not express ``W_Δ``.
    certificate : CertificationReport or None
        With ``verify(..., certify=True)``: the ball-arithmetic proof of
        ``|MHSA_exact − conv_exact| <= ε`` element by element
        (:func:`attn_expressivity.certify_layer`).
    """

    config: dict[str, Any]
    max_abs_error: float
    max_abs_error_interior: float | None
    max_abs_error_border: float | None
    bound: float
    leak_term: float
    rounding_term: float
    factorisation_term: float
    leak: float
    scale: float
    holds: bool
    path: str = "dense"
    seconds: dict[str, float] = field(default_factory=dict)
    certificate: CertificationReport | None = None
    factorisation_excess: list[dict[str, Any]] = field(default_factory=list)
    worst_index: tuple[int, ...] = ()

    @property
    def ratio(self) -> float:
        """``bound / max_abs_error`` (inf when the error is 0)."""
        return self.bound / self.max_abs_error if self.max_abs_error > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary."""
        d = asdict(self)
        d["ratio"] = self.ratio if math.isfinite(self.ratio) else None
        d["config"]["alpha"] = self.config["alpha"] if math.isfinite(self.config["alpha"]) else "inf"
        return d

    def summary(self) -> str:
        """A short human-readable report."""
        c = self.config
        fmt = lambda v: "n/a" if v is None else f"{v:.3e}"  # noqa: E731
        lines = [
            f"Theorem 1 check: {c['ndim']}-D convolution, kernel {tuple(c['kernel_size'])}, "
            f"{c['in_channels']} -> {c['out_channels']} channels, image {tuple(c['image_shape'])}",
            f"  padding={c['padding']!r} mode={c['padding_mode']} stride={tuple(c['stride'])} "
            f"dilation={tuple(c['dilation'])} groups={c['groups']}",
            f"  MHSA: {c['n_heads']} heads, d_head={c['d_head']}, alpha={c['alpha']}, "
            f"dtype={c['dtype']}, path={self.path}",
            f"  max |MHSA - conv|   {self.max_abs_error:.3e}  "
            f"(interior {fmt(self.max_abs_error_interior)}, border {fmt(self.max_abs_error_border)})",
            f"  bound               {self.bound:.3e}  = leak {self.leak_term:.3e} "
            f"+ rounding {self.rounding_term:.3e} + factorisation {self.factorisation_term:.3e}",
            f"  leak per head <=    {self.leak:.3e}",
            f"  {'PASS' if self.holds else 'FAIL'}: error "
        f"{'<=' if self.max_abs_error <= self.bound else '>'} bound",
        ]
        for e in self.factorisation_excess:
            lines.append(f"  head {e['head']} (shift {tuple(e['shift'])}): |W_Δ - W_val W_out| = "
                         f"{e['residual']:.3e} exceeds its allowance {e['allowance']:.3e}")
        if self.certificate is not None:
            lines.append("  " + self.certificate.summary().replace("\n", "\n  "))
        return "\n".join(lines)


def check_layer(layer: ConvAttention, x: np.ndarray, *, path: str = "auto",
                certificate: CertificationReport | None = None) -> VerifyReport:
    """Run ``layer`` and the reference convolution on ``x`` and compare them with the bound.

    Parameters
    ----------
    layer : ConvAttention
        From :func:`attn_expressivity.conv_to_mhsa`, possibly with edited weights;
        the convolution is the one with ``layer.kernel``, ``layer.bias`` and
        ``layer.config``.
    x : ndarray, shape ``(*batch, *spatial, d_in)``
    path : {"auto", "dense", "separable"}, optional
        The attention path to run and bound.
    certificate : CertificationReport, optional
        A certificate of the same layer and input; ``holds`` then also needs it to hold.

    Returns
    -------
    VerifyReport
        ``seconds`` holds ``attention``, ``conv`` and ``bound``.

    Raises
    ------
    ShapeError, ParameterTypeError, NonFiniteError
        An input that does not fit the layer.
    ParameterValueError, NotSeparableError
        A bad ``path``, or a rounding bound that does not exist (as for
        :func:`~attn_expressivity.bounds.error.error_bound`).

    Examples
    --------
    >>> from attn_expressivity import conv_to_mhsa
    >>> rng = np.random.default_rng(0)
    >>> layer = conv_to_mhsa(rng.standard_normal((3, 3, 2, 2)), alpha=30.0)
    >>> check_layer(layer, rng.standard_normal((6, 5, 2))).holds
    True
    """
    x = as_float_array(x, "x")
    cfg = layer.config
    check_image(x, cfg)
    path = layer.mhsa.select_path(path)
    t1 = time.perf_counter()
    got = layer(x, path=path)
    t2 = time.perf_counter()
    want = conv(x, layer.kernel, layer.bias, stride=cfg.stride, padding=cfg.padding,
                dilation=cfg.dilation, groups=cfg.groups, padding_mode=cfg.padding_mode)
    t3 = time.perf_counter()
    if got.shape != want.shape:  # pragma: no cover - would be a construction bug
        raise ShapeError(f"internal: attention output {got.shape} != convolution output {want.shape}")
    err = np.abs(got - want)
    terms = error_bound(layer, x, path=path)
    t4 = time.perf_counter()
    nd = cfg.ndim
    spatial = tuple(x.shape[x.ndim - nd - 1:-1])
    mask = cfg.interior_mask(spatial)
    per_pixel = err.max(axis=-1).reshape((-1,) + mask.shape).max(axis=0)
    max_err = float(err.max())
    config = cfg.as_dict()
    config.update(image_shape=list(spatial), batch_shape=list(x.shape[: x.ndim - nd - 1]),
                  alpha=layer.alpha, n_heads=layer.n_heads, d_head=layer.d_head,
                  dtype=str(got.dtype))
    return VerifyReport(
        config=config, max_abs_error=max_err,
        max_abs_error_interior=float(per_pixel[mask].max()) if mask.any() else None,
        max_abs_error_border=float(per_pixel[~mask].max()) if (~mask).any() else None,
        bound=terms["bound"], leak_term=terms["leak_term"], rounding_term=terms["rounding_term"],
        factorisation_term=terms["factorisation_term"], leak=terms["leak"], scale=terms["scale"],
        path=path, holds=(bool(max_err <= terms["bound"]) and not terms["factorisation_excess"]
                          and (certificate is None or certificate.holds)),
        factorisation_excess=terms["factorisation_excess"],
        seconds={"attention": t2 - t1, "conv": t3 - t2, "bound": t4 - t3},
        certificate=certificate, worst_index=tuple(
            int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape)),
    )


def verify(weight: np.ndarray, x: np.ndarray, bias: np.ndarray | None = None, *, alpha: float,
           d_head: int | str | None = None, certify: bool = False, backend: str | None = None,
           path: str = "auto", **conv_options: Any) -> VerifyReport:
    """Check Theorem 1 on one instance: ``|MHSA(x) − conv(x)| <= bound`` elementwise.

    Parameters
    ----------
    weight : ndarray, shape ``(*kernel_size, d_in // groups, d_out)``
    x : ndarray, shape ``(*batch, *spatial, d_in)``
    bias : ndarray, shape ``(d_out,)``, optional
    alpha : float
        Inverse width in ``[0, ∞]``.
    d_head : int, "paper" or None, optional
        As for :func:`attn_expressivity.conv_to_mhsa`.
    certify : bool, optional
        Also prove ``|MHSA_exact(x) − conv_exact(x)| <= ε`` element by element
        in ball arithmetic (:func:`attn_expressivity.certify_layer`);
        small instances only.
    backend : {"flint", "mpmath"} or None, optional
        Ball-arithmetic library for ``certify=True`` (None: flint when installed).
    path : {"auto", "dense", "separable"}, optional
        The attention path (:meth:`attn_expressivity.MultiHeadSelfAttention.select_path`;
        ``"auto"`` runs the separable one for these layers). The bound's
        rounding term is the one of the path that ran, reported as ``report.path``.
    **conv_options
        ``stride``, ``padding``, ``dilation``, ``groups``, ``padding_mode``.

    Returns
    -------
    VerifyReport

    Raises
    ------
    ShapeError, ParameterTypeError, ParameterValueError, NonFiniteError, HeadDimensionError
        As for :func:`attn_expressivity.conv_to_mhsa` and :func:`attn_expressivity.conv`;
        ``ParameterTypeError`` also for an unknown keyword.
    CertificationSizeError
        ``certify=True`` on an instance above
        :data:`attn_expressivity.certify.instance.MAX_CERTIFY_WORK` ball operations.

    Examples
    --------
    >>> from attn_expressivity.convolution.instances import random_instance
    >>> w, x, b = random_instance(kernel_size=3, in_channels=2, out_channels=3, image_size=6)
    >>> report = verify(w, x, b, alpha=20.0)
    >>> report.holds, report.max_abs_error <= report.bound
    (True, True)
    """
    allowed = {"stride", "padding", "dilation", "groups", "padding_mode"}
    unknown = set(conv_options) - allowed
    if unknown:
        raise ParameterTypeError(
            f"unknown convolution option(s) {sorted(unknown)}; expected some of {sorted(allowed)}"
        )
    alpha = as_alpha(alpha)
    if not isinstance(certify, bool):
        raise ParameterTypeError(f"`certify` must be True or False, got {type(certify).__name__}")
    t0 = time.perf_counter()
    layer = conv_to_mhsa(weight, bias, alpha=alpha, d_head=d_head, **conv_options)
    x = as_float_array(x, "x")
    check_image(x, layer.config)
    certificate = certify_layer(layer, x, backend=backend) if certify else None
    path = layer.mhsa.select_path(path)
    t1 = time.perf_counter()
    report = check_layer(layer, x, path=path, certificate=certificate)
    report.seconds = {"construct": t1 - t0, **report.seconds}
    return report
