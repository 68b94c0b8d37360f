"""Enclosures of the leak bound ``1 − θ₃(e^{−α})^{−D}`` in ball arithmetic.

With ``t = θ₃(e^{−α}) − 1 = 2 Σ_{n≥1} e^{−αn²}`` the off-target mass of a
quadratic head in ``D`` dimensions is at most (the guide, §6)

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
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from .._validation import as_alpha, as_int
from .backends import DEFAULT_PRECISION, Balls, select_backend

__all__ = ["Enclosure", "certified_leak_bound", "leak_ball", "leak_term_within"]


class Enclosure(NamedTuple):
    """A float interval ``[lower, upper]`` certified to contain an exact real number."""

    lower: float
    upper: float


def _theta3_minus_one(be: Balls, alpha: float, prec: int) -> Any:
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


def leak_ball(be: Balls, alpha: float, ndim: int, prec: int) -> Any:
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
    be = select_backend(backend)
    if alpha == math.inf:
        return Enclosure(0.0, 0.0)
    if alpha == 0.0:
        return Enclosure(1.0, 1.0)
    with be.precision(prec):
        ball = leak_ball(be, alpha, ndim, prec)
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
    be = select_backend(backend)
    if alpha == math.inf or scale == 0.0:
        return True
    with be.precision(prec):
        leak = be.num(1) if alpha == 0.0 else leak_ball(be, alpha, ndim, prec)
        return be.nonneg(be.num(tol) - 2 * leak * be.num(scale))
