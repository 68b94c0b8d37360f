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
``θ₃(x) = Σ_{n∈Z} x^{n²}`` (the guide, §6). It is independent of the image size,
about ``2D e^{−α}`` for large ``α``, and equal to the true leak for an interior
query of an infinite image.

**Output error.** With ``y_k^{(h)} = x_k W_val^{(h)} W_out^{(h)}`` and leak
``L``, each head's output ``Σ_k p_k y_k`` differs from ``y_t`` by
``Σ_{k≠t} p_k (y_k − y_t)``, at most ``2 L max_k ‖y_k‖_∞``; summing over heads
gives the a-priori bound ``2 L Σ_h max_k ‖y_k^{(h)}‖_∞``.

**Rigour.** :func:`leak_bound` is the upper end, rounded up to a float, of an
enclosure computed in ball arithmetic (:mod:`attn_expressivity.balls`:
python-flint's ``arb`` when installed, else ``mpmath.iv``), and every decision
of :func:`alpha_for_tolerance` is taken on such an enclosure. The data factor
``S`` is bounded from above in floating point with Higham's standard model
(:func:`scale_factor`) or from a bound on ``‖x‖_∞`` (:func:`scale_from_bound`).
"""

from __future__ import annotations

import math
from functools import lru_cache

from .._validation import as_alpha, as_int, as_real
from ..balls.backends import select_backend
from ..balls.theta import certified_leak_bound, leak_term_within
from ..errors import ParameterValueError

__all__ = ["ALPHA_RESOLUTION", "alpha_for_tolerance", "leak_bound"]

#: Relative resolution of :func:`alpha_for_tolerance`.
ALPHA_RESOLUTION = 1e-9


@lru_cache(maxsize=4096)
def _leak_upper(alpha: float, ndim: int, backend: str) -> float:
    return certified_leak_bound(alpha, ndim, backend=backend).upper


def leak_bound(alpha: float, ndim: int, *, backend: str | None = None) -> float:
    """Upper bound ``1 − θ₃(e^{−α})^{−ndim}`` on a quadratic head's off-target mass.

    Valid for any query and any rectangular key set that contains the target
    (so for every query of :func:`attn_expressivity.conv_to_mhsa`'s layers).
    The value is the upper end, rounded up to a float, of a ball-arithmetic
    enclosure (:func:`attn_expressivity.balls.theta.certified_leak_bound`): ``θ₃ − 1``
    is summed with an explicit tail bound (through Jacobi's transformation for
    ``α < 1/2``) and ``1 − (1 + t)^{−D}`` is evaluated as
    ``Σ_j C(D, j) t^j / (1 + t)^D``, a quotient of non-negative terms, so the
    bound never collapses to 0 through cancellation: for ``α`` so large that
    the leak is below the smallest float it is the smallest positive float.

    Parameters
    ----------
    alpha : float
        Inverse width ``α`` in ``[0, ∞]``.
    ndim : int
        Number of spatial dimensions ``D >= 1``.
    backend : {"flint", "mpmath"} or None, optional
        Ball-arithmetic library (None: flint when installed, else mpmath).

    Returns
    -------
    float
        In ``[0, 1]``, never below the exact value; 1 for ``α = 0`` (uniform
        attention), 0 for ``α = ∞``.

    Raises
    ------
    ParameterValueError
        ``alpha`` negative or NaN, ``ndim < 1``, an unknown ``backend``.
    ParameterTypeError
        Non-numeric ``alpha``, non-integer ``ndim``.
    OptionalDependencyError
        ``backend="flint"`` without python-flint.

    Examples
    --------
    >>> f"{leak_bound(40.0, 2):.4e}"      # about 2·D·e^{-40}
    '1.6993e-17'
    >>> leak_bound(0.0, 2), leak_bound(float("inf"), 3)
    (1.0, 0.0)
    >>> leak_bound(800.0, 2) > 0          # below the float range, still not 0
    True
    """
    alpha = as_alpha(alpha)
    ndim = as_int(ndim, "ndim", minimum=1)
    return _leak_upper(alpha, ndim, select_backend(backend).name)


def alpha_for_tolerance(tol: float, ndim: int, *, scale: float = 1.0,
                        backend: str | None = None) -> float:
    """A certified ``α``, smallest up to :data:`ALPHA_RESOLUTION`, with ``2 · L(α) · scale <= tol``.

    ``L`` is the leak bound ``1 − θ₃(e^{−α})^{−ndim}`` and ``scale`` the data
    factor ``S = Σ_h max_k ‖x_k W^(h)‖_∞`` of the output-error bound
    (:func:`scale_factor` computes it for a kernel and an input,
    :func:`scale_from_bound` from a bound on ``‖x‖_∞``); with ``scale = 1`` the
    result is the ``α`` that makes twice the leak at most ``tol``, i.e. the
    error relative to ``S``.

    Found by bisection on ``α``; every decision is taken in ball arithmetic
    (:func:`attn_expressivity.balls.theta.leak_term_within`): ``α`` is accepted only
    when ``2 L(α) scale <= tol`` is *proved*. The returned ``α`` is therefore
    certified, and the bisection stops when the rejected and accepted ends are
    within ``ALPHA_RESOLUTION · α / 2``, so ``α · (1 − ALPHA_RESOLUTION)`` is
    below a rejected point: since ``L`` decreases, the inequality fails there
    (or is too close to call at the working precision).

    Parameters
    ----------
    tol : float
        Target error, finite and ``> 0``.
    ndim : int
        Number of spatial dimensions.
    scale : float, optional
        Finite, ``>= 0`` (0 gives ``α = 0``).
    backend : {"flint", "mpmath"} or None, optional

    Returns
    -------
    float
        Finite, also when ``4 D scale / tol`` overflows a float (``tol`` near the
        bottom of the float range, or a large ``scale``); ``0.0`` when ``α = 0``
        already satisfies the inequality (``2 scale <= tol``).

    Raises
    ------
    ParameterValueError
        ``tol <= 0``, infinite or NaN; ``scale < 0``, infinite or NaN; ``ndim < 1``.
    ParameterTypeError
        Non-numeric ``tol`` or ``scale``, non-integer ``ndim``.

    Examples
    --------
    >>> a = alpha_for_tolerance(1e-6, 2)
    >>> round(a, 4)
    15.895
    >>> 2 * leak_bound(a, 2) <= 1e-6 < 2 * leak_bound(a * (1 - ALPHA_RESOLUTION), 2)
    True
    """
    tol, scale = as_real(tol, "tol"), as_real(scale, "scale")
    if not (tol > 0) or math.isinf(tol):
        raise ParameterValueError(f"`tol` must be a finite number > 0, got {tol!r}")
    if not (scale >= 0) or math.isinf(scale):
        raise ParameterValueError(f"`scale` must be a finite number >= 0, got {scale!r}")
    ndim = as_int(ndim, "ndim", minimum=1)
    name = select_backend(backend).name

    def ok(a: float) -> bool:
        return leak_term_within(a, ndim, scale, tol, backend=name)

    if ok(0.0):
        return 0.0
    # start from the asymptotics L ≈ 2 D e^{-α}: α ≈ log(4 D scale / tol), in logarithms
    # (4 D scale / tol itself overflows for tol near the bottom of the float range)
    guess = max(1.0, math.log(4.0 * ndim) + math.log(scale) - math.log(tol))
    lo, hi = max(0.0, guess - 1.0), guess + 1.0
    if ok(lo):
        lo = 0.0
    while not ok(hi):
        # L(α) <= 2.11 D e^{-α} for α >= 1, so 2 L scale <= tol from α = log(4.22 D scale / tol) on:
        # a finite α always exists for a finite tol > 0 and scale; doubling reaches it
        lo, hi = hi, 2.0 * hi
    while hi - lo > ALPHA_RESOLUTION * hi * 0.5:
        mid = 0.5 * (lo + hi)
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


# --------------------------------------------------------------------------- the data factor S
