"""``analyse_attention``: read any supported attention layer and say how convolutional it is."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import as_float_array, as_int
from ..attention.layer import DEFAULT_MEMORY_BUDGET, MultiHeadSelfAttention
from ..bounds.leak import leak_bound
from ..errors import ParameterTypeError, ParameterValueError, ShapeError
from ..theorem.construction import ConvAttention
from .forms import read_forms
from .nearest import apriori_bound, layer_distance, nearest_convolution, shift_grid
from .readers import (
    Reading,
    _grid,
    read_coefficients,
    read_mhsa,
    read_torch_multihead,
)
from .report import AttentionReport
from .statistics import attention_maps, head_statistics

__all__ = ["analyse_attention", "attention_maps_of", "read_layer"]


def _is_torch_multihead(layer: object) -> bool:
    mod = type(layer).__module__ or ""
    if not mod.startswith("torch"):
        return False
    import torch

    return isinstance(layer, torch.nn.MultiheadAttention)


def _grid_of_tokens(x: object, mask: object) -> tuple[int, ...] | None:
    """The trailing spatial axes of ``x`` that hold the mask's tokens (the fewest that do)."""
    shape, n = np.shape(x), np.shape(mask)[-1] if np.ndim(mask) else 0
    for k in range(1, len(shape)):
        if math.prod(shape[-1 - k:-1]) == n:
            return tuple(shape[-1 - k:-1])
    return None


def read_layer(layer: object, *, mask: object = None, grid: object = None,
               components: Sequence[str] | None = None, ndim: int | None = None,
               x: object = None) -> Reading:
    """The :class:`~attn_expressivity.analysis.readers.Reading` of any supported layer.

    See :func:`analyse_attention` for the accepted layers and arguments (``x``
    gives the grid of a mask's tokens when ``grid`` does not).
    """
    if mask is not None and not _is_torch_multihead(layer):
        raise ParameterValueError("`mask` goes with a torch.nn.MultiheadAttention only")
    if isinstance(layer, ConvAttention):
        reading = read_mhsa(layer.mhsa, kind="conv_attention")
    elif isinstance(layer, MultiHeadSelfAttention):
        reading = read_mhsa(layer)
    elif hasattr(layer, "as_attention") and callable(layer.as_attention):
        mhsa = layer.as_attention()
        if not isinstance(mhsa, MultiHeadSelfAttention):
            raise ParameterTypeError(
                f"`layer.as_attention()` must return a MultiHeadSelfAttention, got {type(mhsa).__name__}"
            )
        reading = read_mhsa(mhsa, kind="learned")
    elif _is_torch_multihead(layer):
        if mask is None:
            raise ParameterValueError(
                "a torch.nn.MultiheadAttention is read with its additive positional `mask` "
                "(shape (n, n) or (n_heads, n, n) over the n tokens of the grid)"
            )
        if grid is None and x is not None:
            grid = _grid_of_tokens(x, mask)
        reading = read_torch_multihead(layer, mask, grid)
    elif isinstance(layer, (np.ndarray, list, tuple)):
        reading = read_coefficients(layer, components, ndim)
    else:
        raise ParameterTypeError(
            "`layer` must be a MultiHeadSelfAttention, a ConvAttention, positional coefficients "
            "(n_heads, n_components), a torch.nn.MultiheadAttention with a mask, or a layer with "
            f"an as_attention() method, got {type(layer).__name__}"
        )
    if components is not None and reading.kind != "coefficients":
        raise ParameterValueError("`components` names the columns of a coefficient array only")
    return reading


def _inputs(reading: Reading, x: object, grid: object) -> tuple[tuple[int, ...], np.ndarray | None]:
    """The grid and the inputs as tokens ``(n_inputs, n, d_in)``."""
    if x is None:
        if reading.grid is not None:
            g = reading.grid if grid is None else _grid(grid)
        elif grid is None:
            raise ParameterValueError(
                "the statistics need a grid: pass `grid` (the spatial shape) or inputs `x`"
            )
        else:
            g = _grid(grid)
        if len(g) != reading.ndim:
            raise ShapeError(f"`grid` must have {reading.ndim} axes (the layer's), got {g}")
        return g, None
    arr = as_float_array(x, "x")
    nd = reading.ndim
    d_in = None if reading.w_val is None else reading.w_val.shape[1]
    if arr.ndim < nd + 1 or (d_in is not None and arr.shape[-1] != d_in):
        raise ShapeError(f"`x` must have shape (*batch, *spatial, d_in) with {nd} spatial axes"
                         + (f" and d_in = {d_in}" if d_in is not None else "") + f", got {arr.shape}")
    spatial = tuple(arr.shape[arr.ndim - nd - 1:-1])
    if grid is not None and _grid(grid) != spatial:
        raise ShapeError(f"`grid` {_grid(grid)} does not match the spatial shape of `x` {spatial}")
    if reading.grid is not None and reading.grid != spatial:
        raise ShapeError(f"the mask is over a grid {reading.grid}, but `x` has spatial shape {spatial}")
    return spatial, arr.reshape(-1, math.prod(spatial), arr.shape[-1])


