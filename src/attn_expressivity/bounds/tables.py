"""The per-axis weights a path computed, against the convolution's one-hot rows and the theory.

A Theorem 1 layer attends, for head ``h`` and query ``q``, to the target key
``t = q + Δ_h``; on the separable path the weights are ``⊗_i P̂_i`` (computed
one-dimensional softmax tables), on the dense path ``ŝ / Σ ŝ`` with
``ŝ = fl(Π_i E_i)`` (computed ``exp`` tables ``E_i``, each row's largest entry 1).
:func:`head_axes` rebuilds those tables (the same function, the same floats)
and gives, per axis, upper bounds in float64 on

* ``P_i``: the one-dimensional weights (``P̂_i``; ``E_i / z_i`` with ``z_i`` the
  row sum on the dense path, which is exactly how ``ŝ / Σ ŝ`` factorises up to
  the rounding of the products, ``ρ`` below);
* ``|P_i − T_i|``: the distance from the one-hot row ``T_i`` of the target, the
  off-target weights and ``|1 − P_i[t]|``, as a banded table and as row sums.

Because ``⊗P − ⊗T = Σ_i (⊗_{j<i} T_j) ⊗ (P_i − T_i) ⊗ (⊗_{j>i} P_j)`` (telescoping)
and all factors are non-negative,
``|⊗P − ⊗T| <= Σ_i (⊗_{j<i} T_j) ⊗ |P_i − T_i| ⊗ (⊗_{j>i} P_j)`` entry by entry:
the leak of a head is a sum of ``D`` separable contractions. On the dense path
``ŝ_k <= (1 + u)^{D−1} Π_i E_i(k) + (D − 1) η`` and
``Σ ŝ >= (1 − u)^{D−1} Π_i z_i − n (D − 1) η``, so its weights are within
``ρ = (1 + u)^{D−1} / ((1 − u)^{D−1} − n (D − 1) η)`` of ``⊗P`` plus
``n (D − 1) η`` per row (``Π z_i >= 1``).

:func:`table_issues` compares each computed table with the theory: the
off-target mass of a row may not exceed the one-dimensional leak of the head
as stored (:mod:`attn_expressivity.theorem.heads`), with the scores computed
in the layer's type (module docstring of :func:`axis_leak_bound`); a normalised
row must sum to 1 within the rounding of its normalisation
(:func:`softmax_row_rounding`) and its target weight fall short of 1 by no more
than the leak bound plus that rounding; an ``exp`` row must hold exactly 1 at a
target whose computed score is certainly the largest. A head whose tables fail
one of these does not attend as Lemma 2 says, so its leak cannot be charged to
the bound; the check names it.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ..attention.axes import AxisTable, axis_table, axis_table_blocks, band_width
from ..attention.softmax import exp_floor
from ..attention.traced import error_values
from ..errors import UnsupportedConfigurationError
from ..theorem.heads import charged_alpha, head_issues, intended_shifts, stored_heads
from .leak import leak_bound
from .rounding import EXP_ULPS, gamma, underflow_unit, unit_roundoff

__all__ = ["AxisStats", "HeadAxes", "HeadStats", "head_stats", "axis_leak_bound", "axis_stats", "head_axes", "softmax_row_rounding", "structural_issues",
           "table_issues", "theory_budgets"]

_U64 = 2.0**-53


class HeadAxes(NamedTuple):
    """One head's per-axis tables and their distance from the one-hot rows (float64 upper bounds)."""

    tables: list[AxisTable]        # the path's computed tables (P̂ or E), in the layer's type
    targets: list[np.ndarray]      # per axis, the target key of each query
    prob: list[AxisTable]          # per axis, upper bounds of P_i
    dev: list[AxisTable]           # per axis, upper bounds of |P_i − T_i|
    dev_mass: list[np.ndarray]     # per axis, row sums of dev
    rowsum: list[np.ndarray]       # per axis, row sums of prob
    off: list[np.ndarray]          # per axis, Σ_{k≠t} of the computed table, per row (upper)
    rho: float                     # dense path: the products' factor ρ (1 on the separable path)
    floor: float                   # dense path: n (D − 1) η per row (0 on the separable path)
    near: list[AxisTable]          # per axis, P_i to within a relative u (P̂ itself when separable)
    signed: list[AxisTable]        # per axis, P_i − T_i to within a relative u (signed)


