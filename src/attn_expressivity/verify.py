"""Build, run, compare, report: Theorem 1 checked on an instance, against a bound.

:func:`verify` builds the layer of :func:`attn_expressivity.conv_to_mhsa`,
runs it and the independent reference convolution on the same input, and
compares them element by element with a rigorous bound (rounding + leak +
factorisation + the reference's own rounding). :func:`check_layer` does the
same for a layer you built or edited yourself. Two ways to bound, one verdict:

* **element by element** (small instances, the default below
  :data:`SHARP_WORK`): the layer runs its path with a running error bound
  (:mod:`attn_expressivity.attention.traced`), the leak and factorisation
  terms are contracted element by element and the reference is the
  compensated convolution (:mod:`attn_expressivity.bounds.elementwise`). The
  output compared is the traced path's own, an evaluation of the same layer
  with a known order of operations; its bound follows the rounding errors that
  occurred. That bound says nothing of ``layer(x)`` (BLAS, another order,
  slabs, merged products), so the production path runs as well and is held to
  its per-channel bound below: ``holds`` needs both, and the report gives both
  errors (``max_abs_error`` the traced one, ``production_error`` that of
  ``layer(x)``). Where no per-channel rounding bound of the production path
  exists (the dense path in float16 over many keys), ``production_note`` and
  the summary say so and the verdict is the element-wise one alone;
* **per output channel** (large instances): the production path
  ``layer(x, path=path)`` and the plain reference, bounded from per-channel
  maxima (:func:`attn_expressivity.bounds.error.error_bound`), at the cost of
  a few maxima.

Either way the reference convolution runs in the type of the kernel, bias and
input together, float16 promoted exactly to float64 (a float16 reference has no
rounding bound of the form ``γ_m`` once ``m u >= 1``); float32 stays float32,
whose ``γ_m`` exists for any inner length a layer can have here, at a third of
float64's cost.

``holds`` needs the error within the bound at every element, every head to be
Lemma 2's up to the rounding of its stored vector, its computed weights to
leak no more than the theory allows, every value/output block to express its
kernel slice within the rounding of the split, and, with ``certify=True``, the
certificate. Pixels whose receptive field lies inside the unpadded image are
*interior*, the others *border*; both are reported.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ._threads import single_blas_thread
from ._validation import as_alpha, as_float_array
from .bounds.elementwise import sharp_check, table_bytes
from .bounds.error import error_bound
from .certify.instance import certify_layer
from .certify.report import CertificationReport
from .convolution.config import check_image
from .convolution.reference import conv
from .errors import ParameterTypeError, ParameterValueError, ShapeError
from .theorem.construction import ConvAttention, conv_to_mhsa
from .theorem.heads import alpha_range

__all__ = ["SHARP_WORK", "VerifyReport", "check_layer", "check_request", "json_safe", "machine_memory",
           "request_bytes", "sharp_work", "verify"]

#: Below this much work (:func:`sharp_work`) the check bounds element by element (about a second).
SHARP_WORK = 10**8


def machine_memory() -> int:
    """Bytes of physical memory of this machine (``2**62`` when the system does not say)."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):       # pragma: no cover - not POSIX
        return 2**62


