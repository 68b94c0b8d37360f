"""The result of :func:`~attn_expressivity.analysis.analyse_attention`: per-head arrays and the layer's verdicts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["AttentionReport"]


def _plain(value: Any) -> Any:
    """JSON-able copies: arrays to lists, NaN/inf to None."""
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


@dataclass
class AttentionReport:
    """How convolutional an attention layer is: per head, then for the layer.

    Per-head arrays (``n_heads`` first):

    Attributes
    ----------
    kind : str
        ``"mhsa"``, ``"conv_attention"``, ``"coefficients"``, ``"torch_multihead"`` or ``"learned"``.
    n_heads, ndim : int
    grid : tuple of int or None
        The spatial shape the statistics were taken over.
    centres : ndarray, shape ``(n_heads, D)``
        ``Δ_h`` (real), axis order (row offset first in 2-D); from the quadratic
        form of the positional score when it is one (``centre_source`` "quadratic"),
        else the mean offset ``Σ_k p_k (k − q)`` over queries and inputs ("centroid").
        NaN for a head without a bump (``α <= 0``).
    alphas : ndarray, shape ``(n_heads,)``
        Width ``α_h = λ_min(P_h)`` (Lemma 2's ``α`` for isotropic heads); NaN when
        the positional score is not quadratic.
    isotropic : ndarray of bool, shape ``(n_heads,)``
    nearest : ndarray of int, shape ``(n_heads, D)``
        The nearest integer offset (``round``, half to even: see ``ties``).
    grid_distance : ndarray, shape ``(n_heads,)``
        ``‖Δ_h − nearest_h‖`` in pixels.
    mass, mass_min : ndarray, shape ``(n_heads,)``
        Mean and smallest attention weight on ``q + nearest_h`` over the queries
        (and inputs) where it lies inside the grid.
    leak_bounds : ndarray, shape ``(n_heads,)``
        :func:`attn_expressivity.leak_bound` at ``α_h`` (NaN without ``α_h > 0``).
        For an integer centre, ``mass_min >= 1 − leak_bound``.
    mean_distance, entropy : ndarray, shape ``(n_heads,)``
        ``Σ_k p_k ‖k − q‖`` in pixels and ``−Σ_k p_k log p_k`` in nats, averaged.
    window_mass : ndarray or None
        Mean weight inside the window ``max_i |δ_i| <= window`` when one was asked for.
    ties : list of dict or None
        Per head, for positional heads whose largest weight is shared by several
        keys: ``n_keys``, ``offsets``, ``weights`` (each key's weight) at ``query``.
    content_dependent : bool
    n_inputs : int
        Inputs the statistics were averaged over (0: positional weights only).
    shift_set : dict or None
        From :func:`~attn_expressivity.analysis.nearest.shift_grid` on ``nearest``:
        ``kernel_size``, ``dilation``, ``kernel_index`` (head → raster kernel index),
        ``is_shift_set``, ``raster_order``, ``missing``, ``shared``.
    kernel, bias : ndarray or None
        The nearest convolution ``(*kernel_size, d_in, d_out)``, ``(d_out,)``.
    distance, relative_distance : float or None
        ``max |layer(x) − conv(x)|`` on the valid outputs of the given inputs.
    bound : float or None
        The a-priori bound on ``distance`` where it applies (``bound_reason`` says
        why not otherwise); ``holds`` is ``distance <= bound``.
    notes : list of str
    """

    kind: str
    n_heads: int
    ndim: int
    grid: tuple[int, ...] | None
    centres: np.ndarray
    alphas: np.ndarray
    isotropic: np.ndarray
    centre_source: list[str]
    nearest: np.ndarray
    grid_distance: np.ndarray
    mass: np.ndarray
    mass_min: np.ndarray
    leak_bounds: np.ndarray
    mean_distance: np.ndarray
    entropy: np.ndarray
    window_mass: np.ndarray | None
    ties: list[dict[str, Any] | None]
    content_dependent: bool
    n_inputs: int
    shift_set: dict[str, Any] | None = None
    kernel: np.ndarray | None = None
    bias: np.ndarray | None = None
    distance: float | None = None
    relative_distance: float | None = None
    bound: float | None = None
    bound_reason: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def holds(self) -> bool | None:
        """``distance <= bound`` (None where no bound applies)."""
        if self.bound is None or self.distance is None:
            return None
        return bool(self.distance <= self.bound)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-able data (NaN as None), the kernel left out."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("kernel", "bias")}
        out["holds"] = self.holds
        return _plain(out)

    def summary(self) -> str:
        """A table with one row per head and the layer's verdicts."""
        lines = [f"{self.kind}: {self.n_heads} heads, {self.ndim}-D, grid {self.grid}"
                 + (f", {self.n_inputs} inputs" if self.n_inputs else ""),
                 "head  centre              alpha     nearest   mass     leak bound  mean dist  entropy  tie"]
        for h in range(self.n_heads):
            centre = "(" + ", ".join(f"{c:+.3f}" for c in self.centres[h]) + ")"
            near = "(" + ", ".join(str(int(c)) for c in self.nearest[h]) + ")"
            tie = "-" if self.ties[h] is None else f"{self.ties[h]['n_keys']} keys"
            lines.append(f"{h:>4}  {centre:<18}  {self.alphas[h]:<8.4g}  {near:<8}  "
                         f"{self.mass[h]:<7.4f}  {self.leak_bounds[h]:<10.3e}  "
                         f"{self.mean_distance[h]:<9.3f}  {self.entropy[h]:<7.3f}  {tie}")
        if self.shift_set is not None:
            s = self.shift_set
            lines.append(f"shift set: kernel {s['kernel_size']}, dilation {s['dilation']}, "
                         f"one head per shift: {s['is_shift_set']}, raster order: {s['raster_order']}, "
                         f"head -> kernel index {s['kernel_index']}")
        if self.distance is not None:
            verdict = ("" if self.bound is None else
                       f" <= bound {self.bound:.3e}: {'PASS' if self.holds else 'FAIL'}")
            lines.append(f"nearest convolution: max |layer - conv| = {self.distance:.3e} "
                         f"(relative {self.relative_distance:.3e}){verdict}")
        if self.bound_reason:
            lines.append(f"no a-priori bound: {self.bound_reason}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)
