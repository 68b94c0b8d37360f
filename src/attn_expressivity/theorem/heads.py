"""Lemma 2's head vectors as stored: ``α`` and the centre read back from the weights.

:func:`~attn_expressivity.conv_to_mhsa` stores ``v^(h) = −α (1, −2Δ_h)`` in the
weights' type: ``fl(−α)`` and ``fl(fl64(2αΔ_i))``, so the stored head is
``−α_h ‖δ − μ_h‖² + const`` with ``α_h = −c_0`` (``c = β Ŵ_key v``, the
position coefficients, read exactly from the floats) and a centre
``μ_h = c_{1:} / (2α_h)`` that differs from the integer shift ``Δ_h`` by the
rounding of the storage (``Δ_h`` the shift of the kernel slice the head
carries, :func:`intended_shifts`). :func:`stored_heads` reads ``α_h`` and ``μ_h − Δ_h``
back exactly (rational arithmetic on the stored floats), and
:func:`head_issues` lists the heads that are *not* Lemma 2's heads up to that
rounding: content terms, a non-quadratic encoding, ``α_h < 0``, an ``α_h`` further
from the layer's ``α`` than ``3 (u_w + u_64) α`` (:func:`alpha_issues`), or a centre
further from ``Δ_h`` than ``3 (u_w + u_64) |Δ_h|`` per axis (the two roundings of
the storage, ``u_w`` the unit roundoff of the weights' type; both need the stored
entries in the normal range, which :func:`~attn_expressivity.conv_to_mhsa`
requires of a non-zero ``α``). The leak bound of
such a head does not hold, so a check that meets one fails, naming the head.
"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np

from ..convolution.shifts import shift_set

__all__ = ["StoredHead", "alpha_issues", "alpha_range", "charged_alpha", "head_issues", "intended_shifts",
           "storage_tolerance", "stored_heads"]


def intended_shifts(layer: Any) -> np.ndarray:
    """``Δ`` of the kernel slice each head carries, from the convolution's configuration alone.

    The shift of kernel index ``i`` is ``i · d − ⌊d (K − 1)/2⌋`` per axis
    (:func:`attn_expressivity.shift_set`); head ``h`` carries kernel index
    ``layer.kernel_indices[h]``. The checks compare the stored head vectors with
    these, never with ``layer.shifts``, so a construction that records wrong
    shifts is caught too.

    Examples
    --------
    >>> from attn_expressivity import conv_to_mhsa
    >>> intended_shifts(conv_to_mhsa(np.ones((1, 3, 1, 1)), alpha=1.0)).tolist()
    [[0, -1], [0, 0], [0, 1]]
    """
    cfg = layer.config
    return shift_set(cfg.kernel_size, dilation=cfg.dilation)[np.asarray(layer.kernel_indices)]


class StoredHead(NamedTuple):
    """One head's stored score ``−α (‖δ‖² − 2 μ·δ)``, exactly."""

    alpha: Fraction              # α_h = −β c_0 (β = ∞: −c_0)
    offset: tuple[Fraction, ...]  # μ_h − Δ_h per axis (0 when α_h = 0)
    coefficients: tuple[Fraction, ...]  # c = β Ŵ_key v


def stored_heads(layer: Any) -> list[StoredHead] | None:
    """The stored ``α_h`` and centre offsets of every head; None for a non-quadratic layer.

    ``layer`` is a :class:`~attn_expressivity.ConvAttention`. The position
    coefficients ``c = β Ŵ_key v`` are summed in exact rational arithmetic from
    the stored floats (``β = ∞`` counts as 1: the hard limit only needs the
    argmax).

    Examples
    --------
    >>> from attn_expressivity import conv_to_mhsa
    >>> heads = stored_heads(conv_to_mhsa(np.ones((1, 3, 1, 1), np.float32), alpha=2.1))
    >>> float(heads[0].alpha), [float(e) for e in heads[0].offset]   # α rounded to float32
    (2.0999999046325684, [0.0, 0.0])
    """
    mhsa = layer.mhsa
    if not (isinstance(mhsa.encoding, str) and mhsa.encoding == "quadratic") or mhsa.has_content_terms:
        return None
    beta = Fraction(mhsa.beta) if math.isfinite(mhsa.beta) else Fraction(1)
    shifts = intended_shifts(layer)
    out = []
    for h in range(mhsa.n_heads):
        w_hat = [[Fraction(float(a)) for a in row] for row in mhsa.w_key_hat[h]]       # (d_p, d_k)
        v = [Fraction(float(a)) for a in mhsa.v[h]]                                    # (d_k,)
        c = tuple(beta * sum((w * vk for w, vk in zip(row, v)), Fraction(0)) for row in w_hat)
        alpha = -c[0]
        shift = [int(s) for s in shifts[h]]
        offset = tuple((ci / (2 * alpha) - s) if alpha != 0 else Fraction(0)
                       for ci, s in zip(c[1:], shift))
        out.append(StoredHead(alpha, offset, c))
    return out