def _leaks(alphas: np.ndarray, ndim: int) -> np.ndarray:
    out = np.full(alphas.shape, np.nan)
    for h, a in enumerate(alphas):
        if np.isfinite(a) and a > 0:
            out[h] = leak_bound(float(a), ndim)
        elif a == math.inf:
            out[h] = 0.0
    return out


def analyse_attention(layer: Any, *, x: object = None, grid: object = None, mask: object = None,
                      components: Sequence[str] | None = None, ndim: int | None = None,
                      window: int | None = None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                      tie_rtol: float = 1e-9) -> AttentionReport:
    """How convolutional is an attention layer: centres, widths, masses, nearest convolution.

    Per head it reads the centre ``Δ_h`` (real) and width ``α_h`` of the
    positional score when that score is a quadratic polynomial of the offset
    ``δ = k − q`` (the paper's quadratic encoding, the generalised one, ConViT's
    gated positional attention, any quadratic additive mask), and measures over
    every query of the grid (and every input, for content-dependent attention)
    the weight on the nearest integer offset, the mean attention distance and
    the entropy; ties (a maximum shared by several keys, e.g. a half-integer
    centre) are reported as such. For the layer, it says whether the nearest
    integer offsets form a shift set (kernel size, dilation, which head is which
    shift), builds the nearest convolution (Lemma 1 read backwards,
    ``W_{t_h} = W_val^(h) W_out^(h)``) and, given inputs, measures the distance
    between the layer and that convolution under the a-priori bound where it
    applies. (See :mod:`attn_expressivity.analysis`.)

    Parameters
    ----------
    layer : MultiHeadSelfAttention, ConvAttention, ndarray, torch.nn.MultiheadAttention or learned layer
        * a :class:`~attn_expressivity.MultiHeadSelfAttention` (any encoding, content
          terms allowed) or a :class:`~attn_expressivity.ConvAttention` (its attention
          layer, read without the padding);
        * positional score coefficients, shape ``(n_heads, n_components)``, with
          ``components`` naming the columns (default: the quadratic encoding's
          ``("sq", "d0", …)``); e.g. ConViT's ``pos_proj.weight`` with
          ``components=("x", "y", "sq")``;
        * a ``torch.nn.MultiheadAttention`` with ``mask``, its additive positional
          mask ``(n, n)`` or ``(n_heads, n, n)`` over the ``n`` tokens of a grid in
          raster order (its query/key projections are the content score);
        * a layer with an ``as_attention()`` method returning a
          :class:`~attn_expressivity.MultiHeadSelfAttention` (the learned layers of
          :mod:`attn_expressivity.learn`).
    x : ndarray, shape ``(*batch, *spatial, d_in)``, optional
        Inputs: the statistics are averaged over them (required for content-dependent
        attention), and the distance to the nearest convolution is measured on them.
    grid : sequence of int, optional
        The spatial shape, when no ``x`` gives it (for a mask: inferred for a square
        token count).
    mask : array or tensor, optional
        With a ``torch.nn.MultiheadAttention`` only.
    components : sequence of str, optional
        With coefficients only (see :func:`~attn_expressivity.analysis.forms.forms_from_coefficients`).
    ndim : int, optional
        Spatial axes of coefficients, when the components do not say.
    window : int, optional
        Also report the mean weight inside ``max_i |δ_i| <= window``.
    memory_budget : int, optional
        Bytes of scratch per chunk of queries.
    tie_rtol : float, optional
        Keys within this relative weight of the largest count as tied.

    Returns
    -------
    AttentionReport

    Raises
    ------
    ParameterTypeError
        An unsupported ``layer``, a boolean mask, non-float arrays.
    ShapeError
        A mask of the wrong shape, a token count that is not a square grid (without
        ``grid``), ``x`` or ``grid`` that do not fit the layer.
    ParameterValueError
        Content-dependent attention without inputs, no grid, a mask without a
        ``torch.nn.MultiheadAttention``, unknown components, a negative ``window``.
    UnsupportedConfigurationError
        A ``torch.nn.MultiheadAttention`` with ``add_bias_kv``, ``add_zero_attn`` or
        different key/value dimensions.

    Examples
    --------
    The layer of Theorem 1 reads back as its shift set (heads in raster order):

    >>> from attn_expressivity import conv_to_mhsa
    >>> rng = np.random.default_rng(0)
    >>> layer = conv_to_mhsa(rng.standard_normal((3, 3, 2, 2)), alpha=20.0)
    >>> report = analyse_attention(layer, x=rng.standard_normal((7, 7, 2)))
    >>> report.centres[:2].tolist(), float(report.alphas[0]), report.shift_set["is_shift_set"]
    ([[-1.0, -1.0], [-1.0, 0.0]], 20.0, True)
    >>> bool(report.mass_min.min() >= 1 - report.leak_bounds.max()), report.holds
    (True, True)
    """
    if window is not None:
        window = as_int(window, "window", minimum=0)
    reading = read_layer(layer, mask=mask, grid=grid, components=components, ndim=ndim, x=x)
    g, tokens = _inputs(reading, x, grid)
    if reading.content is not None and tokens is None:
        raise ParameterValueError(
            "this attention depends on the input (content terms): pass inputs `x` to average over"
        )
    return _analyse(reading, g, tokens, x, window, as_int(memory_budget, "memory_budget", minimum=1),
                    float(tie_rtol))


