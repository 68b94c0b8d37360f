"""The separable path: ``D`` successive banded one-dimensional attentions per head.

For a head whose score is ``Σ_i f_i(k_i − q_i)`` and a rectangular key set
``K = K_1 × … × K_D`` (the whole, possibly padded, image),

.. math::
    \\mathrm{softmax}_k(\\beta A_{q,k})
      = \\frac{\\prod_i e^{\\beta f_i(k_i - q_i)}}
             {\\sum_{k' \\in K} \\prod_i e^{\\beta f_i(k'_i - q_i)}}
      = \\prod_i \\frac{e^{\\beta f_i(k_i - q_i)}}{\\sum_{k'_i \\in K_i} e^{\\beta f_i(k'_i - q_i)}}
      = \\prod_i P^{(i)}_{q_i, k_i},

because a sum over a product set of a product of per-axis factors is the
product of the per-axis sums. So the attention matrix is the Kronecker product
``P^(1) ⊗ … ⊗ P^(D)`` of ``D`` one-dimensional softmax matrices, and a head is
applied as ``D`` successive one-dimensional attentions, one contraction per
axis. For ``β = ∞`` the argmax set of ``Σ_i f_i`` over a product set is the
product of the per-axis argmax sets, and the uniform distribution on a product
is the product of the uniform distributions, so the identity holds in the limit
too. Each ``P^(i)`` subtracts its own row maximum before ``exp`` (any per-query
constant leaves a softmax unchanged).

**Implementation.** Only the requested queries are computed (the cropped,
strided window of a convolution), and each ``P^(i)`` is a banded table
(:mod:`~attn_expressivity.attention.axes`): a row has ``w`` non-zero keys (3 at
``α = 37`` in float64), so a contraction costs ``O(m w)`` per column instead of
``O(m L)``. The channel map ``W^(h) = W_val^(h) W_out^(h)`` acts on the last
axis and the ``P^(i)`` on spatial axes, so they commute; heads that share the
factor of axis 0 share the first contraction (``K`` of them for ``K^D`` heads),
the channel products turn them into one array per group of heads sharing the
factors of the other axes, and those are contracted along axes ``1 … D−1``,
groups with equal factors merged after each axis. Axis 0 is contracted first
because its queries split the work into independent slabs with no halo: a slab
of axis-0 queries reads the keys its band needs and everything after touches
only its own rows, so the slabs fit the memory budget and run on separate
threads (:mod:`~attn_expressivity._threads`); the images of a batch run one
after another through a slab, whose axis-0 tables are built once, so the
scratch and the per-image time do not grow with the batch. On a large problem the
channel products are one product per slab: the ``z``'s side by side (inner
length ``F_0 · d_in``) times every group's maps (``G · d_out`` columns),
instead of ``F_0 G`` thin ones. A stride along axis 0 leaves that many fewer
rows; along the other axes the band of each kept query still reaches every
key, so the channel products there run on all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._threads import map_workers, worker_count
from .axes import AxisTable, axis_table, band_width
from .bands import contract
from .weights import AttentionWeights, ChannelMap

__all__ = ["MERGE_WORK", "SeparablePlan", "attend_separable", "plan_separable"]

Factor = tuple[float, float]

#: Channel-stage multiply-adds above which a group's products are merged into one.
MERGE_WORK = 2**25


@dataclass
class SeparablePlan:
    """What :func:`attend_separable` computes: factors, groups, tables, maps and slabs."""

    spatial: tuple[int, ...]                 # L_i, keys per axis
    queries: tuple[np.ndarray, ...]          # query positions per axis
    dtype: np.dtype
    beta: float
    keys: list[list[Factor]]                 # (H, D) per-axis factor of each head
    first: list[Factor]                      # distinct axis-0 factors, in order
    groups: dict[tuple[Factor, ...], list[int]]   # factors of axes 1.. -> heads
    tables: dict[tuple[int, Factor], AxisTable]   # axes >= 1, all queries
    maps: list[ChannelMap]
    merged: bool
    slab: int                                # axis-0 queries per slab
    workers: int
    big: np.ndarray | None = None            # merged: (F_0 d_in, G d_out), every group's maps
    order: list[tuple[Factor, ...]] = field(default_factory=list)   # the groups, in big's order

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(len(q) for q in self.queries)


def plan_separable(layer: AttentionWeights, spatial: tuple[int, ...], queries: tuple[np.ndarray, ...],
                   dtype: np.dtype, batch: int, *, merge: bool | None = None) -> SeparablePlan:
    """Group the heads by their per-axis factors, build the tables of axes ``1 … D−1``, size the slabs.

    Slabs of axis-0 queries are sized so that one slab's scratch (the ``z``
    arrays of the first contraction, the group arrays of the channel stage,
    the band rows of axis 0) fits :attr:`memory_budget` divided among the
    worker threads; ``merge`` forces the merged channel products on or off.
    """
    a, b = layer.axis_coefficients()
    H, D = layer.n_heads, len(spatial)
    keys = [[(float(a[h, i]), float(b[h, i])) for i in range(D)] for h in range(H)]
    first = list(dict.fromkeys(k[0] for k in keys))
    groups: dict[tuple[Factor, ...], list[int]] = {}
    for h in range(H):
        groups.setdefault(tuple(keys[h][1:]), []).append(h)
    tables = {(i, k[i]): None for k in keys for i in range(1, D)}
    for (i, key) in tables:
        tables[(i, key)] = axis_table(*key, spatial[i], queries[i], dtype, layer.beta)
    item = np.dtype(dtype).itemsize
    rest = math.prod(spatial[1:])
    m0 = len(queries[0])
    rows = batch * m0 * rest
    maps = layer.channel_maps(rows, dtype)
    work = rows * H * layer.d_in * layer.d_out
    merged = (work > MERGE_WORK) if merge is None else merge
    merged = merged and all(cm.matrix is not None for cm in maps) and len(first) > 1
    w0 = max(band_width(*key, spatial[0], layer.beta, dtype) for key in first)
    # a slab is one image's rows at a time (the images of a batch run in turn through the
    # same slab, its axis-0 tables built once), so the scratch does not grow with the batch;
    # building a band row holds about six arrays of its width (offsets, scores, exp, the
    # normalised weights and temporaries), which matters when the band is the whole axis
    per_row = item * (rest * (len(first) * layer.d_in * (2 if merged else 1)
                              + (len(groups) + 2) * layer.d_out) + len(first) * w0 * 6)
    workers = max(1, min(worker_count(), m0))
    slab = max(1, min(m0, layer.memory_budget // (workers * per_row)))
    if workers > 1 and m0 // slab < workers:           # at least one slab per worker
        slab = max(1, -(-m0 // workers))
    plan = SeparablePlan(tuple(spatial), queries, np.dtype(dtype), layer.beta, keys, first, groups,
                         tables, maps, merged, slab, workers)
    if merged:                                          # built once, before any thread starts
        plan.order = list(groups)
        plan.big = np.concatenate([_merged_block(layer, plan, groups[g]) for g in plan.order], axis=1)
    return plan


def attend_separable(layer: AttentionWeights, x: np.ndarray, queries: tuple[np.ndarray, ...],
                     dtype: np.dtype, plan: SeparablePlan | None = None) -> np.ndarray:
    """``x`` of shape ``(B, *spatial, d_in)``; returns ``(B, *out_shape, d_out)`` (module docstring).

    ``queries`` holds the query positions along each axis; the output is the
    attention of their product set, in raster order.
    """
    B, spatial = x.shape[0], x.shape[1:-1]
    if plan is None:
        plan = plan_separable(layer, spatial, queries, dtype, B)
    m0 = len(plan.queries[0])
    out = np.empty((B,) + plan.out_shape + (layer.d_out,), dtype=dtype)
    slabs = [range(s, min(m0, s + plan.slab)) for s in range(0, m0, plan.slab)]

    def run(rows: range) -> None:
        q0 = plan.queries[0][rows.start:rows.stop]
        tables = {key: axis_table(*key, plan.spatial[0], q0, plan.dtype, plan.beta) for key in plan.first}
        for b in range(B):                       # one image at a time: its scratch stays in cache
            out[b, rows.start:rows.stop] = _slab(layer, plan, x[b:b + 1], tables)[0]

    map_workers(run, slabs, plan.workers)
    out += layer.b_out.astype(dtype, copy=False)
    return out


def _slab(layer: AttentionWeights, plan: SeparablePlan, x: np.ndarray,
          tables: dict[Factor, AxisTable]) -> np.ndarray:
    """The output of the axis-0 queries of ``tables``: shape ``(B, rows, *out_shape[1:], d_out)``."""
    B, D = x.shape[0], len(plan.spatial)
    d_in = layer.d_in
    lanes = math.prod(plan.spatial[1:]) * d_in
    flat = x.reshape(B, plan.spatial[0], lanes)
    ms = next(iter(tables.values())).rows
    # stage 1: axis 0 on the input, once per distinct axis-0 factor        (B, ms, L_1.., d_in)
    rows = B * ms * lanes // d_in
    if plan.merged:            # written side by side, as the one channel product reads them
        stacked = np.empty((B, ms, lanes // d_in, len(plan.first), d_in), dtype=plan.dtype)
        for j, key in enumerate(plan.first):
            contract(flat, tables[key], out=stacked[:, :, :, j, :])
        zs = {None: stacked.reshape(rows, len(plan.first) * d_in)}
    else:
        zs = {key: contract(flat, tables[key]).reshape((rows, d_in)) for key in plan.first}
    # stage 2: channel products, one array per group of heads sharing axes 1.. factors
    partial = _channels(layer, plan, zs)
    shape = (B, ms) + plan.spatial[1:] + (layer.d_out,)
    partial = {k: v.reshape(shape) for k, v in partial.items()}
    # stage 3: axes 1 … D−1, merging groups whose remaining factors agree
    for i in range(1, D):
        merged: dict[tuple[Factor, ...], np.ndarray] = {}
        for key, arr in partial.items():
            table = plan.tables[(i, key[0])]
            pre = math.prod(arr.shape[:i + 1])
            post = math.prod(arr.shape[i + 2:])
            src = arr.reshape(pre, arr.shape[i + 1], post)
            rest = key[1:]
            if rest in merged:                   # accumulated in place, no temporary
                contract(src, table, out=merged[rest].reshape(pre, table.rows, post), add=True)
            else:
                y = contract(src, table)
                merged[rest] = y.reshape(arr.shape[:i + 1] + (table.rows,) + arr.shape[i + 2:])
        partial = merged
    return partial[()]


def _channels(layer: AttentionWeights, plan: SeparablePlan,
              zs: dict) -> dict[tuple[Factor, ...], np.ndarray]:
    """``y_g = Σ_{h ∈ g} z_{f_0(h)} W^(h)`` for every group ``g``; each ``(rows, d_out)``.

    Merged, ``zs[None]`` holds the ``z``'s side by side, ``(rows, F_0 d_in)``.
    """
    out: dict[tuple[Factor, ...], np.ndarray] = {}
    if plan.merged:
        # one product for every group: (rows, F_0 d_in) @ (F_0 d_in, G d_out); each group's
        # columns are a strided view, which the contractions read in place
        stacked = zs[None]
        y = (stacked @ plan.big).reshape(stacked.shape[0], len(plan.order), layer.d_out)
        return {g: y[:, j, :] for j, g in enumerate(plan.order)}
    for g, heads in plan.groups.items():
        acc = None
        for h in heads:
            y = apply_channel(plan.maps[h], zs[plan.keys[h][0]])
            acc = y if acc is None else acc.__iadd__(y)
        out[g] = acc
    return out


def apply_channel(cm: ChannelMap, z: np.ndarray) -> np.ndarray:
    """``z W_val W_out`` as the :class:`ChannelMap` says."""
    if cm.matrix is not None:
        return z @ cm.matrix
    return (z @ cm.factors[0]) @ cm.factors[1]


def _merged_block(layer: AttentionWeights, plan: SeparablePlan, heads: list[int]) -> np.ndarray:
    """``(F_0 d_in, d_out)``: the maps of a group's heads stacked by axis-0 factor (zeros elsewhere)."""
    d_in = layer.d_in
    block = np.zeros((len(plan.first) * d_in, layer.d_out), dtype=plan.dtype)
    index = {k: j for j, k in enumerate(plan.first)}
    for h in heads:
        j = index[plan.keys[h][0]]
        block[j * d_in:(j + 1) * d_in] += plan.maps[h].matrix
    return block
