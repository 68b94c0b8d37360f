"""The convolution nearest to an attention layer: Lemma 1 read backwards.

Round every head's centre to its nearest integer offset ``t_h``. When those
offsets are the shift set of a kernel size ``K`` and dilation ``d`` (the
project's convention, :func:`attn_expressivity.shift_set`), one head per shift,
the layer is Theorem 1's construction up to the widths: its nearest convolution
has the kernel slices ``W_{t_h} = W_val^(h) W_out^(h)`` and, as ``α → ∞`` with
integer centres, the layer *is* that convolution on the queries whose targets
lie inside the image. More generally, the offsets are placed in the smallest
shift set (per axis the smallest ``K``, then the smallest ``d``) that contains
them, the slices of heads that share an offset add up, and slices of offsets no
head reaches are zero.

On an input, the distance between the layer and that convolution is measured on
the queries ``p = o + ⌊d(K − 1)/2⌋`` of the "valid" outputs ``o`` (every target
inside the image). For a package layer with integer centres, isotropic widths,
one head per shift, no content terms and ``β = 1``, the a-priori bound of
:func:`attn_expressivity.bounds.error.error_bound` applies, each head at the
``α_h`` and centre its weights store; a centre may differ from its integer shift
by the rounding of the storage and no more
(:func:`attn_expressivity.theorem.heads.head_issues`). Otherwise the report says
why not.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..bounds.error import error_bound
from ..convolution.config import make_config
from ..convolution.reference import conv
from ..convolution.shifts import axis_shifts, left_offsets, shift_set
from ..theorem.construction import ConvAttention
from ..theorem.heads import head_issues
from .readers import Reading

__all__ = ["apriori_bound", "layer_distance", "nearest_convolution", "shift_grid"]


def _axis_grid(values: np.ndarray) -> tuple[int, int]:
    """The smallest ``(K, d)`` (smallest ``K``, then ``d``) whose axis shifts contain ``values``."""
    vals = set(int(v) for v in values)
    span = max(vals) - min(vals)
    reach = max(abs(v) for v in vals)
    for k in range(1, 2 * reach + 2):
        for d in range(1, max(1, span) + 1):
            if vals <= set(axis_shifts(k, d).tolist()):
                return k, d
    raise AssertionError("unreachable: K = 2·max|v| + 1, d = 1 contains every value")  # pragma: no cover


def shift_grid(offsets: np.ndarray) -> dict[str, Any]:
    """The shift set that holds integer head offsets, and which head is which shift.

    Parameters
    ----------
    offsets : ndarray of int, shape ``(n_heads, D)``

    Returns
    -------
    dict
        ``kernel_size``, ``dilation`` (per axis), ``kernel_index`` (per head, the
        raster index of its offset in ``shift_set(kernel_size, dilation=...)``),
        ``is_shift_set`` (one head per shift, every shift reached),
        ``raster_order`` (head ``h`` is kernel index ``h``), ``missing`` (shifts
        no head reaches) and ``shared`` (offsets reached by several heads).

    Examples
    --------
    >>> g = shift_grid(np.array([[0, 2], [0, -2], [2, 0], [-2, 0], [0, 0], [2, 2], [-2, -2], [2, -2], [-2, 2]]))
    >>> g["kernel_size"], g["dilation"], g["is_shift_set"], g["raster_order"]
    ([3, 3], [2, 2], True, False)
    >>> g["kernel_index"][:3]
    [5, 3, 7]
    """
    off = np.asarray(offsets, dtype=np.int64)
    axes = [_axis_grid(off[:, i]) for i in range(off.shape[1])]
    ks, ds = [k for k, _ in axes], [d for _, d in axes]
    shifts = shift_set(tuple(ks), dilation=tuple(ds))
    lookup = {tuple(s): i for i, s in enumerate(shifts.tolist())}
    index = [lookup[tuple(o)] for o in off.tolist()]
    counts = np.bincount(index, minlength=len(shifts))
    return {
        "kernel_size": ks, "dilation": ds, "kernel_index": index,
        "is_shift_set": bool(len(index) == len(shifts) and (counts == 1).all()),
        "raster_order": index == list(range(len(shifts))),
        "missing": shifts[counts == 0].tolist(), "shared": shifts[counts > 1].tolist(),
    }


def nearest_convolution(reading: Reading, grid_info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(kernel, bias)``: kernel ``(*kernel_size, d_in, d_out)`` with ``W_t = Σ_{h: t_h = t} W_val^(h) W_out^(h)``."""
    maps = reading.head_maps()                                              # (H, d_in, d_out)
    ks = tuple(grid_info["kernel_size"])
    flat = np.zeros((math.prod(ks),) + maps.shape[1:])
    np.add.at(flat, np.array(grid_info["kernel_index"]), maps)
    return flat.reshape(ks + maps.shape[1:]), reading.bias()