def _analyse(reading: Reading, g: tuple[int, ...], tokens: np.ndarray | None, x: Any,
             window: int | None, budget: int, tie_rtol: float) -> AttentionReport:
    H, D = reading.n_heads, reading.ndim
    if reading.forms is not None:
        read = read_forms(reading.forms)
        centres, alphas, iso = read["centres"], read["alphas"], read["isotropic"]
        if reading.beta != 1.0:             # softmax(β s): the width is β α (β = ∞: hard attention)
            with np.errstate(invalid="ignore"):
                alphas = np.where(alphas > 0, alphas * reading.beta, alphas)
        source = ["quadratic"] * H
    else:
        centres, alphas, iso, source = np.full((H, D), np.nan), np.full(H, np.nan), np.zeros(H, bool), []
    if reading.forms is None:
        first = head_statistics(reading, g, tokens, centres, window=None, budget=budget, tie_rtol=tie_rtol)
        centres, source = first["centroid"], ["centroid"] * H
    stats = head_statistics(reading, g, tokens, centres, window=window, budget=budget, tie_rtol=tie_rtol)
    valid = np.isfinite(centres).all(axis=1)
    nearest = np.where(valid[:, None], np.round(np.nan_to_num(centres)), 0).astype(np.int64)
    report = AttentionReport(
        kind=reading.kind, n_heads=H, ndim=D, grid=g, centres=centres, alphas=alphas, isotropic=iso,
        centre_source=source, nearest=nearest,
        grid_distance=np.where(valid, np.linalg.norm(np.nan_to_num(centres) - nearest, axis=1), np.nan),
        mass=stats["mass"], mass_min=stats["mass_min"], leak_bounds=_leaks(alphas, D),
        mean_distance=stats["mean_distance"], entropy=stats["entropy"],
        window_mass=stats["window_mass"], ties=stats["ties"],
        content_dependent=reading.content is not None,
        n_inputs=0 if reading.content is None or tokens is None else tokens.shape[0],
        notes=list(reading.notes),
    )
    if not valid.all():
        report.notes.append(f"heads {np.flatnonzero(~valid).tolist()} have no centre (no bump: alpha <= 0)")
        return report
    report.shift_set = shift_grid(nearest)
    if reading.w_val is None:
        return report
    report.kernel, report.bias = nearest_convolution(reading, report.shift_set)
    if x is not None:
        arr = np.asarray(x)
        dist = layer_distance(reading, report.kernel, report.bias, report.shift_set["dilation"], arr)
        report.distance, report.relative_distance = dist["distance"], dist["relative_distance"]
        if dist["reason"]:
            report.bound_reason = dist["reason"]
        else:
            report.bound, report.bound_reason = apriori_bound(
                reading, report.shift_set, report.kernel, report.bias, arr)
    return report


def attention_maps_of(layer: Any, query: Sequence[int], *, grid: object = None, x: object = None,
                      mask: object = None, components: Sequence[str] | None = None) -> np.ndarray:
    """Every head's attention weights for one query, ``(n_heads, *grid)``.

    Parameters
    ----------
    layer, grid, x, mask, components
        As for :func:`analyse_attention`; ``x`` is one image ``(*spatial, d_in)``
        (required for content-dependent attention).
    query : sequence of int
        The query pixel.

    Returns
    -------
    ndarray, shape ``(n_heads, *grid)``; each head's weights sum to 1.

    Examples
    --------
    >>> from attn_expressivity import conv_to_mhsa
    >>> p = attention_maps_of(conv_to_mhsa(np.ones((3, 3, 1, 1)), alpha=30.0), (2, 2), grid=(5, 5))
    >>> p.shape, divmod(int(p[0].argmax()), 5)
    ((9, 5, 5), (1, 1))
    """
    reading = read_layer(layer, mask=mask, grid=grid, components=components, x=x)
    g, tokens = _inputs(reading, x, grid)
    if reading.content is not None and tokens is None:
        raise ParameterValueError("this attention depends on the input: pass one image `x`")
    q = tuple(as_int(c, f"query[{i}]") for i, c in enumerate(query))
    if len(q) != len(g) or any(not 0 <= c < s for c, s in zip(q, g)):
        raise ShapeError(f"`query` {q} must be a pixel of the grid {g}")
    return attention_maps(reading, g, q, None if tokens is None else tokens[0])
