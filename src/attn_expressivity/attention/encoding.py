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
from ..errors import ParameterTypeError, ParameterValueError, ShapeError

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


def quadratic_head_vectors(shifts: np.ndarray, alpha: float) -> np.ndarray:
    """Lemma 2's head vectors ``v^(h) = −α (1, −2Δ_h)``.

    Parameters
    ----------
    shifts : array of int, shape ``(n_heads, D)``
        The centres ``Δ_h`` (see :func:`attn_expressivity.shift_set`).
    alpha : float
        Inverse width ``α``, finite and ``>= 0``. (For ``α = ∞`` the layer keeps
        ``α = 1`` here and sets its inverse temperature ``beta = ∞``.)

    Returns
    -------
    numpy.ndarray of float64, shape ``(n_heads, D + 1)``

    Raises
    ------
    ParameterValueError
        ``alpha`` negative, NaN, infinite, or so large that ``2α max|Δ|`` overflows.
    ShapeError
        ``shifts`` not an integer array of shape ``(n_heads, D)``.

    Examples
    --------
    >>> quadratic_head_vectors(np.array([[1, -1]]), 2.0).tolist()
    [[-2.0, 4.0, -4.0]]
    """
    alpha = as_alpha(alpha)
    if not np.isfinite(alpha):
        raise ParameterValueError(
            "`alpha` must be finite here, got inf; hard attention uses beta=inf instead"
        )
    s = np.asarray(shifts)
    if s.dtype.kind not in "iu" or s.ndim != 2:
        raise ShapeError(f"`shifts` must be an integer array of shape (n_heads, D), got {s.dtype} {s.shape}")
    ones = np.ones((s.shape[0], 1))
    # Lemma 2: v = -α (1, -2Δ); the constant α‖Δ‖² is dropped (softmax ignores it).
    with np.errstate(over="ignore"):
        v = -alpha * np.concatenate([ones, -2.0 * s.astype(np.float64)], axis=1)
    if not np.isfinite(v).all():
        raise ParameterValueError(
            f"`alpha` = {alpha!r} is too large: α·2·max|Δ| overflows float64; "
            f"use alpha=inf for hard attention"
        )
    return v