def head_issues(layer: Any) -> list[dict[str, Any]]:
    """Heads whose stored vectors are not Lemma 2's up to the rounding of the storage.

    Returns
    -------
    list of dict
        ``head``, ``shift`` and ``reason`` for every such head; empty for the
        layers :func:`~attn_expressivity.conv_to_mhsa` builds.

    Examples
    --------
    >>> from attn_expressivity import conv_to_mhsa
    >>> layer = conv_to_mhsa(np.ones((3, 1, 1)), alpha=30.0)
    >>> head_issues(layer)
    []
    >>> layer.mhsa.v[0, 1] *= 1.001                                # move head 0's centre
    >>> head_issues(layer)[0]["reason"][:40]
    'its centre is at -1.001 on axis 0, not a'
    """
    mhsa = layer.mhsa
    if mhsa.has_content_terms:
        return [{"head": None, "shift": None,
                 "reason": "the layer has content terms (w_qry, w_key, u); Lemma 2's heads have none"}]
    heads = stored_heads(layer)
    if heads is None:
        return [{"head": None, "shift": None,
                 "reason": "the layer's encoding is not the quadratic one of Lemma 2"}]
    rel = storage_tolerance(layer)
    shifts = intended_shifts(layer)
    issues = alpha_issues(layer, heads)
    named = {e["head"] for e in issues}
    for h, head in enumerate(heads):
        shift = [int(s) for s in shifts[h]]
        if h in named:
            continue
        if head.alpha < 0 or (head.alpha == 0 and any(head.coefficients[1:])):
            issues.append({"head": h, "shift": shift, "reason": (
                f"its score is not a bump: alpha = {float(head.alpha):.6g} and linear "
                f"coefficients {[float(c) for c in head.coefficients[1:]]}")})
            continue
        for i, (e, s) in enumerate(zip(head.offset, shift)):
            if abs(e) > rel * abs(s):
                issues.append({"head": h, "shift": shift, "reason": (
                    f"its centre is at {float(s + e):.6g} on axis {i}, not at {s} up to the "
                    f"rounding of the stored head vector (|offset| <= {float(rel * abs(s)):.3g})")})
                break
    return issues


def storage_tolerance(layer: Any) -> Fraction:
    """``3 (u_w + u_64)``: how far, relatively, storing ``v = −α(1, −2Δ)`` may move ``α_h`` and the centre.

    ``u_w`` is the unit roundoff of the stored vector's type: ``fl(−α)`` errs by
    ``u_w α`` and ``fl(fl64(2αΔ))`` by ``(u_w + u_64) 2α|Δ|`` (both in the normal
    range, which :func:`~attn_expressivity.conv_to_mhsa` requires of a non-zero ``α``);
    the factor 3 leaves room for an equivalent storage (``β`` and ``Ŵ_key`` rescaled).
    """
    u_w = float(np.finfo(layer.mhsa.v.dtype).eps) / 2
    return Fraction(3 * (u_w + 2.0**-53))


def _declared_alpha(layer: Any) -> float | None:
    """``layer.alpha`` as a float, or None when the layer declares no single ``α``."""
    alpha = getattr(layer, "alpha", None)
    if alpha is None or isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        return None
    alpha = float(alpha)
    return None if math.isnan(alpha) else alpha


def _alpha_off(head: StoredHead, declared: float, rel: Fraction) -> bool:
    """Whether ``α_h`` differs from the declared ``α`` by more than the storage can explain."""
    want = Fraction(declared)
    return abs(head.alpha - want) > rel * want