def request_bytes(*, kernel_size: tuple[int, ...], in_channels: int, out_channels: int,
                  image_size: tuple[int, ...], ndim: int | None = None, groups: int = 1,
                  batch: int = 1) -> int:
    """Bytes :func:`verify` holds for a random instance of this size, counted before allocating.

    The kernel, the image and its padded copy, and about a dozen arrays of the
    output's size (the attention and reference outputs, the error and the
    terms of the bound), in float64; the attention's own scratch stays within
    its memory budget on top.

    Examples
    --------
    >>> request_bytes(kernel_size=(3,), in_channels=8, out_channels=16, image_size=(32,)) < 2**22
    True
    """
    ks, im = _request_shapes(kernel_size, image_size, ndim)
    pixels = math.prod(im) * batch
    padded = math.prod(i + k for i, k in zip(im, ks)) * batch
    kernel = math.prod(ks) * (in_channels // max(groups, 1)) * out_channels
    return 8 * (kernel + (pixels + 2 * padded) * in_channels + 12 * pixels * out_channels)


def _request_shapes(kernel_size: tuple[int, ...], image_size: tuple[int, ...],
                    ndim: int | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The kernel and image shapes of a request, a single size repeated over the axes."""
    ks = tuple(int(k) for k in kernel_size)
    im = tuple(int(i) for i in image_size)
    nd = ndim if ndim is not None else (max(len(ks), len(im)) if max(len(ks), len(im)) > 1 else 2)
    return (ks * nd if len(ks) == 1 else ks), (im * nd if len(im) == 1 else im)


def check_request(*, kernel_size: tuple[int, ...], in_channels: int, out_channels: int,
                  image_size: tuple[int, ...], ndim: int | None = None, groups: int = 1,
                  batch: int = 1, limit: int | None = None) -> int:
    """Refuse, before anything is allocated, a request that cannot fit in memory.

    Returns the estimate of :func:`request_bytes`; raises when it is above
    ``limit`` (default: 80 % of :func:`machine_memory`).

    Raises
    ------
    ParameterValueError
        The request needs more memory than the limit; the message says how much.

    Examples
    --------
    >>> check_request(kernel_size=(3,), in_channels=8, out_channels=16, image_size=(10**5,),
    ...               limit=2**34)
    Traceback (most recent call last):
    ...
    attn_expressivity.errors.ParameterValueError: this request needs about 1.6e+04 GiB ...
    """
    need = request_bytes(kernel_size=kernel_size, in_channels=in_channels, out_channels=out_channels,
                         image_size=image_size, ndim=ndim, groups=groups, batch=batch)
    limit = int(0.8 * machine_memory()) if limit is None else limit
    if need > limit:
        ks, im = _request_shapes(kernel_size, image_size, ndim)
        raise ParameterValueError(
            f"this request needs about {need / 2**30:.2g} GiB (kernel {ks}, "
            f"{in_channels} -> {out_channels} channels, image {im}), more than the "
            f"{limit / 2**30:.3g} GiB available; use a smaller image, fewer channels or a smaller kernel")
    return need


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None or ``"inf"``/``"-inf"``: strict JSON.

    Examples
    --------
    >>> json_safe({"a": [1.0, float("nan")], "b": float("inf")})
    {'a': [1.0, None], 'b': 'inf'}
    """
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return None
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


@dataclass
class VerifyReport:
    """The outcome of :func:`verify` and :func:`check_layer`.

    Attributes
    ----------
    config : dict
        The convolution (kernel size, channels, stride, padding, ...), the image
        shape, ``alpha`` (the layer's), ``alpha_heads`` (``[min, max]`` of the
        ``α_h`` the heads store, read exactly; None for a non-quadratic layer),
        ``n_heads``, ``d_head`` and the dtype.
    max_abs_error : float
        ``max |MHSA(x) − conv(x)|`` over every output element (against the
        compensated reference with ``method="elementwise"``).
    max_abs_error_interior, max_abs_error_border : float or None
        The same over interior / border output pixels (None when there are none).
    bound : float
        The largest bound over the elements (``elementwise``) or channels:
        rounding + leak + factorisation + reference.
    leak_term, rounding_term, factorisation_term, reference_term : float
        The largest value of each term.
    leak : float
        The largest row norm of ``|P^h − T^h|``, a head's computed weights against
        the convolution's one-hot row.
    scale : float
        ``Σ_h max_o (X |W_val^(h)| |W_out^(h)|)_o`` with ``X`` the per-channel maxima of ``|x|``.
    holds : bool
        The error within the bound at every element, and no issue below.
    method : str
        ``"elementwise"`` or ``"per-channel"`` (module docstring).
    worst_ratio : float
        The largest ``error / bound`` over the elements (``<= 1`` when the check holds).
    worst_index : tuple of int
        Index ``(*batch, *out_spatial, channel)`` of the largest ``|MHSA − conv|``.
    factorisation_excess : list of dict
        Heads whose ``|W_Δ − W_val W_out|`` exceeds the allowance (head, shift,
        residual, allowance): their value/output blocks do not express ``W_Δ``.
    head_issues : list of dict
        Heads whose stored vectors are not Lemma 2's up to the rounding of the storage.
    table_issues : list of dict
        Heads whose computed weights leak more than their stored ``α`` allows.
    certificate : CertificationReport or None
        With ``verify(..., certify=True)``: the ball-arithmetic proof of
        ``|MHSA_exact − conv_exact| <= ε`` element by element
        (:func:`attn_expressivity.certify_layer`).
    production_error, production_bound, production_worst_ratio : float or None
        With ``method="elementwise"``: ``max |layer(x) − conv(x)|`` of the
        production path (the one ``layer(x, path=path)`` runs, against the
        plain reference), the largest of its per-channel bounds
        (:func:`attn_expressivity.bounds.error.error_bound`) and the largest
        error/bound over the channels. None with ``method="per-channel"``, whose
        main figures are already those of ``layer(x)``.
    production_exceeding : int
        Elements of ``layer(x)`` above their channel's bound (``holds`` needs 0).
    production_note : str or None
        Why the production path could not be bounded (no rounding bound of its
        form exists in its type, e.g. the dense path in float16 over many keys);
        the verdict is then the element-wise one alone, and the summary says so.
    consistency_issues : list of str
        With ``certify=True``: the certificate's ``float_deviation``
        (``max |layer(x) − MHSA_exact|``) above the per-channel bound on
        ``|layer(x) − conv|`` plus ``ε``, which a layer the bound describes cannot
        reach (:func:`verify`).
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
    reference_term: float = 0.0
    method: str = "elementwise"
    worst_ratio: float = 0.0
    head_issues: list[dict[str, Any]] = field(default_factory=list)
    table_issues: list[dict[str, Any]] = field(default_factory=list)
    n_exceeding: int = 0
    production_error: float | None = None
    production_bound: float | None = None
    production_worst_ratio: float | None = None
    production_exceeding: int = 0
    production_note: str | None = None
    consistency_issues: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """``bound / max_abs_error`` (inf when the error is 0)."""
        return self.bound / self.max_abs_error if self.max_abs_error > 0 else math.inf

    def failures(self) -> list[str]:
        """Why the check fails, one short sentence each (empty when it holds)."""
        out = []
        if self.n_exceeding:
            out.append(f"the error exceeds the bound at {self.n_exceeding} element(s) "
                       f"(worst error/bound {self.worst_ratio:.3g})")
        if self.production_exceeding:
            out.append(f"layer(x), the production {self.path} path, exceeds its per-channel bound at "
                       f"{self.production_exceeding} element(s) (max |layer(x) - conv| "
                       f"{self.production_error:.3e}, worst error/bound {self.production_worst_ratio:.3g})")
        for e in self.head_issues:
            out.append(f"head {e['head']}: {e['reason']}" if e["head"] is not None else e["reason"])
        for e in self.table_issues:
            out.append(f"head {e['head']}: {e['reason']}")
        for e in self.factorisation_excess:
            out.append(f"head {e['head']} (shift {tuple(e['shift'])}): |W_Δ - W_val W_out| = "
                       f"{e['residual']:.3e} exceeds its allowance {e['allowance']:.3e}")
        if self.certificate is not None and not self.certificate.holds:
            out.append("the certificate does not hold")
        out.extend(self.consistency_issues)
        return out

    def to_dict(self) -> dict[str, Any]:
        """A dictionary that serialises as strict JSON (no NaN or Infinity)."""
        d = asdict(self)
        d["ratio"] = self.ratio if math.isfinite(self.ratio) else None
        d["failures"] = self.failures()
        return json_safe(d)

    def summary(self) -> str:
        """A short human-readable report; the last line is the verdict."""
        c = self.config
        fmt = lambda v: "n/a" if v is None else f"{v:.3e}"  # noqa: E731
        sharp = self.method == "elementwise"
        against = "compensated reference" if sharp else "plain reference"
        lines = [
            f"Theorem 1 check: {c['ndim']}-D convolution, kernel {tuple(c['kernel_size'])}, "
            f"{c['in_channels']} -> {c['out_channels']} channels, image {tuple(c['image_shape'])}",
            f"  padding={c['padding']!r} mode={c['padding_mode']} stride={tuple(c['stride'])} "
            f"dilation={tuple(c['dilation'])} groups={c['groups']}",
            f"  MHSA: {c['n_heads']} heads, d_head={c['d_head']}, alpha={c['alpha']}{_heads_alpha(c)}, "
            f"dtype={c['dtype']}, path={self.path}",
            f"  max |MHSA - conv|   {self.max_abs_error:.3e}  "
            f"(interior {fmt(self.max_abs_error_interior)}, border {fmt(self.max_abs_error_border)}; "
            f"{'the traced path ' if sharp else 'layer(x) '}against the {against})",
            f"  bound               {self.bound:.3e}  = max over {'elements' if sharp else 'channels'} "
            f"of rounding + leak + factorisation + reference (largest: {self.rounding_term:.2e}, "
            f"{self.leak_term:.2e}, {self.factorisation_term:.2e}, {self.reference_term:.2e})",
            f"  largest error/bound {self.worst_ratio:.3g}; largest leak of a head's weights {self.leak:.3e}",
        ]
        if sharp and self.production_note is not None:
            lines.append(f"  layer(x)            not bounded: {self.production_note}")
        elif sharp:
            lines.append(f"  layer(x)            max |layer(x) - conv| {fmt(self.production_error)} "
                         f"(production {self.path} path, plain reference), per-channel bound "
                         f"{fmt(self.production_bound)}, largest error/bound {self.production_worst_ratio:.3g}")
        if self.certificate is not None:
            lines.append("  " + self.certificate.summary().replace("\n", "\n  "))
        reasons = self.failures()
        if self.holds and sharp and self.production_note is None:
            lines.append("  PASS: the error is within the bound at every element, and layer(x) "
                         "within its per-channel bound")
        elif self.holds and sharp:
            lines.append("  PASS: the error is within the bound at every element (the traced path "
                         "only: layer(x) not bounded)")
        elif self.holds:
            lines.append("  PASS: the error is within the bound at every element")
        else:
            lines.append("  FAIL: " + "; ".join(reasons))
        return "\n".join(lines)


def _heads_alpha(config: dict[str, Any]) -> str:
    """`` (heads store a..b)`` when the stored heads' α range is not the declared α."""
    rng, alpha = config.get("alpha_heads"), config["alpha"]
    if not rng or alpha is None or all(f"{a:.6g}" == f"{alpha:.6g}" for a in rng):
        return ""
    return f" (heads store {rng[0]:.6g}..{rng[1]:.6g})"


def sharp_work(layer: ConvAttention, x: np.ndarray, path: str) -> int:
    """Work of the element-by-element check, in units that take about 10 ns each here (:data:`SHARP_WORK`).

    The traced separable path runs its products one array operation per term,
    with their exact errors (about eight units per multiply-add); the traced
    dense path forms every query-key weight a few times.

    Examples
    --------
    >>> from attn_expressivity import conv_to_mhsa
    >>> layer = conv_to_mhsa(np.ones((3, 3, 8, 16)), alpha=30.0)
    >>> sharp_work(layer, np.ones((32, 32, 8)), "separable") < SHARP_WORK
    True
    """
    cfg, m = layer.config, layer.mhsa
    nd = cfg.ndim
    spatial = tuple(x.shape[x.ndim - nd - 1:-1])
    batch = math.prod(x.shape[: x.ndim - nd - 1])
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(spatial, cfg.pad_width))
    n = math.prod(padded)
    n_q = math.prod(cfg.output_shape(spatial))
    channels = cfg.d_in + m.d_head + cfg.d_out
    # the traced products form every z_i M_io (an array of rows x d_in x d_out per head) and
    # its exact error (Dekker's TwoProduct, a dozen array operations), then sum both pairwise
    products = min(cfg.d_in * cfg.d_out, m.d_head * (cfg.d_in + cfg.d_out))
    # the element-wise leak holds about 16 float64 tables of queries x band width per distinct
    # axis factor (L x L for a shared row, alpha = 0, or a band as wide as the axis, tiny alpha):
    # beyond the memory budget the check is not chosen
    if table_bytes(layer, x) > m.memory_budget:
        return SHARP_WORK + 1
    if path == "separable":
        return batch * n * m.n_heads * (8 * products + 6 * channels * (2 * nd + 2))
    return batch * m.n_heads * (4 * n * n_q + 8 * n * products + 6 * n * channels)


def check_layer(layer: ConvAttention, x: np.ndarray, *, path: str = "auto",
                certificate: CertificationReport | None = None,
                sharp: bool | None = None) -> VerifyReport:
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
    sharp : bool, optional
        True: bound element by element; False: per output channel; None
        (default): element by element when :func:`sharp_work` is below
        :data:`SHARP_WORK` and its tables fit the layer's ``memory_budget``.
        An explicit True builds the element-wise tables whatever their size:
        on a long axis at ``α = 0`` or a tiny α (a band as wide as the axis)
        they hold ``O(L²)`` numbers, beyond the budget.

    Returns
    -------
    VerifyReport
        ``seconds`` holds ``attention``, ``conv`` and ``bound``.

    Raises
    ------
    ShapeError, ParameterTypeError, NonFiniteError
        An input that does not fit the layer; ``sharp`` neither a bool nor None.
    ParameterValueError, NotSeparableError
        A bad ``path``, or a rounding bound that does not exist (float16 on
        many keys).
    UnsupportedConfigurationError
        A layer with content terms or scores that do not split over the axes.

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
    if sharp is not None and not isinstance(sharp, bool):
        raise ParameterTypeError(f"`sharp` must be True, False or None, got {type(sharp).__name__} {sharp!r}")
    if sharp is None:
        sharp = sharp_work(layer, x, path) <= SHARP_WORK
    with single_blas_thread():     # many small products: one BLAS thread, the package's own workers
        return _check(layer, x, path, certificate, sharp)


def _check(layer: ConvAttention, x: np.ndarray, path: str, certificate: CertificationReport | None,
           sharp: bool) -> VerifyReport:
    if not sharp:
        got, err, bound, fast, seconds = _production(layer, x, path)
        terms = {k: fast[k] for k in ("rounding_term", "leak_term", "factorisation_term",
                                      "reference_term", "leak", "scale")}
        issues, leaks, excess = fast["head_issues"], fast["table_issues"], fast["factorisation_excess"]
        # err (1 + 2^-52) is formed only where it matters (_report)
        return _report(layer, x, got, err, None, bound, terms, issues, leaks, excess, path, sharp,
                       seconds, certificate)
    t1 = time.perf_counter()
    res = sharp_check(layer, x, path=path)
    t2 = time.perf_counter()
    terms = {"rounding_term": float(res.rounding.max(initial=0.0)),
             "leak_term": float(res.leak.max(initial=0.0)),
             "factorisation_term": float(res.factorisation.max(initial=0.0)),
             "reference_term": float(res.reference.max(initial=0.0)),
             "leak": _largest_leak(res.heads), "scale": _scale(layer, x)}
    # the element-wise verdict is about the traced evaluation; the layer as users run it,
    # layer(x) on its production path, is held to its own per-channel bound as well
    try:
        _, p_err, p_bound, _, p_seconds = _production(layer, x, path)
        production = _production_verdict(p_err, p_bound)
    except ParameterValueError as exc:          # no rounding bound of the production path exists
        production, p_seconds = {"production_note": str(exc)}, {}
    seconds = {"attention": t2 - t1, "conv": p_seconds.get("conv", 0.0),
               "bound": p_seconds.get("bound", 0.0), "production": p_seconds.get("attention", 0.0)}
    report = _report(layer, x, res.output, res.error, res.error_upper, res.bound, terms, res.head_issues,
                     res.table_issues, res.residual_excess, path, sharp, seconds, certificate)
    for key, value in production.items():
        setattr(report, key, value)
    report.holds = report.holds and not report.production_exceeding
    return report


def _production(layer: ConvAttention, x: np.ndarray,
                path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any], dict[str, float]]:
    """``layer(x, path=path)`` against the plain reference: output, ``|error|``, per-channel bound, terms, seconds.

    The reference convolution runs in the common type of the kernel, bias and
    input, float16 promoted exactly to float64 (:func:`_reference_dtype`).
    """
    cfg = layer.config
    t1 = time.perf_counter()
    got = layer(x, path=path)
    t2 = time.perf_counter()
    rt = _reference_dtype(layer, x)
    want = conv(x.astype(rt, copy=False), layer.kernel.astype(rt, copy=False),
                None if layer.bias is None else layer.bias.astype(rt, copy=False),
                stride=cfg.stride, padding=cfg.padding, dilation=cfg.dilation, groups=cfg.groups,
                padding_mode=cfg.padding_mode)
    t3 = time.perf_counter()
    if got.shape != want.shape:  # pragma: no cover - would be a construction bug
        raise ShapeError(f"internal: attention output {got.shape} != convolution output {want.shape}")
    fast = error_bound(layer, x, path=path, reference_dtype=rt)
    t4 = time.perf_counter()
    err = np.abs(got.astype(np.float64, copy=False) - want.astype(np.float64, copy=False))
    bound = np.asarray(fast["per_channel"], dtype=np.float64)
    return got, err, bound, fast, {"attention": t2 - t1, "conv": t3 - t2, "bound": t4 - t3}