def _dev_table(prob: np.ndarray, start: np.ndarray, targets: np.ndarray, size: int,
               target_dev: np.ndarray, width: int | None = None) -> tuple[AxisTable, np.ndarray]:
    """``|P − T|`` as a band wide enough for the target; ``target_dev`` is ``|1 − P[t]|`` per row.

    ``width`` is the band's width over every row (computed here when None).
    """
    m, w = prob.shape
    lo = np.minimum(start, targets)
    hi = np.maximum(start + w, targets + 1)
    width = int((hi - lo).max()) if width is None else width
    lo = np.minimum(lo, size - width)
    vals = np.zeros((m, width))
    rows = np.arange(m)[:, None]
    vals[rows, (start - lo)[:, None] + np.arange(w)[None, :]] = prob
    vals[np.arange(m), targets - lo] = target_dev
    return AxisTable(lo.astype(np.int64), vals, size, False, m), vals.sum(axis=1) * (1 + 2 * width * _U64)


def _float64_rows(table: AxisTable) -> tuple[np.ndarray, np.ndarray]:
    """``(values, start)`` of every row in float64 (a shared row repeated for each query)."""
    vals = table.values.astype(np.float64)
    if not table.shared:
        return vals, table.start
    return (np.broadcast_to(vals, (table.rows, vals.shape[1])),
            np.broadcast_to(table.start, (table.rows,)))


def _axis(table: AxisTable, targets: np.ndarray, normalised: bool, dev_width: int | None = None) -> tuple:
    """``(prob, dev, dev_mass, rowsum, off, near, signed)`` of one computed table (float64).

    ``prob``, ``dev`` and their sums are rounded up; ``near`` and ``signed`` are
    within a relative ``u`` of ``P_i`` and ``P_i − T_i`` entry by entry.
    """
    m = table.rows
    vals, start = _float64_rows(table)
    w = vals.shape[1]
    inside = (targets >= start) & (targets < start + w)
    col = np.clip(targets - start, 0, w - 1)
    at_t = np.where(inside, vals[np.arange(m), col], 0.0)
    is_t = (np.arange(w)[None, :] == col[:, None]) & inside[:, None]
    # Σ_{k≠t} summed directly (never as a difference with the target's weight), rounded up
    off = np.where(is_t, 0.0, vals).sum(axis=1) * (1 + 2 * w * _U64)
    total = vals.sum(axis=1)
    if normalised:                                                    # P̂ is the weight itself
        prob = vals
        target_dev = np.abs(1.0 - at_t) * (1 + _U64)
    else:                                                             # E / z, z = Σ_k E
        z_low = total * (1 - 2 * w * _U64)
        prob = vals / z_low[:, None] * (1 + _U64)
        target_dev = off / z_low * (1 + _U64)
    dev, dev_mass = _dev_table(np.where(is_t, 0.0, prob), start, targets, table.size, target_dev, dev_width)
    rowsum = prob.sum(axis=1) * (1 + 2 * w * _U64)
    prob_table = AxisTable(np.ascontiguousarray(start), np.ascontiguousarray(prob), table.size, False, m)
    near = vals if normalised else vals / total[:, None]
    near_table = AxisTable(np.ascontiguousarray(start), np.ascontiguousarray(near), table.size, False, m)
    target_signed = (at_t - 1.0) if normalised else -(np.where(is_t, 0.0, vals).sum(axis=1) / total)
    signed, _ = _dev_table(np.where(is_t, 0.0, near), start, targets, table.size, target_signed, dev_width)
    return prob_table, dev, dev_mass, rowsum, off, near_table, signed


class AxisStats(NamedTuple):
    """Row maxima of one axis' computed table (:func:`axis_stats`), all float64 upper bounds."""

    width: int            # the table's band width
    size: int             # keys along the axis
    rows: int             # queries
    off: float            # largest Σ_{k≠t} of the computed table, rounded up (0 without rows)
    dev_mass: float       # largest row sum of |P − T|, rounded up
    rowsum: float         # largest row sum of P, rounded up
    sums: tuple           # normalised: (largest |Σ_k P̂ − 1| − slack Σ, that row's Σ), else ()
    deficit: tuple        # normalised: (largest (1 − P̂[t]) (1 − 2u), that row's P̂[t]), else ()
    not_one: float | None  # exp tables: the first target entry that is not 1, else None
    rounding: tuple       # (σ, λ, w, top_one, z, o): the per-channel bound's factors (_rounding_block)