def alpha_issues(layer: Any, heads: list[StoredHead]) -> list[dict[str, Any]]:
    """Heads whose stored ``α_h`` is not the layer's ``α`` up to the rounding of the storage.

    The leak the bound charges a head is that of its stored ``α_h``, so a head
    whose ``α_h`` was lowered after construction (a scaled ``v`` or ``Ŵ_key``)
    would be charged a larger leak than the layer's ``α`` allows and pass with
    a large error. ``α_h`` is read exactly (:func:`stored_heads`) and must satisfy
    ``|α_h − α| <= 3 (u_w + u_64) α`` (:func:`storage_tolerance`); with ``α = ∞``
    the layer must be hard attention (``β = ∞``) and with a finite ``α`` it must not.
    When every head stores one and the same ``α_h`` that is not ``α``, the issue
    is the layer's ``alpha`` (``head`` None). A layer without a declared ``α``
    (``layer.alpha`` None) is not compared.

    Examples
    --------
    >>> from attn_expressivity import conv_to_mhsa
    >>> layer = conv_to_mhsa(np.ones((3, 1, 1)), alpha=30.0)
    >>> alpha_issues(layer, stored_heads(layer))
    []
    >>> layer.mhsa.v[1] *= 0.01                                    # head 1 now at alpha 0.3
    >>> alpha_issues(layer, stored_heads(layer))[0]["reason"][:34]
    'its stored alpha 0.3 is not the la'
    """
    declared = _declared_alpha(layer)
    if declared is None:
        return []
    hard = not math.isfinite(layer.mhsa.beta)
    if math.isinf(declared) != hard:
        return [{"head": None, "shift": None, "reason": (
            f"the layer's alpha {declared!r} does not match its heads: beta = {layer.mhsa.beta!r} "
            f"({'hard attention, alpha = inf' if hard else 'a finite alpha'})")}]
    if hard:                        # β = ∞ only needs the argmax: any α_h > 0 (the bump check)
        return []
    rel = storage_tolerance(layer)
    off = [h for h, head in enumerate(heads) if _alpha_off(head, declared, rel)]
    if not off:
        return []
    tol = float(rel * Fraction(declared))
    if len(heads) > 1 and len(off) == len(heads) and len({head.alpha for head in heads}) == 1:
        return [{"head": None, "shift": None, "reason": (
            f"the layer's alpha {declared:.6g} is not the alpha {float(heads[0].alpha):.6g} every head "
            f"stores, up to the rounding of the stored head vectors (|alpha_h - alpha| <= {tol:.3g})")}]
    shifts = intended_shifts(layer)
    return [{"head": h, "shift": [int(s) for s in shifts[h]], "reason": (
        f"its stored alpha {float(heads[h].alpha):.6g} is not the layer's alpha {declared:.6g} up to "
        f"the rounding of the stored head vector (|alpha_h - alpha| <= {tol:.3g})")} for h in off]


def charged_alpha(layer: Any, head: StoredHead) -> Fraction:
    """The ``α`` whose leak head ``head`` may be charged: its own, or the layer's when they differ.

    A head whose stored ``α_h`` is not the layer's ``α`` (:func:`alpha_issues`) is
    charged only the leak a Lemma 2 head at the layer's ``α`` has (``α`` lowered by
    the storage tolerance), so its deviation shows as an error above the bound.
    """
    declared = _declared_alpha(layer)
    if declared is None or not math.isfinite(declared) or not math.isfinite(layer.mhsa.beta):
        return head.alpha
    rel = storage_tolerance(layer)
    if not _alpha_off(head, declared, rel):
        return head.alpha
    return Fraction(declared) * (1 - rel)


def alpha_range(layer: Any) -> list[float] | None:
    """``[min_h α_h, max_h α_h]`` of the stored heads (``inf`` for hard attention); None if not quadratic.

    Examples
    --------
    >>> from attn_expressivity import conv_to_mhsa
    >>> alpha_range(conv_to_mhsa(np.ones((3, 1, 1)), alpha=30.0))
    [30.0, 30.0]
    """
    heads = stored_heads(layer)
    if not heads:
        return None
    if not math.isfinite(layer.mhsa.beta):
        return [math.inf, math.inf]
    return [float(min(h.alpha for h in heads)), float(max(h.alpha for h in heads))]
