"""Bounds: the off-target softmax mass (leak) and the output error it causes.

**Leak.** For a quadratic-encoding head centred on ``Δ`` and any query ``q``
whose target ``t = q + Δ`` is in a rectangular key set ``S``, the softmax
weight of key ``k`` is ``e^{−α‖k − t‖²} / Σ_{k' ∈ S} e^{−α‖k' − t‖²}``. The
off-target offsets ``k − t`` are distinct non-zero points of ``Z^D``, so

.. math::
    1 - p_t = 1 - \\frac{1}{1 + \\sum_{k \\ne t} e^{-\\alpha\\|k-t\\|^2}}
            \\le 1 - \\frac{1}{\\sum_{z \\in \\mathbb{Z}^D} e^{-\\alpha\\|z\\|^2}}
            = 1 - \\theta_3(e^{-\\alpha})^{-D},

because the lattice sum factorises into ``D`` one-dimensional sums
``θ₃(x) = Σ_{n∈Z} x^{n²}`` (PAPER.md §3). It is independent of the image size,
about ``2D e^{−α}`` for large ``α``, and equal to the true leak for an interior
query of an infinite image.

**Output error.** With ``y_k^{(h)} = x_k W_val^{(h)} W_out^{(h)}`` and leak
``L``, each head's output ``Σ_k p_k y_k`` differs from ``y_t`` by
``Σ_{k≠t} p_k (y_k − y_t)``, at most ``2 L max_k ‖y_k‖_∞``; summing over heads
gives the a-priori bound ``2 L Σ_h max_k ‖y_k^{(h)}‖_∞``.
"""

from __future__ import annotations

import math

import numpy as np

from ._validation import as_alpha, as_int
from .errors import ParameterTypeError, ParameterValueError

__all__ = ["leak_bound", "alpha_for_tolerance", "unit_roundoff", "gamma", "ALPHA_RESOLUTION"]

#: Relative resolution of :func:`alpha_for_tolerance`.
ALPHA_RESOLUTION = 1e-9

_U64 = 2.0**-53


def unit_roundoff(dtype: object) -> float:
    """Unit roundoff ``u = eps / 2`` of a floating dtype (``2**-53`` for float64).

    Examples
    --------
    >>> unit_roundoff(np.float64) == 2.0**-53, unit_roundoff(np.float32) == 2.0**-24
    (True, True)
    """
    return float(np.finfo(np.dtype(dtype)).eps) / 2.0


def gamma(m: int, u: float) -> float:
    """Higham's ``γ_m = m u / (1 − m u)``: the relative error bound of an ``m``-term sum.

    Raises
    ------
    ParameterValueError
        When ``m u >= 1`` (no bound exists).
    """
    mu = m * u
    if mu >= 1:
        raise ParameterValueError(f"rounding bound undefined: m*u = {mu} >= 1 (m = {m}, u = {u})")
    return mu / (1.0 - mu)


def _theta3_minus_one_upper(alpha: float) -> float:
    """An upper bound on ``θ₃(e^{−α}) − 1`` for ``0 < α < ∞`` (before final rounding)."""
    if alpha >= 0.5:
        # Direct series 2 Σ_{n≥1} e^{−αn²}; stop when the terms are below 2^-80 of the
        # sum, then add the geometric tail bound Σ_{n>N} e^{−αn²} ≤ e^{−α(N+1)²}/(1 − e^{−α(2N+3)}).
        total, n = 0.0, 1
        while True:
            term = math.exp(-alpha * n * n)
            total += term
            if term <= total * 2.0**-80 or term == 0.0:
                break
            n += 1
        tail = math.exp(-alpha * (n + 1) ** 2) / -math.expm1(-alpha * (2 * n + 3))
        return 2.0 * (total + tail)
    # Jacobi's transformation θ₃(e^{−α}) = √(π/α) θ₃(e^{−π²/α}); here π²/α > 19, so the
    # transformed series is 1 + 2e^{−π²/α} + (terms below e^{−4π²/α}, bounded by a tail).
    beta = math.pi**2 / alpha
    inner = 2.0 * (math.exp(-beta) + math.exp(-4.0 * beta) / -math.expm1(-5.0 * beta))
    return math.sqrt(math.pi / alpha) * (1.0 + inner) - 1.0