class HeadStats(NamedTuple):
    """One head's :class:`AxisStats` per axis (:func:`head_stats`), in place of :class:`HeadAxes`."""

    tables: list[AxisStats]
    rho: float
    floor: float


def _stats_block(table: AxisTable, targets: np.ndarray, normalised: bool, dev_width: int) -> dict:
    """:class:`AxisStats`' fields over one block of rows (the quantities of :func:`_axis`)."""
    _, _, dev_mass, rowsum, off, _, _ = _axis(table, targets, normalised, dev_width)
    return _softmax_rows({"off": off, "dev_mass": dev_mass, "rowsum": rowsum}, table, targets, normalised)


def _softmax_rows(out: dict, table: AxisTable, targets: np.ndarray, normalised: bool) -> dict:
    """Add to ``out`` what the softmax check reads of the rows: how far each row sum is from 1
    and each target short of 1 (normalised tables), or the target entries (``exp`` tables)."""
    sums, at_t = _rows(table, targets)
    if normalised:
        slack = gamma(table.width, _U64) * 2
        out["sums"] = (np.abs(sums - 1.0) - slack * sums, sums)
        out["deficit"] = ((1.0 - at_t) * (1 - 2 * _U64), at_t)
    else:
        out["not_one"] = at_t
    return out


def _shared_stats(table: AxisTable, targets: np.ndarray, normalised: bool, dev_width: int) -> dict:
    """:func:`_stats_block` for a shared row, from the row once and prefix sums (``O(m + w)``).

    The sums over ``k ≠ t`` are the prefix before ``t`` plus the suffix after it,
    non-negative terms summed one by one, rounded up by ``1 + 2(w + 2) u``; the
    other quantities do not depend on the target and are the row's own.
    """
    start = int(table.start[0])
    vals = table.values[0].astype(np.float64)
    w = vals.size
    col = targets - start
    inside = (col >= 0) & (col < w)
    c = np.clip(col, 0, w - 1)
    at_t = np.where(inside, vals[c], 0.0)
    up = 1 + 2 * (max(w, dev_width) + 2) * _U64

    def without_target(v: np.ndarray) -> np.ndarray:
        before = np.concatenate([[0.0], np.cumsum(v)])             # before[j] = Σ_{k<j}
        after = np.concatenate([np.cumsum(v[::-1])[::-1], [0.0]])   # after[j] = Σ_{k>=j}
        excl = (before[c] + after[np.minimum(c + 1, w)]) * up
        return np.where(inside, excl, float(v.sum()) * up)

    off = without_target(vals)
    total = float(vals.sum())
    if normalised:
        prob = vals
        target_dev = np.abs(1.0 - at_t) * (1 + _U64)
    else:
        z_low = total * (1 - 2 * w * _U64)
        prob = vals / z_low * (1 + _U64)
        target_dev = off / z_low * (1 + _U64)
    dev_mass = (without_target(prob) + target_dev) * up
    rowsum = np.full(1, float(prob.sum()) * (1 + 2 * w * _U64))
    out = {"off": off, "dev_mass": dev_mass, "rowsum": rowsum}
    sums = np.full(1, total)
    if normalised:
        slack = gamma(w, _U64) * 2
        out["sums"] = (np.abs(sums - 1.0) - slack * sums, sums)
        out["deficit"] = ((1.0 - at_t) * (1 - 2 * _U64), at_t)
    else:
        out["not_one"] = at_t
    return out