def _reference_dtype(layer: ConvAttention, x: np.ndarray) -> np.dtype:
    """The type the plain reference runs in: the inputs' common type, float16 raised to float64."""
    parts = [x, layer.kernel] + ([] if layer.bias is None else [layer.bias])
    common = np.result_type(*parts)
    return np.dtype(np.float64) if common.itemsize < 4 else common


def _channel_verdict(err: np.ndarray, bound: np.ndarray) -> tuple[int, float]:
    """``(elements above the bound, largest error / bound)`` for a bound per output channel.

    ``err`` is raised by ``(1 + 2^-52)`` to cover its own float64 subtraction.
    """
    worst = err.reshape(-1, err.shape[-1]).max(axis=0, initial=0.0) * (1 + 2.0**-52)
    n_over = 0
    if np.any(worst > bound):     # (1 + 2^-52) is monotone: an element exceeds only there
        n_over = int(np.count_nonzero(err * (1 + 2.0**-52) > bound))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(bound > 0, worst / bound, np.where(worst > 0, np.inf, 0.0))
    return n_over, float(ratios.max()) if ratios.size else 0.0


def _production_verdict(err: np.ndarray, bound: np.ndarray) -> dict[str, Any]:
    n_over, ratio = _channel_verdict(err, bound)
    return {"production_error": float(err.max()) if err.size else 0.0,
            "production_bound": float(bound.max()) if bound.size else 0.0,
            "production_worst_ratio": ratio, "production_exceeding": n_over}


