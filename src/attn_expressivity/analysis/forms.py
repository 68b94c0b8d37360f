"""The positional score of a head as a quadratic form, and its centre and width.

A head whose positional score is a quadratic polynomial of the offset ``δ = k − q``,

.. math:: s(\\delta) = -\\delta^{\\top} P \\delta + b^{\\top}\\delta + \\mathrm{const}
          = -(\\delta - \\Delta)^{\\top} P (\\delta - \\Delta) + \\mathrm{const},
          \\qquad \\Delta = \\tfrac12 P^{-1} b ,

is a Gaussian bump on ``Δ`` when ``P`` is positive definite (Lemma 2 has
``P = αI``, ``b = 2αΔ``). The *width* reported is ``α = λ_min(P)``: every
off-target weight is at most ``e^{−α‖z‖²}`` times the target's (``z = δ − Δ``),
so for an integer centre the leak bound of
:func:`attn_expressivity.leak_bound` at this ``α`` applies, isotropic or not.

Coefficients come in any order of components: the quadratic encoding's
``(‖δ‖², δ_1, …, δ_D)``, ConViT's ``(δ_x, δ_y, ‖δ‖²)`` (``x`` the column offset,
``y`` the row offset), the generalised encoding's monomials, or a constant.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .._validation import as_float_array
from ..errors import ParameterTypeError, ParameterValueError, ShapeError

__all__ = ["QuadraticForms", "forms_from_coefficients", "read_forms"]

_AXIS = re.compile(r"^d(\d+)$")
_SQUARE = re.compile(r"^d(\d+)\^2$")
_CROSS = re.compile(r"^d(\d+)\*d(\d+)$")
#: 2-D aliases (image convention): ``x`` is the column offset (axis 1), ``y`` the row offset (axis 0).
_ALIASES = {"x": "d1", "y": "d0", "x^2": "d1^2", "y^2": "d0^2", "x*y": "d0*d1", "y*x": "d0*d1"}


class QuadraticForms(NamedTuple):
    """Per head ``s(δ) = −δᵀPδ + bᵀδ`` (constants dropped).

    Attributes
    ----------
    P : ndarray, shape ``(n_heads, D, D)``, symmetric
    b : ndarray, shape ``(n_heads, D)``
    """

    P: np.ndarray
    b: np.ndarray


def _component(name: object, ndim: int | None) -> tuple[str, tuple[int, ...]]:
    """``("sq"|"const"|"lin"|"square"|"cross", axes)`` for one component name."""
    if not isinstance(name, str):
        raise ParameterTypeError(f"component names must be strings, got {type(name).__name__} {name!r}")
    key = _ALIASES.get(name.replace(" ", ""), name.replace(" ", ""))
    if name in _ALIASES and ndim not in (None, 2):
        raise ParameterValueError(f"component {name!r} (x = column, y = row) is for 2-D grids, got ndim = {ndim}")
    if key in ("sq", "|d|^2"):
        return "sq", ()
    if key in ("const", "1"):
        return "const", ()
    for kind, pattern in (("lin", _AXIS), ("square", _SQUARE), ("cross", _CROSS)):
        m = pattern.match(key)
        if m:
            axes = tuple(int(g) for g in m.groups())
            if kind == "cross" and axes[0] == axes[1]:
                return "square", axes[:1]
            return kind, axes
    raise ParameterValueError(
        f"unknown component {name!r}: expected 'sq' (|δ|²), 'const', 'd<i>' (δ_i), 'd<i>^2', "
        f"'d<i>*d<j>', or in 2-D 'x' (column offset), 'y' (row offset), 'x^2', 'y^2', 'x*y'"
    )


def forms_from_coefficients(coefficients: object, components: Sequence[str],
                            ndim: int | None = None) -> tuple[QuadraticForms, int]:
    """Quadratic forms from per-head coefficients of named components.

    Parameters
    ----------
    coefficients : ndarray, shape ``(n_heads, n_components)``
        Row ``h``: head ``h``'s score is ``Σ_j coefficients[h, j] · component_j(δ)``
        (a linear projection of the components to the heads, e.g. the weight of
        ConViT's ``pos_proj``; its bias is a constant that softmax ignores).
    components : sequence of str, length ``n_components``
        Names: ``"sq"`` (‖δ‖²), ``"const"``, ``"d<i>"`` (δ_i), ``"d<i>^2"``,
        ``"d<i>*d<j>"``; in 2-D also ``"x"`` (column offset δ_1), ``"y"`` (row
        offset δ_0), ``"x^2"``, ``"y^2"``, ``"x*y"``.
    ndim : int, optional
        Spatial axes ``D``; by default one more than the largest axis named (2
        with ``x``/``y``; 1 when only ``sq``/``const`` are named).

    Returns
    -------
    (QuadraticForms, int)
        The forms and ``D``.

    Raises
    ------
    ShapeError
        Coefficients not of shape ``(n_heads, len(components))``.
    ParameterValueError
        An unknown or repeated component, an axis ``>= ndim``.
    ParameterTypeError, NonFiniteError
        Non-float or non-finite coefficients.

    Examples
    --------
    >>> forms, D = forms_from_coefficients(np.array([[2.0, -4.0, -1.0]]), ["x", "y", "sq"])
    >>> D, forms.P[0].tolist(), forms.b[0].tolist()
    (2, [[1.0, 0.0], [0.0, 1.0]], [-4.0, 2.0])
    """
    coef = as_float_array(coefficients, "coefficients")
    names = list(components) if not isinstance(components, str) else [components]
    if coef.ndim != 2 or coef.shape[1] != len(names) or coef.shape[0] < 1:
        raise ShapeError(
            f"`coefficients` must have shape (n_heads, {len(names)}) for components {names}, got {coef.shape}"
        )
    parsed = [_component(n, ndim) for n in names]
    keys = [(k, a) for k, a in parsed]
    if len(set(keys)) != len(keys):
        raise ParameterValueError(f"components must not repeat, got {names}")
    top = max((max(a) for _, a in parsed if a), default=-1)
    alias2d = any(n.replace(" ", "") in _ALIASES for n in names)
    D = ndim if ndim is not None else max(top + 1, 2 if alias2d else 1)
    if top >= D:
        raise ParameterValueError(f"component axis {top} does not exist in {D} dimensions ({names})")
    H = coef.shape[0]
    P, b = np.zeros((H, D, D)), np.zeros((H, D))
    for j, (kind, axes) in enumerate(parsed):
        c = coef[:, j].astype(np.float64)
        if kind == "sq":
            P -= c[:, None, None] * np.eye(D)
        elif kind == "lin":
            b[:, axes[0]] += c
        elif kind == "square":
            P[:, axes[0], axes[0]] -= c
        elif kind == "cross":
            i, k = axes
            P[:, i, k] -= 0.5 * c
            P[:, k, i] -= 0.5 * c
    return QuadraticForms(P, b), D


def read_forms(forms: QuadraticForms) -> dict[str, np.ndarray]:
    """Centre, width and shape of every head's form.

    Returns
    -------
    dict
        ``centres`` ``(n_heads, D)`` (NaN where ``P`` is not positive definite:
        no bump), ``alphas`` ``(n_heads,)`` (``λ_min(P)``; ``<= 0`` for a flat or
        inverted head), ``isotropic`` ``(n_heads,)`` (``P = αI`` exactly).

    Examples
    --------
    >>> out = read_forms(QuadraticForms(np.array([[[2.0, 0.0], [0.0, 2.0]]]), np.array([[4.0, -2.0]])))
    >>> out["centres"].tolist(), out["alphas"].tolist(), out["isotropic"].tolist()
    ([[1.0, -0.5]], [2.0], [True])
    """
    P, b = forms
    H, D = b.shape
    alphas = np.linalg.eigvalsh(P)[:, 0]                                   # (H,) λ_min
    iso = np.array([np.array_equal(P[h], P[h, 0, 0] * np.eye(D)) for h in range(H)])
    centres = np.full((H, D), np.nan)
    for h in range(H):
        if iso[h] and P[h, 0, 0] > 0:
            centres[h] = b[h] / (2.0 * P[h, 0, 0])                        # Δ = b / (2α)
        elif alphas[h] > 0:
            centres[h] = 0.5 * np.linalg.solve(P[h], b[h])
    alphas = np.where(iso, P[:, 0, 0], alphas)
    return {"centres": centres, "alphas": alphas, "isotropic": iso}

