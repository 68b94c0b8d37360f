"""Build, run, compare, report: Theorem 1 checked on an instance, against a bound.

:func:`verify` builds the layer of :func:`attn_expressivity.conv_to_mhsa`,
runs it and the independent reference :func:`attn_expressivity.conv` on the
same input, and compares the largest elementwise difference with an a-priori
bound made of three terms (all in the computation's dtype, unit roundoff
``u``, ``γ_m = mu/(1 − mu)``):

1. **Leak** ``2 · L̃ · S`` with ``S = Σ_h max_k ‖x_k W_val^(h) W_out^(h)‖_∞``
   over the padded image (see :mod:`attn_expressivity.bounds`). ``L̃`` is
   :func:`leak_bound` at ``α(1 − τ)`` times ``e^{αC}``, with
   ``τ = 4γ_{d_p+2} + u`` and ``C = 8γ_{d_p+2} max_h ‖Δ_h‖²``. Both paths
   compute the score per axis: ``f_i(t) = −α t² + 2αΔ_i t`` (``t = δ_i``) as
   ``fl(fl(a t²) + fl(b t))`` with ``t²`` exact and ``b = fl(2αΔ_i)`` rounded
   once, so its error is at most ``γ_3 α(t² + 2|Δ_i||t|) ≤ γ_3 α(4z_i² + 5Δ_i²)``
   with ``z = δ − Δ`` (``t² ≤ 2z_i² + 2Δ_i²``); each axis' row maximum
   ``m_i ≥ f̂_i(Δ_i)`` is subtracted (relative error ``u``). Comparing key
   ``k`` with the target (``z = 0``, error at most ``3γ_3αΔ_i²``), the gap
   ``m_i − f̂_i(Δ_i)`` is at most ``8γ_3αΔ_i²``, and so

   * *separable path* (per-axis softmax): the exponent of key ``k`` relative
     to the target is at most ``−α(1 − 4γ_3 − u) z_i² + 8γ_3(1 + u)αΔ_i²`` per
     axis, so each axis keeps target mass ``≥ (1 + e^{αC_i}(θ₃(e^{−α(1−τ)}) − 1))^{−1}``
     and the product over axes leaks at most
     ``1 − (1 + e^{αC}T)^{−D} ≤ e^{αC}(1 − (1 + T)^{−D})`` (``T = θ₃ − 1``; the
     function ``1 − (1 + x)^{−D}`` is concave and vanishes at 0);
   * *dense path* (weights ``Π_i exp(f̂_i − m_i)``, the per-axis exponents
     of the separable path multiplied together): the exponent of key ``k``
     relative to the target is at most ``−α(1 − 4γ_3 − u)‖z‖² + 8γ_3(1 + u)α‖Δ‖²``.

   Both exponents are bounded by ``−α(1 − τ)‖z‖² + αC``,
   so the computed off-target weights are at most those of ``α(1 − τ)``
   times ``e^{αC}``, whatever the row maximum is; off-target over target mass
   ``e^{αC}X/(1 + e^{αC}X) ≤ e^{αC}X/(1 + X)`` then gives ``L̃``.
2. **Rounding** (Higham, *Accuracy and Stability of Numerical Algorithms*,
   2nd ed., §3.1, standard model, with ``exp`` allowed a relative error of
   ``4u``): the attention output is a chain of inner products — ``x W_val``
   (length ``d_in``), the convex combination over the keys, ``W_out`` and the
   sum over heads (length ``n_heads · d_head``) and the bias — bounded by
   ``γ_m · S_abs`` with ``S_abs = Σ_h max_k ‖|x_k||W_val^(h)||W_out^(h)|‖_∞ + ‖b‖_∞``.
   The convex combination depends on the path that ran:

   * *dense*: ``Σ_k w_k v_k / Σ_k w_k`` over the ``n`` keys, numerator and
     denominator inner products of length ``n``, each weight a product of ``D``
     per-axis ``exp`` values (relative error ``(1 + 4u)^D (1 + u)^{D−1}``,
     within ``γ_{5D}``), and the division:
     ``m = m_d = 2n + d_in + n_heads·d_head + 5D + 10``;
   * *separable*: ``D`` successive contractions of length ``L_i`` (the side
     along axis ``i``) with the normalised per-axis weights, each weight
     perturbed relatively by ``γ_{L_i+8}`` (exp, sum, division):
     ``m = m_s = Σ_i (2L_i + 8) + d_in + n_heads·d_head + 10``. (The separable
     path applies each head's channel map as ``(z W_val) W_out`` or
     ``z (W_val W_out)`` and sums heads that share factors before the outer
     contractions: lengths ``d_in + d_head + n_heads ≤ d_in + n_heads·d_head + 1``,
     within ``m_s``.)

   Per-axis factors below ``e^{⌈ln tiny⌉}`` (dense) or weights below ``tiny``
   (separable) are flushed to 0, since ``exp`` and the products are slow on
   subnormal numbers; each weight moves by less than ``e·tiny`` before
   normalisation (dense; the target's weight is ``exp(0) = 1``) or below
   ``tiny`` after it (separable), adding at most ``6 n · tiny · S_abs``.
   The reference convolution's own rounding is at most ``γ_{m_c} · C_abs`` with
   ``m_c = prod(K)·d_in/groups + 1`` and ``C_abs = max ‖conv(|x|, |W|)‖_∞ + ‖b‖_∞``.
3. **Factorisation**: ``Σ_h max_k ‖x_k‖_1 · max|W_Δh − W_val^(h) W_out^(h)|``,
   the residual of the rank-revealing split (zero in exact arithmetic when the
   rank tolerance drops nothing). Because a layer with wrong value/output blocks
   would otherwise just get a wider bound, each head's residual must also stay
   within :func:`attn_expressivity.construction.factorisation_allowance` (the
   rank tolerance plus the SVD's rounding); heads above it are listed in
   ``factorisation_excess`` and make ``holds`` false.

``holds`` is ``max_abs_error <= bound``. Pixels whose receptive field lies
inside the unpadded image are *interior*, the others *border*; both are reported.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ._validation import as_alpha, as_float_array, as_int, as_int_tuple
from .bounds import gamma, leak_bound, unit_roundoff
from .certify import CertificationReport, certify_layer
from .config import check_image
from .construction import ConvAttention, conv_to_mhsa, factorisation_allowance, head_matrices
from .conv import conv
from .errors import ParameterValueError, ShapeError

__all__ = ["VerifyReport", "verify", "error_bound", "random_instance", "border_effect"]


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
        allowance (:func:`attn_expressivity.construction.factorisation_allowance`),
        and, with ``certify=True``, the certificate holds.
    factorisation_excess : list of dict
        Heads whose ``|W_Δ − W_val W_out|`` exceeds the allowance (head, shift,
        residual, allowance): their value/output blocks do not express ``W_Δ``.
    certificate : CertificationReport or None
        With ``verify(..., certify=True)``: the ball-arithmetic proof of
        ``|MHSA_exact − conv_exact| <= ε`` element by element
        (:func:`attn_expressivity.certify.certify_layer`).
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


class Instance(NamedTuple):
    """A random convolution and input (see :func:`random_instance`)."""

    weight: np.ndarray
    x: np.ndarray
    bias: np.ndarray | None


def random_instance(*, kernel_size=3, in_channels: int = 8, out_channels: int = 16,
                    image_size=32, ndim: int | None = None, groups: int = 1, bias: bool = True,
                    batch: tuple[int, ...] = (), seed: int = 0) -> Instance:
    """Standard-normal kernel, bias and image for a configuration.

    Parameters
    ----------
    kernel_size, image_size : int or tuple of int
        Per spatial axis; an int (or 1-tuple) is used on every axis.
    in_channels, out_channels, groups : int
    ndim : int, optional
        Spatial axes (default: the longer of the two tuples, else 2).
    bias : bool
    batch : tuple of int
    seed : int

    Returns
    -------
    Instance
        ``weight (*kernel_size, in_channels // groups, out_channels)``,
        ``x (*batch, *image_size, in_channels)``, ``bias (out_channels,)`` or None.
    """
    ks = kernel_size if isinstance(kernel_size, tuple) else (kernel_size,)
    im = image_size if isinstance(image_size, tuple) else (image_size,)
    if ndim is None:
        ndim = max(len(ks), len(im)) if max(len(ks), len(im)) > 1 else 2
    ndim = as_int(ndim, "ndim", minimum=1)
    ks = as_int_tuple(ks[0] if len(ks) == 1 else ks, ndim, "kernel_size", minimum=1)
    im = as_int_tuple(im[0] if len(im) == 1 else im, ndim, "image_size", minimum=1)
    d_in = as_int(in_channels, "in_channels", minimum=1)
    d_out = as_int(out_channels, "out_channels", minimum=1)
    groups = as_int(groups, "groups", minimum=1)
    if d_in % groups or d_out % groups:
        raise ParameterValueError(
            f"`groups` ({groups}) must divide in_channels ({d_in}) and out_channels ({d_out})"
        )
    rng = np.random.default_rng(as_int(seed, "seed", minimum=0))
    weight = rng.standard_normal(ks + (d_in // groups, d_out))
    x = rng.standard_normal(tuple(batch) + im + (d_in,))
    b = rng.standard_normal(d_out) if bias else None
    return Instance(weight, x, b)


def _interior_mask(layer: ConvAttention, spatial: tuple[int, ...]) -> np.ndarray:
    """True for output pixels whose receptive field avoids the padding."""
    cfg = layer.config
    axes = []
    for size, (lo, _), k, d, s, n in zip(spatial, cfg.pad_width, cfg.kernel_size, cfg.dilation,
                                         cfg.stride, cfg.output_shape(spatial)):
        start = np.arange(n) * s                       # window [start, start + d(K-1)] in padded coords
        axes.append((start >= lo) & (start + d * (k - 1) <= lo + size - 1))
    mask = axes[0]
    for a in axes[1:]:
        mask = mask[..., None] & a
    return mask


def error_bound(layer: ConvAttention, x: np.ndarray, *, path: str = "auto") -> dict[str, float]:
    """The a-priori bound on ``|layer(x, path=path) − conv(x)|`` (module docstring).

    Parameters
    ----------
    layer : ConvAttention
    x : ndarray, shape ``(*batch, *spatial, d_in)``
    path : {"auto", "dense", "separable"}, optional
        The attention path whose rounding is bounded, resolved as
        :meth:`attn_expressivity.MultiHeadSelfAttention.select_path` does.

    Returns
    -------
    dict
        ``bound``, ``leak_term``, ``rounding_term``, ``factorisation_term``,
        ``factorisation_excess`` (heads whose residual exceeds its allowance),
        ``leak`` (the per-head leak used), ``scale`` (``S``) and ``path``.

    Raises
    ------
    ParameterValueError, NotSeparableError
        As for :meth:`attn_expressivity.MultiHeadSelfAttention.select_path`;
        ``ParameterValueError`` also when the rounding bound does not exist
        (``m·u >= 1/2``, e.g. float16 on a few hundred keys).
    """
    cfg, mhsa = layer.config, layer.mhsa
    path = mhsa.select_path(path)
    xp = layer.pad(x)
    nd = cfg.ndim
    padded = xp.shape[xp.ndim - nd - 1:-1]
    n_keys = math.prod(padded)
    tokens = xp.reshape(-1, cfg.d_in)
    dtype = np.result_type(x, mhsa.w_val)
    u = unit_roundoff(dtype)
    H, dh = mhsa.n_heads, mhsa.d_head
    w_out = mhsa.w_out.reshape(H, dh, cfg.d_out)
    abs_tokens = np.abs(tokens)
    scale = scale_abs = resid = 0.0
    excess: list[dict[str, Any]] = []
    l1 = float(abs_tokens.sum(axis=1).max())
    mats = head_matrices(layer.kernel.astype(np.float64), cfg.groups)
    for h in range(H):
        w_h = mhsa.w_val[h].astype(np.float64) @ w_out[h].astype(np.float64)     # (d_in, d_out)
        scale += float(np.abs(tokens @ w_h).max())
        w_abs = np.abs(mhsa.w_val[h]).astype(np.float64) @ np.abs(w_out[h]).astype(np.float64)
        scale_abs += float((abs_tokens @ w_abs).max())
        r_h = float(np.abs(mats[h] - w_h).max())
        resid += l1 * r_h
        allowed = factorisation_allowance(mats[h], mhsa.w_val[h], w_out[h], layer.rank_tol)
        if not r_h <= allowed:
            excess.append({"head": h, "shift": [int(c) for c in layer.shifts[h]],
                           "residual": r_h, "allowance": allowed})
    b_abs = 0.0 if layer.bias is None else float(np.abs(layer.bias).max())
    scale_abs += b_abs
    c_abs = float(conv(np.abs(x), np.abs(layer.kernel), stride=cfg.stride, padding=cfg.padding,
                       dilation=cfg.dilation, groups=cfg.groups,
                       padding_mode=cfg.padding_mode).max()) + b_abs
    d_p = mhsa.d_p
    g_score = gamma(d_p + 2, u)
    tau = 4 * g_score + u
    max_shift_sq = float((layer.shifts.astype(np.float64) ** 2).sum(axis=1).max())
    alpha = layer.alpha
    if math.isinf(alpha):
        leak = 0.0
    else:
        a_eff, grow = alpha * (1 - tau), alpha * 8 * g_score * max_shift_sq
        if grow < 700.0:
            leak = min(1.0, leak_bound(a_eff, nd) * math.exp(grow))
        else:
            # e^{αC} overflows a float (α beyond ~1e16): take logarithms, with
            # leak_bound(a) <= 2.11·D·e^{-a} for a >= 1 (θ₃(x) − 1 <= 2x/(1 − x³) as
            # n² >= 3n − 2, and 1 − θ^{-D} <= D(θ − 1)); never rounded below 2^-1074.
            leak = max(math.exp(min(0.0, math.log(2.11 * nd) - a_eff + grow)), 5e-324)
    # the leak term is computed from a rounded S: add the rounding of S itself
    leak_term = 2.0 * leak * (scale + gamma(cfg.d_in + dh + 2, u) * scale_abs)
    if path == "separable":                 # D contractions of length L_i
        m_a = sum(2 * side + 8 for side in padded) + cfg.d_in + H * dh + 10
    else:                                   # one convex combination over the n keys
        m_a = 2 * n_keys + cfg.d_in + H * dh + 5 * nd + 10
    m_c = math.prod(cfg.kernel_size) * (cfg.d_in // cfg.groups) + 1
    flush = 6.0 * n_keys * float(np.finfo(dtype).tiny) * scale_abs   # weights flushed below tiny
    if m_a * u >= 0.5 or m_c * u >= 0.5:
        raise ParameterValueError(
            f"the a-priori rounding bound needs m·u < 1/2 and {np.dtype(dtype).name} has "
            f"u = {u:.3g}: the {path} path's chain of length m = {m_a} over {n_keys} keys gives "
            f"m·u = {m_a * u:.3g}; use a wider float type, a smaller image"
            + (" or path='separable'" if path == "dense" and mhsa.is_separable else "")
        )
    rounding = gamma(m_a, u) * scale_abs + gamma(m_c, u) * c_abs + flush
    total = (leak_term + rounding + resid) * (1 + 4 * _U64)
    return {"bound": total, "leak_term": leak_term, "rounding_term": rounding,
            "factorisation_term": resid, "factorisation_excess": excess, "leak": leak,
            "scale": scale, "path": path}


_U64 = 2.0**-53


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
        in ball arithmetic (:func:`attn_expressivity.certify.certify_layer`);
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
        :data:`attn_expressivity.certify.MAX_CERTIFY_WORK` ball operations.

    Examples
    --------
    >>> from attn_expressivity.verify import random_instance
    >>> w, x, b = random_instance(kernel_size=3, in_channels=2, out_channels=3, image_size=6)
    >>> report = verify(w, x, b, alpha=20.0)
    >>> report.holds, report.max_abs_error <= report.bound
    (True, True)
    """
    allowed = {"stride", "padding", "dilation", "groups", "padding_mode"}
    unknown = set(conv_options) - allowed
    if unknown:
        from .errors import ParameterTypeError

        raise ParameterTypeError(
            f"unknown convolution option(s) {sorted(unknown)}; expected some of {sorted(allowed)}"
        )
    alpha = as_alpha(alpha)
    if not isinstance(certify, bool):
        from .errors import ParameterTypeError

        raise ParameterTypeError(f"`certify` must be True or False, got {type(certify).__name__}")
    t0 = time.perf_counter()
    layer = conv_to_mhsa(weight, bias, alpha=alpha, d_head=d_head, **conv_options)
    x = as_float_array(x, "x")
    check_image(x, layer.config)
    certificate = certify_layer(layer, x, backend=backend) if certify else None
    path = layer.mhsa.select_path(path)
    t1 = time.perf_counter()
    got = layer(x, path=path)
    t2 = time.perf_counter()
    want = conv(x, layer.kernel, layer.bias, **conv_options)
    t3 = time.perf_counter()
    if got.shape != want.shape:  # pragma: no cover - would be a construction bug
        raise ShapeError(f"internal: attention output {got.shape} != convolution output {want.shape}")
    err = np.abs(got - want)
    terms = error_bound(layer, x, path=path)
    t4 = time.perf_counter()
    nd = layer.config.ndim
    spatial = tuple(x.shape[x.ndim - nd - 1:-1])
    mask = _interior_mask(layer, spatial)
    per_pixel = err.max(axis=-1).reshape((-1,) + mask.shape).max(axis=0)
    interior = float(per_pixel[mask].max()) if mask.any() else None
    border = float(per_pixel[~mask].max()) if (~mask).any() else None
    max_err = float(err.max())
    cfg = layer.config.as_dict()
    cfg.update(image_shape=list(spatial), batch_shape=list(x.shape[: x.ndim - nd - 1]),
               alpha=alpha, n_heads=layer.n_heads, d_head=layer.d_head, dtype=str(got.dtype))
    return VerifyReport(
        config=cfg, max_abs_error=max_err, max_abs_error_interior=interior,
        max_abs_error_border=border, bound=terms["bound"], leak_term=terms["leak_term"],
        rounding_term=terms["rounding_term"], factorisation_term=terms["factorisation_term"],
        leak=terms["leak"], scale=terms["scale"], path=path,
        holds=(bool(max_err <= terms["bound"]) and not terms["factorisation_excess"]
               and (certificate is None or certificate.holds)),
        factorisation_excess=terms["factorisation_excess"],
        seconds={"construct": t1 - t0, "attention": t2 - t1, "conv": t3 - t2, "bound": t4 - t3},
        certificate=certificate,
    )


def border_effect(weight: np.ndarray, x: np.ndarray, bias: np.ndarray | None = None, *,
                  alpha: float) -> dict[str, float]:
    """The paper's padding remark: attention *without* padding is not zero padding.

    Runs the attention layer of a ``padding="same"``, zeros-padded convolution
    directly on the unpadded image (no pad, no crop), where softmax at the border
    renormalises over in-image pixels, and compares with ``conv(..., padding="same")``.

    Returns
    -------
    dict
        ``interior`` and ``border``: the largest error over pixels whose
        receptive field is inside / crosses the image edge. The interior error
        vanishes as ``α → ∞``; the border error does not.
    """
    layer = conv_to_mhsa(weight, bias, alpha=alpha, padding="same")
    x = as_float_array(x, "x")
    check_image(x, layer.config)
    err = np.abs(layer.mhsa(x) - conv(x, layer.kernel, layer.bias, padding="same")).max(axis=-1)
    nd = layer.config.ndim
    spatial = tuple(x.shape[x.ndim - nd - 1:-1])
    mask = _interior_mask(layer, spatial)
    err = err.reshape((-1,) + mask.shape).max(axis=0)
    return {"interior": float(err[mask].max()) if mask.any() else 0.0,
            "border": float(err[~mask].max()) if (~mask).any() else 0.0}