def _largest_leak(heads: list) -> float:
    best = 0.0
    for ha in heads:
        best = max(best, ha.rho * sum(float(m.max()) for m in ha.dev_mass))
    return best


def _scale(layer: ConvAttention, x: np.ndarray) -> float:
    m = layer.mhsa
    xs = np.abs(layer.pad(x).reshape(-1, m.d_in)).max(axis=0).astype(np.float64, copy=False)
    dh = m.d_head
    return float(sum(((xs @ np.abs(m.w_val[h].astype(np.float64, copy=False)))
                      @ np.abs(m.w_out[h * dh:(h + 1) * dh].astype(np.float64, copy=False))).max()
                     for h in range(m.n_heads)))


def _report(layer: ConvAttention, x: np.ndarray, got: np.ndarray, err: np.ndarray, upper: np.ndarray,
            bound: np.ndarray, terms: dict[str, float], issues: list, leaks: list, excess: list,
            path: str, sharp: bool, seconds: dict[str, float],
            certificate: CertificationReport | None) -> VerifyReport:
    cfg = layer.config
    nd = cfg.ndim
    spatial = tuple(x.shape[x.ndim - nd - 1:-1])
    mask = cfg.interior_mask(spatial)
    per_pixel = err.max(axis=-1).reshape((-1,) + mask.shape).max(axis=0)
    if upper is None:                 # a bound per output channel: compare the channels' maxima
        n_over, worst_ratio = _channel_verdict(err, bound)
    else:
        n_over = int(np.count_nonzero(upper > bound))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios = np.where(bound > 0, upper / bound, np.where(upper > 0, np.inf, 0.0))
        worst_ratio = float(ratios.max()) if ratios.size else 0.0
    config = cfg.as_dict()
    config.update(image_shape=list(spatial), batch_shape=list(x.shape[: x.ndim - nd - 1]),
                  alpha=layer.alpha, alpha_heads=alpha_range(layer), n_heads=layer.n_heads, d_head=layer.d_head,
                  dtype=str(got.dtype))
    holds = (n_over == 0 and not issues and not leaks and not excess
             and (certificate is None or certificate.holds))
    return VerifyReport(
        config=config, max_abs_error=float(err.max()) if err.size else 0.0,
        max_abs_error_interior=float(per_pixel[mask].max()) if mask.any() else None,
        max_abs_error_border=float(per_pixel[~mask].max()) if (~mask).any() else None,
        bound=float(bound.max()) if bound.size else 0.0, leak_term=terms["leak_term"],
        rounding_term=terms["rounding_term"], factorisation_term=terms["factorisation_term"],
        reference_term=terms["reference_term"], leak=terms["leak"], scale=terms["scale"],
        path=path, holds=holds, factorisation_excess=excess, head_issues=issues, table_issues=leaks,
        seconds=seconds, certificate=certificate, method="elementwise" if sharp else "per-channel",
        worst_ratio=worst_ratio, n_exceeding=n_over, worst_index=tuple(
            int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape)) if err.size else (),
    )