def _crop(spatial: tuple[int, ...], ks: tuple[int, ...], ds: tuple[int, ...]) -> tuple[slice, ...] | None:
    lefts = left_offsets(ks, ds)
    counts = [s - d * (k - 1) for s, k, d in zip(spatial, ks, ds)]
    if min(counts) < 1:
        return None
    return tuple(slice(c, c + m) for c, m in zip(lefts, counts))


def layer_distance(reading: Reading, kernel: np.ndarray, bias: np.ndarray, dilation: list[int],
                   x: np.ndarray) -> dict[str, Any]:
    """``max |layer(x) − conv(x)|`` over the valid outputs, and relative to ``max |conv(x)|``."""
    nd = reading.ndim
    spatial = x.shape[x.ndim - nd - 1:-1]
    window = _crop(spatial, kernel.shape[:nd], tuple(dilation))
    if window is None:
        return {"distance": None, "relative_distance": None,
                "reason": f"the image {spatial} is smaller than the kernel's reach"}
    y = reading.forward(x)[(Ellipsis,) + window + (slice(None),)]
    ref = conv(x.astype(np.float64), kernel, bias, padding="valid", dilation=tuple(dilation))
    dist = float(np.abs(y - ref).max())
    top = float(np.abs(ref).max())
    return {"distance": dist, "relative_distance": dist / top if top > 0 else math.inf, "reason": None}


def apriori_bound(reading: Reading, grid_info: dict[str, Any], kernel: np.ndarray,
                  bias: np.ndarray, x: np.ndarray) -> tuple[float | None, str | None]:
    """The a-priori bound on the distance, or None and the reason it does not apply."""
    mhsa = reading.mhsa
    if mhsa is None:
        return None, "the a-priori bound covers the package's own execution paths only"
    if reading.content is not None:
        return None, "the layer has content terms; the bound covers positional heads"
    if not (isinstance(mhsa.encoding, str) and mhsa.encoding == "quadratic"):
        return None, "the bound is derived for the quadratic encoding"
    if mhsa.beta not in (1.0, math.inf):
        return None, f"the bound is derived for beta = 1 (or inf), got {mhsa.beta!r}"
    if not grid_info["is_shift_set"]:
        return None, "the nearest integer offsets are not one head per shift of a shift set"
    cfg = make_config(kernel.shape, padding=0, dilation=tuple(grid_info["dilation"]))
    shifts = shift_set(tuple(grid_info["kernel_size"]), dilation=tuple(grid_info["dilation"]))
    idx = np.array(grid_info["kernel_index"])
    ranks = np.array([np.linalg.matrix_rank(m) for m in reading.head_maps()])
    stored = [float(a) for a in reading.forms.P[:, 0, 0]]       # α_h as stored (c_0 read in float64, exact)
    if min(stored) <= 0:
        return None, f"head {int(np.argmin(stored))} is not a bump (alpha <= 0)"
    # The layer's own α as stored: error_bound reads the stored head vectors. Heads of
    # several widths declare no single α (None), so each head is charged its own.
    if mhsa.beta == math.inf:
        alpha = math.inf
    else:
        alpha = stored[0] if len(set(stored)) == 1 else None
    layer = ConvAttention(mhsa, cfg, alpha, shifts[idx], ranks, kernel, bias, None, idx)
    issues = head_issues(layer)                # centre within the rounding of the storage of its shift
    if issues:
        return None, (f"head {issues[0]['head']} is not an isotropic bump on an integer offset: "
                      f"{issues[0]['reason']} (the leak bound needs an integer centre)")
    report = error_bound(layer, x.astype(np.float64) if x.dtype != mhsa.w_val.dtype else x)
    if report["factorisation_excess"]:
        return None, "the value/output blocks do not reproduce the nearest kernel's slices"
    if report["table_issues"]:
        return None, f"head {report['table_issues'][0]['head']}: {report['table_issues'][0]['reason']}"
    return float(report["bound"]), None