def axis_stats(a: float, b: float, size: int, queries: np.ndarray, targets: np.ndarray, dtype: np.dtype,
               beta: float, normalised: bool, budget: int) -> AxisStats:
    """The row maxima of one axis' computed table, its rows built and reduced in blocks within ``budget``.

    The same quantities as :func:`head_axes` computes for the table (``off``,
    ``dev_mass``, ``rowsum``, the row sums and target weights :func:`table_issues`
    checks) and the rounding factors of the per-channel bound, reduced to their
    maxima, without a ``(queries × width)`` array beyond one block
    (:func:`~attn_expressivity.attention.axes.axis_table_blocks`): banded rows
    give the values :func:`head_axes` gives; a shared row (``α = 0`` or ``β = 0``)
    is reduced once, its sums without the target from prefix sums.
    """
    def run():
        # a table that fits the budget is built in one piece, as head_axes builds it
        if queries.size * band_width(a, b, size, beta, dtype) * 128 <= budget:
            return iter([(0, queries.size, axis_table(a, b, size, queries, dtype, beta, normalise=normalised))])
        return axis_table_blocks(a, b, size, queries, dtype, beta, normalise=normalised, budget=budget)

    starts, nnz, width = [], 0, 0
    for _, _, table in run():                      # pass 1: the band's starts and widest row
        vals = table.values
        nnz = max(nnz, int((vals != 0).sum(axis=1).max()) if vals.size else 0)
        starts.append(np.broadcast_to(table.start, (table.rows,)) if table.shared else table.start)
        width = table.width
    start = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
    dev_width = int((np.maximum(start + width, targets + 1) - np.minimum(start, targets)).max()) if start.size else 0
    merged: dict[str, Any] = {}
    for lo, hi, table in run():                    # pass 2: the row quantities
        t = targets[lo:hi]
        part = (_shared_stats(table, t, normalised, dev_width) if table.shared
                else _stats_block(table, t, normalised, dev_width))
        part.update(_rounding_block(table, nnz, unit_roundoff(dtype), 2.0 if dtype == np.float16 else 1.0))
        _merge(merged, part)
    return AxisStats(width, size, int(queries.size), _top(merged.get("off")), _top(merged.get("dev_mass")),
                     _top(merged.get("rowsum")), merged.get("sums", ()), merged.get("deficit", ()),
                     merged.get("not_one"), merged.get("rounding", (0.0, 0.0, nnz, True, 0.0, 0.0)))


def _rounding_block(table: AxisTable, w: int, u: float, spread: float) -> dict:
    """``(σ, λ, w, top_one, z, o)`` of a block: the per-channel bound's factors of the table.

    ``σ`` the largest row sum of ``|P̂|``, ``λ`` of the smaller error table
    (:func:`~attn_expressivity.attention.traced.error_tables` with ``w`` the
    widest row of the whole table), ``top_one`` whether every row's largest
    entry is 1, ``z`` and ``o`` the largest row sum and row sum without its
    largest entry (dense path), each rounded up as the per-channel bound does.
    """
    vals = np.abs(table.values.astype(np.float64))
    if not vals.size:
        return {}
    j = np.argmax(vals, axis=1)
    rows = np.arange(vals.shape[0])
    lemma, standard = error_values(table.values, w, u, spread)
    sigma = float(vals.sum(axis=1).max()) * (1 + 2 * (w + 1) * _U64)
    lam = float(np.minimum(lemma.sum(axis=1), standard.sum(axis=1)).max()) * (1 + 2 * (w + 1) * _U64)
    wt = vals.shape[1]
    z = float(vals.sum(axis=1).max()) * (1 + 2 * wt * _U64)
    rest = vals.copy()
    rest[rows, j] = 0.0
    o = float(rest.sum(axis=1).max()) * (1 + 2 * wt * _U64)
    return {"rounding": (sigma, lam, w, bool(np.all(table.values.max(axis=1) == 1)), z, o)}


def _merge(acc: dict, part: dict) -> None:
    """Fold one block's row quantities into ``acc``: maxima, the first worst row, the first target not 1."""
    for key in ("off", "dev_mass", "rowsum"):
        if part[key].size:
            top = float(part[key].max())
            acc[key] = max(acc.get(key, top), top)
    for key in ("sums", "deficit"):
        if key in part and part[key][0].size:
            k = int(np.argmax(part[key][0]))
            cand = (float(part[key][0][k]), float(part[key][1][k]))
            if key not in acc or cand[0] > acc[key][0]:
                acc[key] = cand
    if "not_one" in part and acc.get("not_one") is None:
        bad = part["not_one"] != 1.0
        acc["not_one"] = float(part["not_one"][int(np.argmax(bad))]) if bad.any() else None
    if "rounding" in part:
        r = part["rounding"]
        if "rounding" not in acc:
            acc["rounding"] = r
        else:
            q = acc["rounding"]
            acc["rounding"] = (max(q[0], r[0]), max(q[1], r[1]), r[2], q[3] and r[3], max(q[4], r[4]),
                               max(q[5], r[5]))