def verify(weight: np.ndarray, x: np.ndarray, bias: np.ndarray | None = None, *, alpha: float,
           d_head: int | str | None = None, certify: bool = False, backend: str | None = None,
           path: str = "auto", sharp: bool | None = None, **conv_options: Any) -> VerifyReport:
    """Check Theorem 1 on one instance: ``|MHSA(x) − conv(x)| <= bound`` element by element.

    Parameters
    ----------
    weight : ndarray, shape ``(*kernel_size, d_in // groups, d_out)``
    x : ndarray, shape ``(*batch, *spatial, d_in)``
    bias : ndarray, shape ``(d_out,)``, optional
    alpha : float
        Inverse width in ``[0, ∞]`` that the kernel's type can hold, as for
        :func:`attn_expressivity.conv_to_mhsa` (0, ``inf``, or between the type's
        smallest normal number and the limit its scores can hold).
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
    sharp : bool, optional
        As for :func:`check_layer`.
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
    >>> report.holds, report.max_abs_error <= report.bound, report.method
    (True, True, 'elementwise')
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
    if sharp is not None and not isinstance(sharp, bool):
        raise ParameterTypeError(f"`sharp` must be True, False or None, got {type(sharp).__name__} {sharp!r}")
    t0 = time.perf_counter()
    with single_blas_thread():
        layer = conv_to_mhsa(weight, bias, alpha=alpha, d_head=d_head, **conv_options)
    x = as_float_array(x, "x")
    check_image(x, layer.config)
    certificate = certify_layer(layer, x, backend=backend) if certify else None
    path = layer.mhsa.select_path(path)
    t1 = time.perf_counter()
    report = check_layer(layer, x, path=path, certificate=certificate, sharp=sharp)
    if certificate is not None:
        _check_certificate_consistency(layer, x, report, certificate)
    report.seconds = {"construct": t1 - t0, **report.seconds}
    return report


def _check_certificate_consistency(layer: ConvAttention, x: np.ndarray, report: VerifyReport,
                                   certificate: CertificationReport) -> None:
    """Fail a report whose certificate measured ``layer(x)`` further from the exact layer than possible.

    ``certificate.float_deviation`` bounds ``max |y − MHSA_exact|`` for
    ``y = layer(x)`` (the ``"auto"`` path). When the theorem holds,
    ``|y − conv| <= B`` per channel (:func:`~attn_expressivity.bounds.error.error_bound`
    for that path) and ``|MHSA_exact − conv| <= ε`` (the certificate), so
    ``|y − MHSA_exact| <= max B + ε``; a deviation above that is a contradiction
    (tables or a path that are not the layer's), never rounding, so the report
    fails. Where that bound does not exist (float16 on many keys) nothing is added.
    """
    if not certificate.holds:
        return
    try:
        with single_blas_thread():
            limit = error_bound(layer, x, path="auto")["bound"]
    except ParameterValueError:                    # no rounding bound for this type and size
        return
    limit = (limit + certificate.epsilon) * (1 + 2.0**-40)
    if certificate.float_deviation > limit:
        report.consistency_issues.append(
            f"the certificate measures layer(x) {certificate.float_deviation:.3e} from the exact layer, "
            f"above the bound {limit:.3e} on |layer(x) - conv| plus epsilon: the computed weights are "
            f"not the layer's")
        report.holds = False
