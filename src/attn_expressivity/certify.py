"""Certified bounds and instance checks in ball (interval) arithmetic.

Two back-ends give rigorous enclosures: python-flint's ``arb`` (the optional
extra ``certify``; fast, C) and ``mpmath.iv`` (pure Python, always available
because sympy depends on mpmath). ``backend=None`` picks flint when it is
installed, else mpmath. Every float this module reports is an endpoint of an
enclosure rounded *outwards* (upper ends up, lower ends down), so it is a
rigorous bound on the exact real number, not an estimate.

**Leak bound** (PAPER.md §3). With ``t = θ₃(e^{−α}) − 1 = 2 Σ_{n≥1} e^{−αn²}``
the off-target mass of a quadratic head in ``D`` dimensions is at most

.. math::
    L(\\alpha, D) = 1 - (1 + t)^{-D} = \\frac{\\sum_{j=1}^{D} \\binom{D}{j} t^j}{(1 + t)^D},

a quotient of sums of non-negative terms, so no cancellation can drive the
enclosure to 0 for large ``α``. For ``α >= 1/2`` the series for ``t`` is
summed until its terms are below ``2^{−prec}`` of the sum and the rest is
enclosed in ``[0, e^{−α(N+1)²} / (1 − e^{−α(2N+3)})]`` (for ``m >= 1``,
``(N+1+m)² >= (N+1)² + m(2N+3)``). For ``α < 1/2`` Jacobi's transformation
``θ₃(e^{−α}) = √(π/α) θ₃(e^{−π²/α})`` gives a series whose ratio
``e^{−π²/α} < e^{−19}`` converges after two or three terms; ``t`` is then
``√(π/α)(1 + 2 Σ e^{−π²n²/α}) − 1 >= √(2π) − 1``, again free of cancellation.

**Certified instance check** (:func:`certify_layer`). The float weights and
the float input are exact dyadic rationals. Evaluating the layer in ball
arithmetic from them — scores, ``exp``, softmax, ``x W_val``, ``W_out``, bias —
gives for every output element an enclosure of ``MHSA_exact(x)``, the output
of the *given float weights* in exact real arithmetic; the convolution with the
given float kernel, evaluated the same way, gives ``conv_exact(x)``. The check
proves, element by element,

.. math::
    |\\mathrm{MHSA}_{exact}(x) - \\mathrm{conv}_{exact}(x)| \\le \\varepsilon
    = \\sum_h \\left(2 L(\\alpha_h, D)\\, S_h + \\max_k \\|x_k\\|_1\\, \\tau_h\\right),

with ``S_h = max_k ‖x_k W_val^(h) W_out^(h)‖_∞`` over the keys of the padded
image (the a-priori leak term of :mod:`attn_expressivity.bounds`) and ``τ_h``
an allowance for the floating-point factorisation ``W_val^(h) W_out^(h) ≈ W_Δh``
(default ``4 · max(d_in, d_out) · eps · ‖W_Δh‖_F``, the order of the rank
tolerance of :func:`attn_expressivity.conv_to_mhsa`; it is a tolerance, not a
theorem). The a-priori argument — head ``h``'s output differs from its target
value by ``Σ_{k≠t} p_k (z_k − z_t)``, at most ``2 L S_h``, and from
``x_t W_Δh`` by at most ``‖x_t‖_1 max|W_val W_out − W_Δh|`` — is why the check
should succeed; the check itself is the elementwise ball computation, which
makes the statement a proof for this instance. The float computation is a
separate matter: :func:`attn_expressivity.verify` bounds it by its rounding
term, and the certificate reports a certified upper bound on
``|layer(x) − MHSA_exact(x)|`` (``float_deviation``) to compare it with.
"""

from __future__ import annotations

import itertools
import math
import operator
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np

from ._validation import as_alpha, as_float_array, as_int
from .errors import (
    CertificationSizeError,
    OptionalDependencyError,
    ParameterTypeError,
    ParameterValueError,
    UnsupportedConfigurationError,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_PRECISION",
    "MAX_CERTIFY_WORK",
    "CertificationReport",
    "Enclosure",
    "available_backends",
    "certified_leak_bound",
    "certify_layer",
    "certify_work",
    "leak_term_within",
]

#: The ball-arithmetic back-ends, in the order ``backend=None`` tries them.
BACKENDS = ("flint", "mpmath")

#: Working precision in bits of the enclosures (raised automatically when an
#: element of a certified check is undecided at this precision).
DEFAULT_PRECISION = 128

#: Largest instance :func:`certify_layer` accepts, in ball operations
#: ``batch · n_heads · n_queries · n_keys · (d_head + 1)``: an 8×8 image with a
#: 3×3 kernel and 4 channels (``d_head = 4``, 100 padded keys, 64 queries)
#: needs 288,000; both back-ends finish that in seconds.
MAX_CERTIFY_WORK = 600_000

_MAX_PRECISION = 512


# --------------------------------------------------------------------------- back-ends