def leak_bound(alpha: float, ndim: int) -> float:
    """Upper bound ``1 − θ₃(e^{−α})^{−ndim}`` on a quadratic head's off-target mass.

    Valid for any query and any rectangular key set that contains the target
    (so for every query of :func:`attn_expressivity.conv_to_mhsa`'s layers).
    Evaluated as ``−expm1(−ndim · log1p(θ₃ − 1))`` with ``θ₃ − 1`` summed from
    above with an explicit tail bound, then raised by a relative ``16 u`` to
    cover the rounding of ``exp``/``log1p``/``expm1``: no subtraction of
    nearly equal numbers, so the value never collapses to 0 for large ``α``.
    (:mod:`attn_expressivity.certify` gives a ball-arithmetic enclosure.)

    Parameters
    ----------
    alpha : float
        Inverse width ``α`` in ``[0, ∞]``.
    ndim : int
        Number of spatial dimensions ``D >= 1``.

    Returns
    -------
    float
        In ``[0, 1]``; 1 for ``α = 0`` (uniform attention), 0 for ``α = ∞``.

    Raises
    ------
    ParameterValueError
        ``alpha`` negative or NaN, ``ndim < 1``.
    ParameterTypeError
        Non-numeric ``alpha``, non-integer ``ndim``.

    Examples
    --------
    >>> f"{leak_bound(40.0, 2):.4e}"      # about 2·D·e^{-40}
    '1.6993e-17'
    >>> leak_bound(0.0, 2), leak_bound(float("inf"), 3)
    (1.0, 0.0)
    """
    alpha = as_alpha(alpha)
    ndim = as_int(ndim, "ndim", minimum=1)
    if alpha == math.inf:
        return 0.0
    if alpha == 0.0:
        return 1.0
    t = _theta3_minus_one_upper(alpha)
    value = -math.expm1(-ndim * math.log1p(t)) * (1.0 + 16 * _U64)
    return min(1.0, math.nextafter(value, math.inf))


def alpha_for_tolerance(tol: float, ndim: int, *, scale: float = 1.0) -> float:
    """The smallest ``α`` (to :data:`ALPHA_RESOLUTION`) with ``2 · leak_bound(α) · scale <= tol``.

    ``scale`` is the data factor ``Σ_h max_k ‖x_k W^(h)‖_∞`` of the output-error
    bound (see :func:`attn_expressivity.verify`); with ``scale = 1`` the result
    is the ``α`` that makes twice the leak at most ``tol``. Found by bisection
    on the monotone :func:`leak_bound`; the returned ``α`` satisfies the
    inequality and ``α·(1 − ALPHA_RESOLUTION)`` does not (up to the bisection
    resolution).

    Parameters
    ----------
    tol : float
        Target error, ``> 0``.
    ndim : int
        Number of spatial dimensions.
    scale : float, optional
        ``>= 0``.

    Returns
    -------
    float

    Raises
    ------
    ParameterValueError
        ``tol <= 0``, NaN, or ``scale < 0``.

    Examples
    --------
    >>> a = alpha_for_tolerance(1e-6, 2)
    >>> 2 * leak_bound(a, 2) <= 1e-6 < 2 * leak_bound(a * (1 - 1e-8), 2)
    True
    """
    for name, value in (("tol", tol), ("scale", scale)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
            raise ParameterTypeError(f"`{name}` must be a real number, got {type(value).__name__}")
    tol, scale = float(tol), float(scale)
    if not (tol > 0) or math.isinf(tol):
        raise ParameterValueError(f"`tol` must be a finite number > 0, got {tol!r}")
    if not (scale >= 0) or math.isinf(scale):
        raise ParameterValueError(f"`scale` must be a finite number >= 0, got {scale!r}")
    ndim = as_int(ndim, "ndim", minimum=1)

    def ok(a: float) -> bool:
        return 2.0 * leak_bound(a, ndim) * scale <= tol

    if ok(0.0):
        return 0.0
    hi = 1.0
    while not ok(hi):
        hi *= 2.0
    lo = hi / 2.0 if hi > 1.0 else 0.0
    while hi - lo > ALPHA_RESOLUTION * hi * 0.5:
        mid = 0.5 * (lo + hi)
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi
