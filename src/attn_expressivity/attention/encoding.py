"""Relative positional encodings ``r_δ`` and the head vectors ``v^(h)`` of Lemma 2.

Lemma 2 (the paper's §3.1; docs/guide.md): with ``r_δ = (‖δ‖², δ_1, …, δ_D)`` and
``v^(h) = −α (1, −2Δ_1, …, −2Δ_D)``,

.. math:: v^{\\top} r_\\delta = -\\alpha(\\|\\delta\\|^2 - 2\\Delta\\cdot\\delta)
          = -\\alpha\\left(\\|\\delta - \\Delta\\|^2 - \\|\\Delta\\|^2\\right),

a Gaussian bump centred on ``Δ`` whose constant ``α‖Δ‖²`` softmax ignores.
The symbolic engine (:mod:`attn_expressivity.symbolic`) derives the same
vector by matching coefficients; the tests check the two agree.
"""

from __future__ import annotations

import numpy as np

from .._validation import as_alpha
from ..errors import NonFiniteError, ParameterTypeError, ParameterValueError, ShapeError

__all__ = ["anisotropic_encoding", "quadratic_encoding", "quadratic_head_vectors"]


def _offsets(offsets: object) -> np.ndarray:
    """Integer offsets ``(..., D)``, ``D >= 1``, as float64 (exact below ``2**53``)."""
    off = np.asarray(offsets)
    if off.dtype.kind not in "iu":
        raise ParameterTypeError(f"`offsets` must be an integer array, got dtype {off.dtype}")
    if off.ndim < 1 or off.shape[-1] < 1:
        raise ShapeError(f"`offsets` must have shape (..., D) with D >= 1, got {off.shape}")
    return off.astype(np.float64)


def quadratic_encoding(offsets: np.ndarray) -> np.ndarray:
    """The quadratic relative encoding ``r_δ = (‖δ‖², δ_1, …, δ_D)``.

    Parameters
    ----------
    offsets : array of int, shape ``(..., D)``
        Relative offsets ``δ = k − q``.

    Returns
    -------
    numpy.ndarray of float64, shape ``(..., D + 1)``
        Exact for integer offsets below ``2**26`` in magnitude.

    Examples
    --------
    >>> quadratic_encoding(np.array([[2, -1]])).tolist()
    [[5.0, 2.0, -1.0]]
    """
    off = _offsets(offsets)
    sq = np.einsum("...i,...i->...", off, off)[..., None]
    return np.concatenate([sq, off], axis=-1)


def anisotropic_encoding(offsets: np.ndarray) -> np.ndarray:
    """The generalised quadratic encoding: linear, square and cross monomials of ``δ``.

    ``r_δ = (δ_1, …, δ_D, δ_1², …, δ_D², δ_iδ_j for i < j)``, ``d_p = D(D + 3)/2``,
    in the order of :func:`attn_expressivity.symbolic.anisotropic_basis` (in 2-D the
    paper's ``(δ_1, δ_2, δ_1², δ_2², δ_1δ_2)``). A head vector with zero cross
    coefficients (a diagonal ``Σ⁻¹``) gives a score that is a sum of per-axis terms.

    Parameters
    ----------
    offsets : array of int, shape ``(..., D)``
        Relative offsets ``δ = k − q``.

    Returns
    -------
    numpy.ndarray of float64, shape ``(..., D(D + 3)/2)``
        Exact for integer offsets below ``2**26`` in magnitude.

    Raises
    ------
    ParameterTypeError
        Non-integer offsets.
    ShapeError
        Offsets without a last axis of length ``>= 1``.

    Examples
    --------
    >>> anisotropic_encoding(np.array([[2, -1]])).tolist()
    [[2.0, -1.0, 4.0, 1.0, -2.0]]
    """
    off = _offsets(offsets)
    D = off.shape[-1]
    i, j = np.triu_indices(D, k=1)
    return np.concatenate([off, off * off, off[..., i] * off[..., j]], axis=-1)


def quadratic_head_vectors(shifts: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
    """Lemma 2's head vectors ``v^(h) = −α_h (1, −2Δ_h)``.

    The centres may be any real numbers: the score ``−α‖δ − Δ‖² + α‖Δ‖²`` is a
    Gaussian bump on ``Δ`` wherever it lies. An integer centre concentrates the
    head on one pixel as ``α → ∞`` (Lemma 2); a half-integer centre is a head that
    averages two pixels (four in 2-D, when both coordinates are half-integers)
    with equal weights, since they are equally far from ``Δ``.

    Parameters
    ----------
    shifts : array of int or float, shape ``(n_heads, D)``
        The centres ``Δ_h`` (see :func:`attn_expressivity.shift_set` for the
        integer centres of a convolution); finite.
    alpha : float or array of float, shape ``(n_heads,)``
        Inverse width ``α``, one for every head or one per head, finite and
        ``>= 0``. (For ``α = ∞`` the layer keeps ``α = 1`` here and sets its
        inverse temperature ``beta = ∞``.)

    Returns
    -------
    numpy.ndarray of float64, shape ``(n_heads, D + 1)``
        Exact for integer centres below ``2**52`` and ``α`` a power of two; one
        rounding per entry otherwise.

    Raises
    ------
    ParameterValueError
        ``alpha`` negative, NaN, infinite, or so large that ``2α max|Δ|`` overflows.
    ParameterTypeError
        ``alpha`` not a real number or an array of floats.
    ShapeError
        ``shifts`` not a real array of shape ``(n_heads, D)``, ``alpha`` an array
        of another length.
    NonFiniteError
        A centre that is NaN or infinite.

    Examples
    --------
    >>> quadratic_head_vectors(np.array([[1, -1]]), 2.0).tolist()
    [[-2.0, 4.0, -4.0]]
    >>> quadratic_head_vectors(np.array([[0.5, 0.0], [0.0, 0.0]]), np.array([4.0, 1.0])).tolist()
    [[-4.0, 4.0, 0.0], [-1.0, 0.0, 0.0]]
    """
    alphas = _head_alphas(alpha)
    s = np.asarray(shifts)
    if s.dtype.kind not in "iuf" or s.ndim != 2:
        raise ShapeError(
            f"`shifts` must be an integer or float array of shape (n_heads, D), got {s.dtype} {s.shape}"
        )
    if s.dtype.kind == "f" and not np.isfinite(s).all():
        raise NonFiniteError(f"`shifts` must hold only finite centres, got {float(s[~np.isfinite(s)][0])!r}")
    if alphas.ndim == 1 and alphas.shape != (s.shape[0],):
        raise ShapeError(f"`alpha` must be a number or have shape ({s.shape[0]},) (one per head), "
                         f"got shape {alphas.shape}")
    ones = np.ones((s.shape[0], 1))
    # Lemma 2: v = -α (1, -2Δ); the constant α‖Δ‖² is dropped (softmax ignores it).
    with np.errstate(over="ignore"):
        v = -np.reshape(alphas, (-1, 1)) * np.concatenate([ones, -2.0 * s.astype(np.float64)], axis=1)
    if not np.isfinite(v).all():
        raise ParameterValueError(
            f"`alpha` = {float(np.max(alphas))!r} is too large: α·2·max|Δ| overflows float64; "
            f"use alpha=inf for hard attention"
        )
    return v


def _head_alphas(alpha: object) -> np.ndarray:
    """``alpha`` as a float64 scalar array, or a 1-D array of per-head values, each in ``[0, ∞)``."""
    if isinstance(alpha, np.ndarray) and alpha.ndim > 0:
        if alpha.dtype.kind != "f" or alpha.ndim != 1:
            raise ParameterTypeError(
                f"`alpha` must be a real number or a 1-D float array (one per head), "
                f"got {alpha.dtype} array of shape {alpha.shape}"
            )
        bad = alpha[~(alpha >= 0)]
        if bad.size:
            raise ParameterValueError(f"`alpha` must be a real number in [0, inf], got {float(bad[0])!r}")
        if not np.isfinite(alpha).all():
            raise ParameterValueError(
                "`alpha` must be finite here, got inf; hard attention uses beta=inf instead"
            )
        return alpha.astype(np.float64)
    value = as_alpha(alpha)
    if not np.isfinite(value):
        raise ParameterValueError(
            "`alpha` must be finite here, got inf; hard attention uses beta=inf instead"
        )
    return np.asarray(value)