class _Balls:
    """A minimal ball-arithmetic interface; balls support ``+ - * /`` and ``abs``."""

    name = ""

    @contextmanager
    def precision(self, prec: int) -> Iterator[None]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    def num(self, value: float | int | Fraction) -> Any:  # pragma: no cover - abstract
        """A ball holding ``value`` (exact for floats and ints that fit the precision)."""
        raise NotImplementedError

    def exp(self, ball: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def sqrt(self, ball: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def pi(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def zero_to(self, ball: Any) -> Any:  # pragma: no cover - abstract
        """A ball containing ``[0, upper(ball)]``."""
        raise NotImplementedError

    def endpoints(self, ball: Any) -> tuple[tuple[int, int], tuple[int, int]]:  # pragma: no cover
        """``((man_lo, exp_lo), (man_hi, exp_hi))``: the ends as ``man · 2**exp``."""
        raise NotImplementedError

    # derived -----------------------------------------------------------------
    def upper(self, ball: Any) -> float:
        """The upper end, rounded up to a float."""
        return _dyadic_to_float(*self.endpoints(ball)[1], up=True)

    def lower(self, ball: Any) -> float:
        """The lower end, rounded down to a float."""
        return _dyadic_to_float(*self.endpoints(ball)[0], up=False)

    def nonneg(self, ball: Any) -> bool:
        """Whether every point of the ball is ``>= 0``."""
        return self.endpoints(ball)[0][0] >= 0

    def negative(self, ball: Any) -> bool:
        """Whether every point of the ball is ``< 0``."""
        return self.endpoints(ball)[1][0] < 0


class _FlintBalls(_Balls):
    name = "flint"

    def __init__(self) -> None:
        import flint

        self._flint = flint

    @contextmanager
    def precision(self, prec: int) -> Iterator[None]:
        with self._flint.ctx.workprec(prec):
            yield

    def num(self, value: float | int | Fraction) -> Any:
        if isinstance(value, Fraction):
            return self._flint.arb(self._flint.fmpq(value.numerator, value.denominator))
        return self._flint.arb(value)

    def exp(self, ball: Any) -> Any:
        return ball.exp()

    def sqrt(self, ball: Any) -> Any:
        return ball.sqrt()

    def pi(self) -> Any:
        return self._flint.arb.pi()

    def zero_to(self, ball: Any) -> Any:
        return self._flint.arb(0).union(ball.upper())

    def endpoints(self, ball: Any) -> tuple[tuple[int, int], tuple[int, int]]:
        if not ball.is_finite():
            raise ArithmeticError(f"non-finite ball {ball}")
        lo, hi = ball.lower().man_exp(), ball.upper().man_exp()
        return (int(lo[0]), int(lo[1])), (int(hi[0]), int(hi[1]))


class _MpmathBalls(_Balls):
    name = "mpmath"

    def __init__(self) -> None:
        import mpmath

        self._iv = mpmath.iv
        self._mpmath = mpmath

    @contextmanager
    def precision(self, prec: int) -> Iterator[None]:
        old = self._iv.prec
        self._iv.prec = prec
        try:
            yield
        finally:
            self._iv.prec = old

    def num(self, value: float | int | Fraction) -> Any:
        if isinstance(value, Fraction):
            return self._iv.mpf(value.numerator) / value.denominator
        return self._iv.mpf(value)

    def exp(self, ball: Any) -> Any:
        return self._iv.exp(ball)

    def sqrt(self, ball: Any) -> Any:
        return self._iv.sqrt(ball)

    def pi(self) -> Any:
        return self._iv.pi

    def zero_to(self, ball: Any) -> Any:
        return self._iv.mpf([0, ball.b])

    def endpoints(self, ball: Any) -> tuple[tuple[int, int], tuple[int, int]]:
        ends = []
        for sign, man, exp, bc in ball._mpi_:
            if man == 0 and bc != 0:                          # inf / nan special values
                raise ArithmeticError(f"non-finite interval {ball}")
            ends.append((-man if sign else man, exp))
        return ends[0], ends[1]


def _dyadic_to_float(man: int, exp: int, *, up: bool) -> float:
    """``man · 2**exp`` rounded up (``up``) or down to a float, huge exponents included."""
    if man == 0:
        return 0.0
    magnitude = man.bit_length() if man > 0 else (-man).bit_length()
    top = magnitude + exp                                      # 2**(top-1) <= |value| < 2**top
    if top < -1080:                                            # below half the smallest subnormal
        tiny = math.nextafter(0.0, 1.0)
        if man > 0:
            return tiny if up else 0.0
        return -0.0 if up else -tiny
    if top > 1030:
        if man > 0:
            return math.inf if up else np.finfo(np.float64).max.item()
        return -np.finfo(np.float64).max.item() if up else -math.inf
    exact = Fraction(man) * (Fraction(2) ** exp)
    value = float(exact)                                       # correctly rounded to nearest
    if up and Fraction(value) < exact:
        value = math.nextafter(value, math.inf)
    elif not up and Fraction(value) > exact:
        value = math.nextafter(value, -math.inf)
    return value


_BACKEND_CACHE: dict[str, _Balls] = {}


def available_backends() -> tuple[str, ...]:
    """The ball-arithmetic back-ends installed here, best first.

    Examples
    --------
    >>> "mpmath" in available_backends()
    True
    """
    found = []
    for name in BACKENDS:
        try:
            _select_backend(name)
        except OptionalDependencyError:
            continue
        found.append(name)
    return tuple(found)


def _select_backend(backend: object) -> _Balls:
    """Resolve ``backend`` ("flint", "mpmath" or None) to a back-end object."""
    if backend is not None and not isinstance(backend, str):
        raise ParameterTypeError(
            f"`backend` must be one of {BACKENDS} or None, got {type(backend).__name__}"
        )
    if backend is None:
        try:
            return _select_backend("flint")
        except OptionalDependencyError:
            return _select_backend("mpmath")
    if backend not in BACKENDS:
        raise ParameterValueError(f"`backend` must be one of {BACKENDS} or None, got {backend!r}")
    if backend not in _BACKEND_CACHE:
        try:
            _BACKEND_CACHE[backend] = _FlintBalls() if backend == "flint" else _MpmathBalls()
        except ImportError:
            raise OptionalDependencyError(
                f"backend={backend!r} needs {'python-flint' if backend == 'flint' else 'mpmath'}, "
                f"which is not installed; install the extra with "
                f"`pip install 'attn-expressivity[certify]'` or use backend='mpmath'"
            ) from None
    return _BACKEND_CACHE[backend]


# --------------------------------------------------------------------------- leak bound


class Enclosure(NamedTuple):
    """A float interval ``[lower, upper]`` certified to contain an exact real number."""

    lower: float
    upper: float


def _theta3_minus_one(be: _Balls, alpha: float, prec: int) -> Any:
    """A ball containing ``θ₃(e^{−α}) − 1`` for ``0 < α < ∞``."""
    a = be.num(alpha)
    if alpha >= 0.5:
        rate = a
    else:
        rate = be.pi() * be.pi() / a                           # Jacobi: e^{-π²/α}
    # N terms: then e^{-rate((N+1)² − 1)} <= 2^{-(prec+8)}, the rest is negligible against the
    # first term (and enclosed by the tail bound whatever N is); a fixed N, not a test on the
    # terms, because for huge rates the enclosures of e^{-rate n²} all contain 0
    rate_f = alpha if alpha >= 0.5 else math.pi**2 / alpha
    n = 2 if math.isinf(rate_f) else 1 + max(1, math.ceil(math.sqrt((prec + 8) * math.log(2) / rate_f + 1)))
    total = sum((be.exp(-(rate * (m * m))) for m in range(1, n + 1)), be.num(0))
    tail = be.exp(-(rate * ((n + 1) ** 2))) / (1 - be.exp(-(rate * (2 * n + 3))))
    series = total + be.zero_to(tail)                          # Σ_{m≥1} e^{-rate m²} lies in here
    if alpha >= 0.5:
        return 2 * series
    return be.sqrt(be.pi() / a) * (1 + 2 * series) - 1


def _leak_ball(be: _Balls, alpha: float, ndim: int, prec: int) -> Any:
    """A ball containing ``1 − θ₃(e^{−α})^{−ndim}`` (``alpha`` finite and > 0)."""
    t = _theta3_minus_one(be, alpha, prec)
    numerator = sum((math.comb(ndim, j) * t**j for j in range(1, ndim + 1)), be.num(0))
    return numerator / (1 + t) ** ndim


def certified_leak_bound(alpha: float, ndim: int, *, backend: str | None = None,
                         prec: int = DEFAULT_PRECISION) -> Enclosure:
    """An enclosure of the leak bound ``1 − θ₃(e^{−α})^{−ndim}`` (module docstring).

    Parameters
    ----------
    alpha : float
        Inverse width ``α`` in ``[0, ∞]``.
    ndim : int
        Spatial dimensions ``D >= 1``.
    backend : {"flint", "mpmath"} or None, optional
        Ball-arithmetic library; None picks flint when installed, else mpmath.
    prec : int, optional
        Working precision in bits (``>= 53``).

    Returns
    -------
    Enclosure
        ``lower <= 1 − θ₃(e^{−α})^{−ndim} <= upper``, both floats, rounded
        outwards; ``(1, 1)`` for ``α = 0`` and ``(0, 0)`` for ``α = ∞``.

    Raises
    ------
    ParameterValueError
        Negative or NaN ``alpha``, ``ndim < 1``, ``prec < 53``, an unknown ``backend``.
    ParameterTypeError
        Non-numeric ``alpha``, non-integer ``ndim`` or ``prec``.
    OptionalDependencyError
        ``backend="flint"`` without python-flint installed.

    Examples
    --------
    >>> enc = certified_leak_bound(40.0, 2, backend="mpmath")
    >>> f"{enc.lower:.6e} {enc.upper:.6e}"               # about 2·D·e^{-40}
    '1.699342e-17 1.699342e-17'
    >>> certified_leak_bound(800.0, 1, backend="mpmath")    # below the float range, not 0
    Enclosure(lower=0.0, upper=5e-324)
    """
    alpha = as_alpha(alpha)
    ndim = as_int(ndim, "ndim", minimum=1)
    prec = as_int(prec, "prec", minimum=53)
    be = _select_backend(backend)
    if alpha == math.inf:
        return Enclosure(0.0, 0.0)
    if alpha == 0.0:
        return Enclosure(1.0, 1.0)
    with be.precision(prec):
        ball = _leak_ball(be, alpha, ndim, prec)
        return Enclosure(max(0.0, be.lower(ball)), min(1.0, be.upper(ball)))


def leak_term_within(alpha: float, ndim: int, scale: float, tol: float, *,
                     backend: str | None = None, prec: int = DEFAULT_PRECISION) -> bool:
    """Whether ``2 · L(α, ndim) · scale <= tol`` is *proved* in ball arithmetic.

    ``False`` means the inequality fails or could not be decided at ``prec``.
    Arguments are validated by the callers (:func:`attn_expressivity.alpha_for_tolerance`).

    Examples
    --------
    >>> leak_term_within(40.0, 2, 1.0, 1e-16, backend="mpmath")
    True
    >>> leak_term_within(30.0, 2, 1.0, 1e-16, backend="mpmath")
    False
    """
    be = _select_backend(backend)
    if alpha == math.inf or scale == 0.0:
        return True
    with be.precision(prec):
        leak = be.num(1) if alpha == 0.0 else _leak_ball(be, alpha, ndim, prec)
        return be.nonneg(be.num(tol) - 2 * leak * be.num(scale))


# --------------------------------------------------------------------------- instance check


@dataclass
class CertificationReport:
    """The outcome of :func:`certify_layer`.

    Attributes
    ----------
    holds : bool
        Every output element was proved to satisfy
        ``|MHSA_exact − conv_exact| <= epsilon`` (and every head has the
        quadratic form the leak bound needs).
    epsilon : float
        The bound, ``Σ_h (2 L_h S_h + F_h)``, rounded up.
    leak : float
        The largest per-head leak bound ``L_h`` (upper end).
    scale : float
        ``Σ_h S_h``, ``S_h = max_k ‖x_k W_val^(h) W_out^(h)‖_∞`` (upper end).
    factorisation_allowance : float
        ``Σ_h F_h``, ``F_h = max_k ‖x_k‖_1 τ_h``.
    max_abs_difference : float
        Certified upper bound on ``max |MHSA_exact − conv_exact|``.
    float_deviation : float
        Certified upper bound on ``max |layer(x) − MHSA_exact(x)|``: how far
        the floating-point layer is from the exact one on this input.
    n_elements, n_certified : int
    failures : list of dict
        Up to 10 elements that were not certified: ``element`` (batch, pixel
        and channel indices), ``status`` ("violated" when the difference is
        proved to exceed ``epsilon``, "undecided" otherwise), ``difference``
        (its enclosure) and ``heads`` (heads whose own share of the bound is
        proved exceeded, with their discrepancy).
    head_issues : list of dict
        Heads whose scores are not ``−α‖δ − Δ_h‖² + const`` (the bound does
        not apply) or whose factorisation residual ``max|W_val W_out − W_Δh|``
        exceeds the allowance ``τ_h``.
    residuals : list of float
        Per head, a certified upper bound on ``max|W_val^(h) W_out^(h) − W_Δh|``.
    backend : str
    precision : int
        Bits used for the final pass.
    seconds : float
    """

    holds: bool
    epsilon: float
    leak: float
    scale: float
    factorisation_allowance: float
    max_abs_difference: float
    float_deviation: float
    n_elements: int
    n_certified: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    head_issues: list[dict[str, Any]] = field(default_factory=list)
    residuals: list[float] = field(default_factory=list)
    backend: str = ""
    precision: int = DEFAULT_PRECISION
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary."""
        return asdict(self)

    def summary(self) -> str:
        """A short human-readable account of what was proved."""
        lines = [
            f"certified ({self.backend}, {self.precision} bits, {self.seconds:.2f} s): "
            f"{self.n_certified}/{self.n_elements} elements with "
            f"|MHSA_exact - conv_exact| <= eps = {self.epsilon:.3e}",
            f"  eps = 2 L S + F: L <= {self.leak:.3e}, S <= {self.scale:.3e}, "
            f"F = {self.factorisation_allowance:.3e}; max |difference| <= {self.max_abs_difference:.3e}",
            f"  float layer within {self.float_deviation:.3e} of the exact-arithmetic layer",
        ]
        for issue in self.head_issues:
            lines.append(f"  head {issue['head']}: {issue['reason']}")
        for f in self.failures:
            heads = ", ".join(f"head {h['head']}" for h in f["heads"]) or "no single head"
            lines.append(
                f"  {f['status']} at element {tuple(f['element'])}: difference in "
                f"[{f['difference'][0]:.3e}, {f['difference'][1]:.3e}] ({heads})"
            )
        not_certified = self.n_elements - self.n_certified
        if not_certified > len(self.failures):
            lines.append(f"  ({len(self.failures)} of {not_certified} uncertified elements shown)")
        lines.append(f"  {'CERTIFIED' if self.holds else 'NOT CERTIFIED'}")
        return "\n".join(lines)


def _layer_geometry(layer: Any, x: np.ndarray) -> dict[str, Any]:
    cfg, mhsa = layer.config, layer.mhsa
    nd = cfg.ndim
    xp = layer.pad(x)
    padded = tuple(xp.shape[xp.ndim - nd - 1:-1])
    window = layer.crop(padded)
    q_axes = [range(sl.start, sl.stop, sl.step) for sl in window]
    batch = tuple(xp.shape[: xp.ndim - nd - 1])
    n_k, n_q = math.prod(padded), math.prod(len(r) for r in q_axes)
    work = math.prod(batch) * mhsa.n_heads * n_q * n_k * (mhsa.d_head + 1)
    return {"xp": xp, "padded": padded, "q_axes": q_axes, "batch": batch, "n_k": n_k,
            "n_q": n_q, "work": work}


def certify_work(layer: Any, x: np.ndarray) -> int:
    """The size of a certified check, in ball operations (see :data:`MAX_CERTIFY_WORK`).

    Parameters
    ----------
    layer : ConvAttention
    x : ndarray, shape ``(*batch, *spatial, d_in)``

    Returns
    -------
    int
        ``batch · n_heads · n_queries · n_keys · (d_head + 1)`` over the padded image.

    Examples
    --------
    >>> from attn_expressivity import conv_to_mhsa
    >>> layer = conv_to_mhsa(np.ones((3, 3, 4, 4)), alpha=20.0, d_head=4)
    >>> certify_work(layer, np.ones((8, 8, 4)))
    288000
    """
    from .config import check_image

    x = as_float_array(x, "x")
    check_image(x, layer.config)
    return _layer_geometry(layer, x)["work"]


def _head_forms(layer: Any) -> tuple[list[Fraction | None], list[list[Fraction]], list[dict[str, Any]]]:
    """Exact score coefficients of every head and the heads that are not quadratic bumps.

    The score of offset ``δ`` is ``c_0 ‖δ‖² + Σ_i c_i δ_i`` with ``c = β Ŵ_key v``
    (content terms are zero). It equals ``−α_h ‖δ − Δ_h‖² + α_h‖Δ_h‖²`` exactly
    iff ``c_0 = −α_h <= 0`` and ``c_i = 2 α_h Δ_{h,i}``.
    """
    mhsa = layer.mhsa
    finite = math.isfinite(mhsa.beta)
    beta = Fraction(mhsa.beta) if finite else Fraction(1)
    alphas: list[Fraction | None] = []
    coefs: list[list[Fraction]] = []
    issues = []
    for h in range(mhsa.n_heads):
        w_hat = [[Fraction(float(a)) for a in row] for row in mhsa.w_key_hat[h]]     # (d_p, d_k)
        v = [Fraction(float(a)) for a in mhsa.v[h]]                                  # (d_k,)
        c = [beta * sum((w * vk for w, vk in zip(row, v)), Fraction(0)) for row in w_hat]
        coefs.append(c)
        alpha_h = -c[0]
        shift = [int(s) for s in layer.shifts[h]]
        ok = alpha_h >= 0 and all(ci == 2 * alpha_h * s for ci, s in zip(c[1:], shift))
        if not finite and alpha_h == 0:
            ok = False
        if not ok:
            alphas.append(None)
            issues.append({"head": h, "reason": (
                f"scores are not -alpha*|delta - {tuple(shift)}|^2 + const with alpha >= 0 "
                f"(coefficients of (|delta|^2, delta) are {[float(ci) for ci in c]}); "
                f"the leak bound does not apply")})
        else:
            alphas.append(alpha_h if finite else None)
    return alphas, coefs, issues


def certify_layer(layer: Any, x: np.ndarray, *, backend: str | None = None,
                  factorisation_tol: float | None = None,
                  prec: int = DEFAULT_PRECISION) -> CertificationReport:
    """Prove ``|MHSA_exact(x) − conv_exact(x)| <= ε`` element by element.

    ``layer`` is a :class:`attn_expressivity.ConvAttention` (from
    :func:`attn_expressivity.conv_to_mhsa`, possibly with edited weights) and
    ``conv_exact`` the convolution with ``layer.kernel`` and ``layer.bias``.
    The attention layer (pad → scores → exp → softmax → values → ``W_out`` →
    bias → crop) and the convolution (pad → multiply-add over the kernel window
    → bias) are both evaluated in ball arithmetic from the exact float weights
    and input; ``ε`` is the a-priori bound of the module docstring. When the
    enclosures at ``prec`` bits cannot decide an element, the precision is
    doubled (up to 512 bits).

    What is proved is a statement about exact real arithmetic with the given
    float weights; the floating-point evaluation of the same layer is covered
    by :func:`attn_expressivity.verify`'s rounding term and measured here as
    ``float_deviation`` (itself a certified upper bound).

    Parameters
    ----------
    layer : ConvAttention
        Content terms zero, quadratic encoding (as built by ``conv_to_mhsa``).
    x : ndarray, shape ``(*batch, *spatial, d_in)``
    backend : {"flint", "mpmath"} or None, optional
        None: flint when installed, else mpmath.
    factorisation_tol : float, optional
        ``τ_h`` for every head; default ``4 · max(d_in, d_out) · eps · ‖W_Δh‖_F``
        with ``eps`` the machine epsilon of the weights' dtype.
    prec : int, optional
        Initial working precision in bits (``>= 53``).

    Returns
    -------
    CertificationReport

    Raises
    ------
    CertificationSizeError
        When :func:`certify_work` exceeds :data:`MAX_CERTIFY_WORK`.
    UnsupportedConfigurationError
        A layer with content terms or a non-quadratic encoding.
    ParameterTypeError, ParameterValueError, ShapeError, NonFiniteError, OptionalDependencyError
        Bad arguments, an input that does not fit the layer, a missing back-end.

    Examples
    --------
    >>> from attn_expressivity import conv_to_mhsa
    >>> rng = np.random.default_rng(0)
    >>> layer = conv_to_mhsa(rng.standard_normal((3, 3, 2, 2)), alpha=30.0)
    >>> report = certify_layer(layer, rng.standard_normal((5, 5, 2)), backend="mpmath")
    >>> report.holds, report.n_certified, report.max_abs_difference <= report.epsilon
    (True, 50, True)
    """
    from .config import check_image
    from .construction import ConvAttention, head_matrices

    t0 = time.perf_counter()
    if not isinstance(layer, ConvAttention):
        raise ParameterTypeError(
            f"`layer` must be a ConvAttention (from conv_to_mhsa), got {type(layer).__name__}"
        )
    be = _select_backend(backend)
    prec = as_int(prec, "prec", minimum=53)
    if factorisation_tol is not None:
        if isinstance(factorisation_tol, bool) or not isinstance(factorisation_tol, (int, float)):
            raise ParameterTypeError(
                f"`factorisation_tol` must be a number >= 0 or None, got {type(factorisation_tol).__name__}"
            )
        if not (float(factorisation_tol) >= 0) or math.isinf(factorisation_tol):
            raise ParameterValueError(
                f"`factorisation_tol` must be a finite number >= 0, got {factorisation_tol!r}"
            )
    x = as_float_array(x, "x")
    cfg, mhsa = layer.config, layer.mhsa
    check_image(x, cfg)
    if not (isinstance(mhsa.encoding, str) and mhsa.encoding == "quadratic"):
        raise UnsupportedConfigurationError(
            "certify_layer needs the quadratic encoding r_δ = (|δ|², δ), got a custom encoding"
        )
    if np.any(mhsa.w_qry) or np.any(mhsa.w_key):
        raise UnsupportedConfigurationError(
            "certify_layer needs W_qry = W_key = 0 (no content terms), as conv_to_mhsa builds"
        )
    geo = _layer_geometry(layer, x)
    if geo["work"] > MAX_CERTIFY_WORK:
        raise CertificationSizeError(
            f"certify=True is limited to {MAX_CERTIFY_WORK:,} ball operations "
            f"(batch x heads x queries x keys x (d_head + 1); an 8x8 image with a 3x3 kernel and "
            f"4 channels needs 288,000), got {geo['work']:,} (batch {math.prod(geo['batch'])}, "
            f"{mhsa.n_heads} heads, {geo['n_q']} queries, {geo['n_k']} keys, d_head {mhsa.d_head}); "
            f"certify a crop of the image or a smaller kernel"
        )
    alphas, coefs, issues = _head_forms(layer)
    y_float = layer(x)
    mats = head_matrices(layer.kernel, cfg.groups)                         # (H, d_in, d_out)
    if factorisation_tol is None:
        eps = float(np.finfo(np.result_type(mhsa.w_val, mhsa.w_out)).eps)
        rho = 4 * max(cfg.d_in, cfg.d_out) * eps
    while True:
        with be.precision(prec):
            result = _certify_pass(be, layer, geo, alphas, coefs, issues, mats, y_float,
                                   rho if factorisation_tol is None else None,
                                   factorisation_tol, prec)
        if result["undecided"] == 0 or prec >= _MAX_PRECISION:
            break
        prec *= 2
    result.pop("undecided")
    return CertificationReport(**result, backend=be.name, precision=prec,
                               seconds=time.perf_counter() - t0)


def _certify_pass(be: _Balls, layer: Any, geo: dict[str, Any], alphas: list[Fraction | None],
                  coefs: list[list[Fraction]], form_issues: list[dict[str, Any]], mats: np.ndarray,
                  y_float: np.ndarray, rho: float | None, tau_fixed: float | None,
                  prec: int) -> dict[str, Any]:
    """One evaluation at the current precision (see :func:`certify_layer`)."""
    cfg, mhsa = layer.config, layer.mhsa
    nd, H, dh, d_in, d_out = cfg.ndim, mhsa.n_heads, mhsa.d_head, cfg.d_in, cfg.d_out
    padded, q_axes, n_k = geo["padded"], geo["q_axes"], geo["n_k"]
    tokens = geo["xp"].reshape(-1, n_k, d_in)                                # (B, n_k, d_in)
    num = be.num
    zero = num(0)

    # exact inputs as balls
    w_val = [[[num(float(a)) for a in row] for row in mhsa.w_val[h]] for h in range(H)]   # (H, d_in, dh)
    w_out = [[[num(float(a)) for a in row] for row in mhsa.w_out[h * dh:(h + 1) * dh]]
             for h in range(H)]                                                          # (H, dh, d_out)
    w_conv = [[[num(float(a)) for a in row] for row in mats[h]] for h in range(H)]       # (H, d_in, d_out)
    b_out = [num(float(a)) for a in mhsa.b_out]
    b_conv = [zero] * d_out if layer.bias is None else [num(float(a)) for a in layer.bias]

    # positions: keys in raster order of the padded image, queries = the kept window
    k_pos = np.indices(padded).reshape(nd, n_k).T                            # (n_k, D)
    q_pos = np.array(list(itertools.product(*q_axes)), dtype=np.int64).reshape(-1, nd)  # (n_q, D)
    box = tuple(2 * p - 1 for p in padded)                                   # offsets δ = k − q
    rel = k_pos[None, :, :] - q_pos[:, None, :] + (np.array(padded) - 1)    # (n_q, n_k, D), >= 0
    off_index = np.ravel_multi_index(tuple(np.moveaxis(rel, -1, 0)), box).tolist()
    offsets = np.indices(box).reshape(nd, -1).T - (np.array(padded) - 1)    # (n_off, D)
    q_flat = np.ravel_multi_index(tuple(q_pos.T), padded).tolist()          # query token index
    # the convolution side reads its taps from the configuration alone, never from the
    # layer's shifts: output o, kernel index i (raster order, the order of `mats`) reads
    # the padded pixel o·stride + i·dilation
    outs = np.array(list(itertools.product(*[range(len(r)) for r in q_axes])),
                    dtype=np.int64).reshape(-1, nd)                          # (n_q, D)
    kernel_idx = np.array(list(itertools.product(*[range(k) for k in cfg.kernel_size])),
                          dtype=np.int64).reshape(-1, nd)                    # (H, D)
    tap = [np.ravel_multi_index(tuple((outs * np.array(cfg.stride)
                                       + i * np.array(cfg.dilation)).T), padded).tolist()
           for i in kernel_idx]                                              # conv tap per kernel index

    # exact relative scores and their exponentials (one per distinct value)
    exp_cache: dict[Fraction, Any] = {}
    weights = []                                                             # (H, n_off) balls
    leaks = []
    for h in range(H):
        c = coefs[h]
        shift = [int(s) for s in layer.shifts[h]]
        if alphas[h] is None and not math.isfinite(mhsa.beta):
            # hard attention (β = ∞) on a quadratic head: one-hot on the target exactly
            weights.append([num(1) if list(map(int, d)) == shift else zero for d in offsets])
            leaks.append(zero)
            continue
        if alphas[h] is None:
            weights.append(None)
            leaks.append(None)
            continue
        top = c[0] * sum(s * s for s in shift) + sum(ci * s for ci, s in zip(c[1:], shift))
        row = []
        for d in offsets.tolist():
            s = c[0] * sum(di * di for di in d) + sum(ci * di for ci, di in zip(c[1:], d)) - top
            if s not in exp_cache:
                exp_cache[s] = num(1) if s == 0 else be.exp(num(s))
            row.append(exp_cache[s])
        weights.append(row)
        a = float(alphas[h])
        if Fraction(a) > alphas[h]:                       # L decreases in α: round α down
            a = math.nextafter(a, 0.0)
        leaks.append(num(1) if a == 0.0 else _leak_ball(be, a, nd, prec))

    # ε: per head 2 L_h S_h + F_h; residuals of the factorisation
    head_eps: list[Any] = []
    residuals, scale_total, fact_total, leak_max = [], 0.0, 0.0, 0.0
    issues = list(form_issues)
    xs = [[[num(float(a)) for a in tok] for tok in tokens[b]] for b in range(tokens.shape[0])]
    x_l1 = max(be.upper(sum((abs(a) for a in tok), zero)) for xb in xs for tok in xb)
    for h in range(H):
        m_h = [[sum((w_val[h][i][j] * w_out[h][j][c] for j in range(dh)), zero)
                for c in range(d_out)] for i in range(d_in)]                          # (d_in, d_out)
        resid = max(be.upper(abs(m_h[i][c] - w_conv[h][i][c]))
                    for i in range(d_in) for c in range(d_out))
        residuals.append(resid)
        if tau_fixed is not None:
            tau = num(tau_fixed)
        else:
            frob = be.sqrt(sum((w * w for row in w_conv[h] for w in row), zero))
            tau = num(be.upper(frob * num(rho)))
        if resid > be.upper(tau):
            issues.append({"head": h, "reason": (
                f"factorisation residual max|W_val W_out - W_delta| <= {resid:.3e} exceeds the "
                f"allowance tau = {be.upper(tau):.3e}")})
        s_h = 0.0
        for xb in xs:
            for k in range(n_k):
                for c in range(d_out):
                    z = sum((xb[k][i] * m_h[i][c] for i in range(d_in)), zero)
                    s_h = max(s_h, be.upper(abs(z)))
        scale_total += s_h
        fact = num(x_l1) * tau
        fact_total += be.upper(fact)
        if leaks[h] is None:
            head_eps.append(None)
            continue
        leak_max = max(leak_max, be.upper(leaks[h]))
        head_eps.append(2 * leaks[h] * num(s_h) + fact)
    if any(e is None for e in head_eps):
        return {"holds": False, "epsilon": math.nan, "leak": leak_max, "scale": scale_total,
                "factorisation_allowance": fact_total, "max_abs_difference": math.nan,
                "float_deviation": math.nan, "n_elements": int(y_float.size), "n_certified": 0,
                "failures": [], "head_issues": issues, "residuals": residuals, "undecided": 0}
    eps_ball = sum(head_eps, zero)
    epsilon = be.upper(eps_ball)
    eps_exact = num(epsilon)                                               # prove against this float
    eps_heads = [num(be.upper(e)) for e in head_eps]

    failures: list[dict[str, Any]] = []
    n_cert = undecided = 0
    max_diff = float_dev = 0.0
    out_shape = tuple(len(r) for r in q_axes)
    y_flat = y_float.reshape(-1, len(q_flat), d_out)
    mul = operator.mul
    for b, xb in enumerate(xs):                                                      # xb: (n_k, d_in)
        head_out = []                                                                 # (H, n_q, d_out)
        for h in range(H):
            # values V = x W_val, as columns (dh lists of n_k balls)
            cols = [[sum((xb[k][i] * w_val[h][i][j] for i in range(d_in)), zero) for k in range(n_k)]
                    for j in range(dh)]
            per_q = []
            for qi in range(len(q_flat)):
                e = [weights[h][o] for o in off_index[qi]]                   # exp(score − score_t), (n_k,)
                z = sum(e, zero)                                             # softmax denominator
                head = [sum(map(mul, e, col), zero) / z for col in cols]     # (dh,)
                per_q.append([sum((head[j] * w_out[h][j][c] for j in range(dh)), zero)
                              for c in range(d_out)])
            head_out.append(per_q)
        for qi in range(len(q_flat)):
            for c in range(d_out):
                attn = b_out[c] + sum((head_out[h][qi][c] for h in range(H)), zero)
                conv_h = [sum((xb[tap[h][qi]][i] * w_conv[h][i][c] for i in range(d_in)), zero)
                          for h in range(H)]
                ref = b_conv[c] + sum(conv_h, zero)
                diff = attn - ref
                max_diff = max(max_diff, be.upper(abs(diff)))
                float_dev = max(float_dev, be.upper(abs(num(float(y_flat[b, qi, c])) - attn)))
                if be.nonneg(eps_exact - diff) and be.nonneg(eps_exact + diff):
                    n_cert += 1
                    continue
                violated = be.negative(eps_exact - diff) or be.negative(eps_exact + diff)
                undecided += not violated
                if len(failures) < 10:
                    heads = []
                    for h in range(H):
                        a_h = head_out[h][qi][c] - conv_h[h]
                        if be.negative(eps_heads[h] - a_h) or be.negative(eps_heads[h] + a_h):
                            heads.append({"head": h, "shift": [int(s) for s in layer.shifts[h]],
                                          "discrepancy": [be.lower(a_h), be.upper(a_h)],
                                          "allowance": be.upper(eps_heads[h])})
                    pixel = np.unravel_index(qi, out_shape)
                    batch_idx = np.unravel_index(b, geo["batch"]) if geo["batch"] else ()
                    failures.append({
                        "element": [int(i) for i in (*batch_idx, *pixel, c)],
                        "status": "violated" if violated else "undecided",
                        "difference": [be.lower(diff), be.upper(diff)],
                        "epsilon": epsilon, "heads": heads})
    n_elem = tokens.shape[0] * len(q_flat) * d_out
    return {"holds": n_cert == n_elem and not form_issues, "epsilon": epsilon, "leak": leak_max,
            "scale": scale_total, "factorisation_allowance": fact_total,
            "max_abs_difference": max_diff, "float_deviation": float_dev,
            "n_elements": n_elem, "n_certified": n_cert, "failures": failures,
            "head_issues": issues, "residuals": residuals, "undecided": undecided}