def _top(value: float | None) -> float:
    return 0.0 if value is None else value


def _head_setup(layer: Any, spatial: tuple[int, ...], dtype: np.dtype, path: str) -> tuple:
    """What :func:`head_axes` and :func:`head_stats` share: the per-axis score coefficients
    ``a, b``, whether the tables are normalised, ``D``, ``n``, ``η``, the dense path's ``ρ``
    and the convolution's shift of each head. Raises for a layer whose scores do not split."""
    mhsa = layer.mhsa
    coef = None if mhsa.has_content_terms else mhsa.axis_coefficients()
    if coef is None:
        raise UnsupportedConfigurationError(
            f"no bound for this layer: {mhsa._not_separable_reason()}; the bound needs a layer "
            f"without content terms whose scores are sums of per-axis functions of the offset, "
            f"as conv_to_mhsa builds")
    a, b = coef
    normalised = path == "separable"
    D = len(spatial)
    n = math.prod(spatial)
    u, eta = unit_roundoff(dtype), underflow_unit(dtype)
    rho = 1.0 if normalised else (1 + u) ** (D - 1) / ((1 - u) ** (D - 1) - n * (D - 1) * eta)
    return a, b, normalised, D, n, eta, rho, intended_shifts(layer)


def head_axes(layer: Any, spatial: tuple[int, ...], queries: tuple[np.ndarray, ...], dtype: np.dtype,
              path: str) -> list[HeadAxes]:
    """Per head of a :class:`~attn_expressivity.ConvAttention`, its tables and their distance from one-hot.

    ``spatial`` is the padded image's shape and ``queries`` the kept query
    positions per axis; ``path`` is ``"separable"`` (normalised tables) or
    ``"dense"`` (``exp`` tables). Raises UnsupportedConfigurationError for a
    layer whose scores do not split over the axes.
    """
    mhsa = layer.mhsa
    a, b, normalised, D, n, eta, rho, shifts = _head_setup(layer, spatial, dtype, path)
    cache: dict[tuple, tuple] = {}
    out = []
    for h in range(mhsa.n_heads):
        parts = []
        targets = []
        for i in range(D):
            # the convolution's tap for this head: from the configuration, not layer.shifts
            t = queries[i] + int(shifts[h, i])
            if t.size and (t.min() < 0 or t.max() >= spatial[i]):  # pragma: no cover - crop keeps them in
                raise UnsupportedConfigurationError(
                    f"head {h}'s kernel tap lies outside the padded image on axis {i}")
            key = (i, float(a[h, i]), float(b[h, i]), int(shifts[h, i]))
            if key not in cache:
                table = axis_table(key[1], key[2], spatial[i], queries[i], dtype, mhsa.beta,
                                   normalise=normalised)
                cache[key] = (table,) + _axis(table, t, normalised)
            parts.append(cache[key])
            targets.append(t)
        out.append(HeadAxes([p[0] for p in parts], targets, [p[1] for p in parts], [p[2] for p in parts],
                            [p[3] for p in parts], [p[4] for p in parts], [p[5] for p in parts], rho,
                            0.0 if normalised else n * (D - 1) * eta,
                            [p[6] for p in parts], [p[7] for p in parts]))
    return out


def head_stats(layer: Any, spatial: tuple[int, ...], queries: tuple[np.ndarray, ...], dtype: np.dtype,
               path: str) -> list[HeadStats]:
    """:func:`head_axes` reduced to row maxima (:func:`axis_stats`), in blocks within the layer's ``memory_budget``."""
    mhsa = layer.mhsa
    a, b, normalised, D, n, eta, rho, shifts = _head_setup(layer, spatial, dtype, path)
    cache: dict[tuple, AxisStats] = {}
    out = []
    for h in range(mhsa.n_heads):
        parts = []
        for i in range(D):
            key = (i, float(a[h, i]), float(b[h, i]), int(shifts[h, i]))
            if key not in cache:
                # half the budget: a block's reduction holds about as many arrays again as its rows
                cache[key] = axis_stats(key[1], key[2], spatial[i], queries[i], queries[i] + key[3], dtype,
                                        mhsa.beta, normalised, mhsa.memory_budget // 2)
            parts.append(cache[key])
        out.append(HeadStats(parts, rho, 0.0 if normalised else n * (D - 1) * eta))
    return out


def _full_stats(ha: HeadAxes, i: int, normalised: bool) -> AxisStats:
    """:class:`AxisStats` of a :class:`HeadAxes`' axis ``i`` from its full arrays (``rounding`` unused)."""
    table, targets = ha.tables[i], ha.targets[i]
    acc: dict[str, Any] = {}
    if table.rows:
        part = {"off": ha.off[i], "dev_mass": ha.dev_mass[i], "rowsum": ha.rowsum[i]}
        _merge(acc, _softmax_rows(part, table, targets, normalised))
    return AxisStats(table.width, table.size, table.rows, _top(acc.get("off")), _top(acc.get("dev_mass")),
                     _top(acc.get("rowsum")), acc.get("sums", ()), acc.get("deficit", ()), acc.get("not_one"),
                     ())


def axis_leak_bound(alpha: float, offset: float, shift: float, dtype: np.dtype, normalised: bool,
                    width: int) -> float:
    """Upper bound on the off-target mass of one computed per-axis row of a Lemma 2 head.

    The head as stored scores ``f(δ) = −α δ² + b δ`` along the axis with centre
    ``μ = b / 2α = Δ + ε``; the path computes ``ĝ(δ) = fl(fl(a δ²) + fl(b δ))``,
    ``|ĝ − f| <= γ_3 (α δ² + |b δ|) <= γ_3 α (3 z² + 5 M²)`` for ``δ = Δ + z`` and
    ``M = max(|Δ|, |μ|)``, subtracts the row maximum ``m`` (one rounding), and
    takes ``exp`` (relative error at most ``EXP_ULPS · u``, checked on this
    platform by the test suite). With ``G = ĝ(Δ + z) − ĝ(Δ)`` and ``g_0 = m − ĝ(Δ) >= 0``
    the computed exponent of key ``Δ + z`` exceeds the target's by at most
    ``(1 − u) G + 2u g_0``, where ``G <= −α(1 − 3γ_3) z² + 2α|z||ε| + 8γ_3 α M²``
    and ``g_0 <= α ε² / (1 − 3γ_3) + 8γ_3 α M²``. With ``2|z||ε| <= |ε| z² + |ε|``
    that is ``−α(1 − τ) z² + α C``, ``τ = 3γ_3 + u + |ε|``,
    ``C = |ε| + 8γ_3 M² (1 + u) + 2u ε² / (1 − 3γ_3)``, so each off-target entry of
    an ``exp`` table is at most ``(1 + c u) e^{αC} e^{−α(1−τ) z²}`` and their sum at
    most ``(1 + c u) e^{αC} (θ₃(e^{−α(1−τ)}) − 1)``. A normalised row divides by
    a sum at least the target's entry, at least ``(1 − c u) (1 − γ_w)``, and
    rounds once more. ``θ₃ − 1 = L / (1 − L)`` with ``L`` the certified
    one-dimensional leak bound at ``α (1 − τ)``, rounded down.
    """
    if alpha <= 0:
        return math.inf
    u = unit_roundoff(dtype)
    c = EXP_ULPS * u
    g3 = gamma(3, u)
    big = max(abs(shift), abs(shift + offset))
    eps = abs(offset)
    tau = 3 * g3 + u + eps
    if tau >= 1:
        return math.inf
    big_c = eps + 8 * g3 * big * big * (1 + u) + 2 * u * eps * eps / (1 - 3 * g3)
    a_eff = math.nextafter(alpha * (1 - tau), 0.0) * (1 - 2 * _U64)
    growth = alpha * big_c * (1 + 4 * _U64)
    if growth > 700:
        return math.inf
    lk = leak_bound(a_eff, 1)
    if lk >= 1:
        return math.inf
    theta_minus_one = lk / (1 - lk) * (1 + 4 * _U64)
    bound = (1 + c) * math.exp(growth) * (1 + 4 * _U64) * theta_minus_one
    if normalised:
        bound *= (1 + u) / ((1 - c) * (1 - gamma(max(width, 1), u)))
    return bound * (1 + 8 * _U64)


def theory_budgets(layer: Any, heads: list[HeadAxes], stored: list, dtype: np.dtype,
                   path: str) -> list[list[float]]:
    """Per head and axis, :func:`axis_leak_bound` for the head as stored (0 for hard attention).

    A head whose stored ``α_h`` is not the layer's ``α`` is allowed the leak at the
    layer's ``α`` (:func:`attn_expressivity.theorem.heads.charged_alpha`).
    """
    hard = not math.isfinite(layer.mhsa.beta)
    shifts = intended_shifts(layer)
    out = []
    for h, (ha, head) in enumerate(zip(heads, stored)):
        exact = charged_alpha(layer, head)            # the layer's α for a head whose α_h is off
        alpha = float(exact)
        if alpha > exact:
            alpha = math.nextafter(alpha, 0.0)
        row = []
        for i, table in enumerate(ha.tables):
            if hard:
                row.append(0.0)
                continue
            e = float(abs(head.offset[i]))
            row.append(axis_leak_bound(alpha, math.nextafter(e, math.inf) if e else 0.0,
                                       float(shifts[h, i]), dtype, path == "separable", table.width))
        out.append(row)
    return out


def softmax_row_rounding(keys: int, dtype: np.dtype) -> float:
    """``ν``: how far from 1 the computed weights of one normalised row may sum (``keys`` per row at most).

    A row is ``P̂_k = fl(e_k / ẑ)`` with ``ẑ = fl(Σ_k e_k)`` over at most ``n = keys``
    non-zero entries (any order: ``ẑ = (1 + θ) Σ e``, ``|θ| <= γ_{n−1}``), and a weight
    below the smallest normal number ``tiny`` set to 0. A kept weight is
    ``(e_k / ẑ)(1 + δ_k)``, ``|δ_k| <= u`` (its quotient is in the normal range); a
    flushed one loses less than ``2 tiny``. So
    ``|Σ_k P̂_k − 1| <= |1/(1 + θ) − 1| + u/(1 + θ) + 2 n tiny
    <= (γ_{n−1} + u) / (1 − γ_{n−1}) + 2 n tiny``, returned rounded up (``inf`` when
    ``γ_{n−1}`` does not exist or is at least 1: no bound, nothing to check).

    Examples
    --------
    >>> 0 < softmax_row_rounding(9, np.dtype(np.float64)) < 1e-15
    True
    >>> softmax_row_rounding(2000, np.dtype(np.float16))
    inf
    """
    u = unit_roundoff(dtype)
    m = max(keys - 1, 0)
    if m * u >= 0.5:                                  # γ_m >= 1: the row sum is not bounded
        return math.inf
    g = gamma(m, u)
    tiny = float(np.finfo(dtype).tiny)
    return ((g + u) / (1 - g) + 2 * keys * tiny) * (1 + 8 * _U64)


def _summands(table: AxisTable, dtype: np.dtype) -> int:
    """At most how many non-zero entries a row's normalisation summed.

    Every summand ``e_k <= 1`` and ``ẑ <= size (1 + γ)``, so a weight is flushed
    after the division only when ``e_k < 2 size tiny``; the entries kept are those
    of the band (``width``), and when ``exp(floor) >= 2 size tiny`` (float64 and
    float32 at any size this package handles) no summand can have been flushed.
    Otherwise the whole axis counts.
    """
    tiny = float(np.finfo(dtype).tiny)
    if math.exp(exp_floor(dtype)) >= 2 * table.size * tiny * 2:
        return table.width
    return table.size


def _rows(table: AxisTable, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Σ_k of each row, the target's entry of each row)`` of a computed table, in float64."""
    m = table.rows
    vals, start = _float64_rows(table)
    w = vals.shape[1]
    col = targets - start
    inside = (col >= 0) & (col < w)
    at_t = np.where(inside, vals[np.arange(m), np.clip(col, 0, w - 1)], 0.0)
    return vals.sum(axis=1), at_t


def _target_on_top(head: Any, i: int, shift: int, dtype: np.dtype) -> bool:
    """Whether the computed score of the target is certainly its row's largest (so ``E_t = exp(0) = 1``).

    With ``G = ĝ(Δ + z) − ĝ(Δ) <= −α(1 − 3γ_3) z² + 2α|z||ε| + 8γ_3 α M²``
    (:func:`axis_leak_bound`), ``G < 0`` for every ``z ≠ 0`` when
    ``3γ_3 + 2|ε| + 8γ_3 M² < 1``; with ``α = 0`` every score is 0.
    """
    u = unit_roundoff(dtype)
    g3 = gamma(3, u)
    eps = abs(float(head.offset[i]))
    big = max(abs(shift), abs(shift + eps))
    return head.alpha >= 0 and 3 * g3 + 2 * eps + 8 * g3 * big * big < 1 - 4 * u


def _row_problem(st: AxisStats, i: int, allowed: float, normalised: bool, on_top: bool,
                 dtype: np.dtype) -> str | None:
    """Why one computed table (its :class:`AxisStats`) is not a softmax of a Lemma 2 head up to its rounding."""
    if not st.rows:
        return None
    if normalised:
        nu = softmax_row_rounding(_summands(st, dtype), dtype)
        if st.sums[0] > nu:
            return (f"its weights along axis {i} sum to {st.sums[1]:.17g}, "
                    f"not to 1 within the rounding of the normalisation ({nu:.3e})")
        if math.isfinite(allowed) and st.deficit[0] > allowed + nu:
            return (f"its target weight along axis {i} is {st.deficit[1]:.17g}, "
                    f"short of 1 by more than the leak bound {allowed:.3e} plus the rounding {nu:.3e}")
    elif on_top and st.not_one is not None:
        return (f"its exp table along axis {i} has {st.not_one:.17g} at "
                f"the target, whose score is its row's largest, so exactly 1")
    return None


def table_issues(layer: Any, heads: list[HeadAxes], stored: list, dtype: np.dtype,
                 path: str) -> list[dict[str, Any]]:
    """Heads whose computed tables are not the softmax of a Lemma 2 head up to their rounding.

    ``stored`` is :func:`attn_expressivity.theorem.heads.stored_heads`'s list. Per
    axis and row:

    * the off-target mass may not exceed :func:`axis_leak_bound` (hard attention,
      ``β = ∞``: 0), compared with the computed mass lowered by its own rounding;
    * a normalised row (separable path) must sum to 1 within
      :func:`softmax_row_rounding` ``ν``, and its target weight fall short of 1 by
      at most the leak bound plus ``ν`` (a scaled row or target weight is a
      normalisation bug the signed leak term would otherwise absorb);
    * an ``exp`` row (dense path) must hold exactly 1 at the target whenever the
      target's computed score is certainly the row's largest (:func:`_target_on_top`).

    Only a certain excess is reported.
    """
    issues = []
    budgets = theory_budgets(layer, heads, stored, dtype, path)
    shifts = intended_shifts(layer)
    normalised = path == "separable"
    for h, (ha, head) in enumerate(zip(heads, stored)):
        for i in range(len(ha.tables)):
            st = ha.tables[i] if isinstance(ha, HeadStats) else _full_stats(ha, i, normalised)
            measured = st.off * (1 - 4 * st.width * _U64) if st.rows else 0.0
            allowed = budgets[h][i]
            reason = None
            if measured > allowed:
                reason = (f"its weights along axis {i} put {measured:.3e} off the target, more than "
                          f"the leak bound {allowed:.3e} of its stored alpha {float(head.alpha):.6g}")
            else:
                reason = _row_problem(st, i, allowed, normalised,
                                      _target_on_top(head, i, int(shifts[h, i]), dtype), dtype)
            if reason is not None:
                issues.append({"head": h, "shift": [int(s) for s in shifts[h]], "axis": i,
                               "reason": reason})
                break
    return issues


def structural_issues(layer: Any, heads: list[HeadAxes], dtype: np.dtype,
                      path: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(head_issues, table_issues)``: heads that are not Lemma 2's, tables that leak too much."""
    issues = head_issues(layer)
    stored = stored_heads(layer)
    leaks = [] if issues or stored is None else table_issues(layer, heads, stored, dtype, path)
    return issues, leaks
