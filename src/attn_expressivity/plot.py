"""Pictures of the construction: heads, the α trade-off, the border effect.

Three figures, each a :class:`matplotlib.figure.Figure` built without pyplot
(so no global state and no display is needed):

* :func:`plot_heads` — the attention probabilities of every head of a
  constructed layer around one query pixel, as a grid of heatmaps laid out like
  the kernel, and the heads' centres ``Δ^(h)`` with their 50 % / 90 % mass
  contours, in the style of the paper's Figure 3.
* :func:`plot_alpha` — the observed ``max |MHSA(x) − conv(x)|`` against ``α``
  on a log scale with the a-priori bound of :func:`attn_expressivity.verify`
  drawn over it.
* :func:`plot_border` — the per-pixel error of attention run on the unpadded
  image (softmax renormalises at the border) next to pad → attend → crop, and
  :func:`attn_expressivity.verify.border_effect` against ``α``.

:func:`attention_probabilities` (numpy only) computes the softmax weights the
heatmaps show. matplotlib (the ``plot`` extra) is imported inside the plotting
functions only; ``import attn_expressivity.plot`` does not load it.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._validation import as_alpha, as_float_array, as_int
from .attention.encoding import quadratic_encoding
from .attention.layer import MultiHeadSelfAttention
from .attention.softmax import stable_softmax
from .convolution.reference import conv
from .errors import (
    OptionalDependencyError,
    ParameterTypeError,
    ParameterValueError,
    ShapeError,
    UnsupportedConfigurationError,
)
from .theorem.border import border_effect
from .theorem.construction import ConvAttention, conv_to_mhsa
from .verify import verify

__all__ = [
    "FIGURES",
    "attention_probabilities",
    "mass_radius",
    "plot_alpha",
    "plot_border",
    "plot_heads",
    "save_figures",
]

#: The figure names :func:`save_figures` and ``attn-expressivity plot`` know.
FIGURES = ("heads", "alpha", "border")

#: Errors below this are drawn at this value on log scales (0 has no logarithm).
_FLOOR = 1e-18


def _figure_class() -> Any:
    """Import matplotlib lazily, with a project error when it is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - exercised only without matplotlib
        raise OptionalDependencyError(
            "plotting needs matplotlib; install it with `pip install attn-expressivity[plot]`"
        ) from exc
    return Figure


def attention_probabilities(mhsa: MultiHeadSelfAttention, spatial: Sequence[int],
                            query: Sequence[int], x: np.ndarray | None = None) -> np.ndarray:
    """Softmax weights of every head for one query, over every key of an image.

    Evaluates the four-term score of :class:`attn_expressivity.MultiHeadSelfAttention`
    for the single query ``q`` and all keys ``k`` (``δ = k − q``) and applies
    ``softmax(β A)``. With no content terms (every layer built by
    :func:`attn_expressivity.conv_to_mhsa`) the weights do not depend on the image
    and ``x`` may be omitted.

    Parameters
    ----------
    mhsa : MultiHeadSelfAttention
    spatial : sequence of int, length ``mhsa.ndim``
        The image's spatial shape.
    query : sequence of int, length ``mhsa.ndim``
        The query pixel, inside the image.
    x : ndarray, shape ``(*spatial, d_in)``, optional
        The image; required when the layer has content terms.

    Returns
    -------
    ndarray of float, shape ``(n_heads, *spatial)``
        Row ``h`` sums to 1.

    Raises
    ------
    ParameterTypeError
        ``mhsa`` is not a :class:`~attn_expressivity.MultiHeadSelfAttention`, or a
        size or index is not an integer.
    ShapeError
        ``spatial`` or ``query`` of the wrong length, a query outside the image, or
        ``x`` of the wrong shape.
    ParameterValueError
        ``x`` omitted for a layer with content terms.

    Examples
    --------
    >>> from attn_expressivity import conv_to_mhsa
    >>> layer = conv_to_mhsa(np.ones((3, 3, 1, 1)), alpha=30.0)
    >>> p = attention_probabilities(layer.mhsa, (5, 5), (2, 2))
    >>> p.shape, [divmod(int(ph.argmax()), 5) for ph in p][:3]     # (row, col) of q + Δ_h
    ((9, 5, 5), [(1, 1), (1, 2), (1, 3)])
    >>> bool(np.allclose(p.sum(axis=(1, 2)), 1.0))
    True
    """
    if not isinstance(mhsa, MultiHeadSelfAttention):
        raise ParameterTypeError(
            f"`mhsa` must be a MultiHeadSelfAttention, got {type(mhsa).__name__}"
        )
    nd = mhsa.ndim
    if len(spatial) != nd or len(query) != nd:
        raise ShapeError(
            f"`spatial` and `query` must each have {nd} entries (the layer's spatial axes), "
            f"got {tuple(spatial)!r} and {tuple(query)!r}"
        )
    spatial = tuple(as_int(s, f"spatial[{i}]", minimum=1) for i, s in enumerate(spatial))
    query = tuple(as_int(c, f"query[{i}]") for i, c in enumerate(query))
    if any(not 0 <= c < s for c, s in zip(query, spatial)):
        raise ShapeError(f"`query` {query} must lie inside the image of shape {spatial}")
    n = math.prod(spatial)
    pos = np.indices(spatial).reshape(nd, n).T                                # (n, D)
    rel = pos - np.array(query)                                               # (n, D): δ = k − q
    r = quadratic_encoding(rel) if mhsa.encoding == "quadratic" else np.asarray(mhsa.encoding(rel))
    key_pos = np.einsum("np,hpk->hnk", r, mhsa.w_key_hat)                     # (H, n, d_k): r_δ Ŵ_key
    scores = np.einsum("hnk,hk->hn", key_pos, mhsa.v)                         # term 4
    if mhsa.has_content_terms:
        if x is None:
            raise ParameterValueError("`x` is required: this layer's scores depend on the image")
        x = as_float_array(x, "x")
        if x.shape != spatial + (mhsa.d_in,):
            raise ShapeError(f"`x` must have shape {spatial + (mhsa.d_in,)}, got {x.shape}")
        tokens = x.reshape(n, mhsa.d_in)
        qx = tokens[np.ravel_multi_index(query, spatial)] @ mhsa.w_qry           # (H, d_k)
        kx = np.matmul(tokens, mhsa.w_key)                                     # (H, n, d_k)
        scores = (scores + np.einsum("hk,hnk->hn", qx, kx)                     # term 1
                  + np.einsum("hk,hnk->hn", qx, key_pos)                       # term 2
                  + np.einsum("hk,hnk->hn", mhsa.u, kx))                       # term 3
    probs = stable_softmax(np.array(scores, dtype=np.float64), mhsa.beta)     # (H, n)
    return probs.reshape((mhsa.n_heads,) + spatial)


def mass_radius(alpha: float, mass: float) -> float:
    """Radius of the disc holding ``mass`` of the 2-D Gaussian ``∝ e^{−α‖z − Δ‖²}``.

    The head's scores ``−α‖δ − Δ‖²`` sample this Gaussian (variance
    ``σ² = 1/(2α)`` per axis) on the pixel grid; its radial mass is
    ``1 − e^{−α r²}``, so ``r = √(−ln(1 − mass)/α)``.

    Parameters
    ----------
    alpha : float
        Inverse width, ``> 0``.
    mass : float
        In ``(0, 1)``.

    Returns
    -------
    float

    Raises
    ------
    ParameterValueError
        ``alpha`` not positive, or ``mass`` outside ``(0, 1)``.
    ParameterTypeError
        A non-numeric argument.

    Examples
    --------
    >>> round(mass_radius(1.0, 0.5), 4), round(mass_radius(1.0, 0.9), 4)
    (0.8326, 1.5174)
    """
    alpha = as_alpha(alpha)
    if not 0 < alpha < math.inf:
        raise ParameterValueError(f"`alpha` must be finite and > 0, got {alpha!r}")
    if isinstance(mass, bool) or not isinstance(mass, (int, float, np.floating)):
        raise ParameterTypeError(f"`mass` must be a number in (0, 1), got {type(mass).__name__}")
    if not 0 < mass < 1:
        raise ParameterValueError(f"`mass` must be in (0, 1), got {mass!r}")
    return math.sqrt(-math.log1p(-mass) / alpha)


def _example_weight(kernel_size: tuple[int, int], d_in: int, d_out: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(tuple(kernel_size) + (d_in, d_out))


def _kernel_pair(kernel_size: int | Sequence[int]) -> tuple[int, int]:
    ks = (kernel_size, kernel_size) if isinstance(kernel_size, (int, np.integer)) else tuple(kernel_size)
    if len(ks) != 2:
        raise UnsupportedConfigurationError(
            f"the figures are drawn for 2-D kernels, got kernel_size {tuple(ks)!r}"
        )
    return tuple(as_int(k, "kernel_size", minimum=1) for k in ks)  # type: ignore[return-value]


def plot_heads(layer: ConvAttention | None = None, *, alpha: float = 1.0, kernel_size=3,
               image_size: int = 9, query: Sequence[int] | None = None,
               masses: Sequence[float] = (0.5, 0.9)) -> Any:
    """Every head's attention around one query pixel, and the heads' centres (Figure 3 style).

    Left: one heatmap per head, placed like the kernel (head ``h`` at the kernel
    index of its shift ``Δ_h``), showing ``softmax(A^(h)_{q,:})`` over the image
    with the query marked. Right: the centres ``q + Δ_h`` with circles holding
    ``masses`` (default 50 % and 90 %) of each head's Gaussian
    (:func:`mass_radius`), over the pixel grid.

    Parameters
    ----------
    layer : ConvAttention, optional
        A 2-D layer from :func:`attn_expressivity.conv_to_mhsa`; by default one is
        built for a random ``kernel_size`` kernel with ``alpha``.
    alpha : float, optional
        Inverse width of the default layer (ignored when ``layer`` is given).
    kernel_size : int or (int, int), optional
        Kernel of the default layer.
    image_size : int, optional
        Side of the square image the probabilities are drawn over.
    query : (int, int), optional
        The query pixel (default: the centre).
    masses : sequence of float, optional
        Masses of the contours, each in ``(0, 1)``.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    OptionalDependencyError
        matplotlib is not installed.
    UnsupportedConfigurationError
        A layer or kernel that is not 2-D.
    ParameterTypeError, ParameterValueError, ShapeError
        Bad sizes, query, masses or ``alpha``.

    Examples
    --------
    >>> fig = plot_heads(alpha=1.0, image_size=7)       # doctest: +SKIP
    >>> len(fig.axes)                                    # doctest: +SKIP
    11
    """
    Figure = _figure_class()
    if layer is None:
        layer = conv_to_mhsa(_example_weight(_kernel_pair(kernel_size), 1, 1, 0), alpha=alpha)
    elif not isinstance(layer, ConvAttention):
        raise ParameterTypeError(f"`layer` must be a ConvAttention, got {type(layer).__name__}")
    if layer.config.ndim != 2:
        raise UnsupportedConfigurationError(
            f"the heads figure is drawn for 2-D layers, got a {layer.config.ndim}-D layer"
        )
    side = as_int(image_size, "image_size", minimum=1)
    spatial = (side, side)
    query = (side // 2, side // 2) if query is None else tuple(query)
    masses = [float(m) for m in masses]
    radii = {m: mass_radius(layer.alpha, m) if math.isfinite(layer.alpha) and layer.alpha > 0
             else (0.0 if math.isinf(layer.alpha) else math.inf) for m in masses}
    probs = attention_probabilities(layer.mhsa, spatial, query)               # (H, side, side)
    kh, kw = layer.config.kernel_size
    shifts = layer.shifts                                                     # (H, 2), raster order

    fig = Figure(figsize=(2.0 * kw + 4.2, max(2.0 * kh, 4.0) + 0.6), layout="constrained")
    grid = fig.add_gridspec(kh, kw + 2, width_ratios=[1] * kw + [0.08, 2.1])
    vmax = float(probs.max())
    image = None
    for h in range(layer.n_heads):
        i, j = divmod(int(layer.kernel_indices[h]), kw)                       # the head's kernel index
        ax = fig.add_subplot(grid[i, j])
        image = ax.imshow(probs[h], cmap="viridis", vmin=0.0, vmax=vmax, origin="upper")
        ax.plot(query[1], query[0], marker="+", color="white", markersize=8, mew=1.5)
        ax.set_title(f"h={h}  Δ=({shifts[h, 0]:+d},{shifts[h, 1]:+d})", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    cax = fig.add_subplot(grid[:, kw])
    fig.colorbar(image, cax=cax, label="softmax weight")

    ax = fig.add_subplot(grid[:, kw + 1])
    finite_r = [r for r in radii.values() if math.isfinite(r)]
    reach = int(np.abs(shifts).max()) + math.ceil(max(finite_r, default=0.0)) + 1   # zoom on q
    lo_y, hi_y = max(0, query[0] - reach), min(side - 1, query[0] + reach)
    lo_x, hi_x = max(0, query[1] - reach), min(side - 1, query[1] + reach)
    ax.set_xlim(lo_x - 0.5, hi_x + 0.5)
    ax.set_ylim(hi_y + 0.5, lo_y - 0.5)
    ax.set_aspect("equal")
    ax.set_xticks(np.arange(lo_x, hi_x + 1))
    ax.set_yticks(np.arange(lo_y, hi_y + 1))
    ax.tick_params(labelsize=6)
    ax.grid(True, color="0.85", linewidth=0.5)
    styles = ["-", "--", ":", "-."]
    colours = [f"C{h % 10}" for h in range(layer.n_heads)]
    from matplotlib.patches import Circle

    for h in range(layer.n_heads):
        cy, cx = query[0] + shifts[h, 0], query[1] + shifts[h, 1]
        ax.plot(cx, cy, "o", color=colours[h], markersize=4)
        for m_idx, m in enumerate(masses):
            if math.isfinite(radii[m]) and radii[m] > 0:
                ax.add_patch(Circle((cx, cy), radii[m], fill=False, color=colours[h],
                                    linestyle=styles[m_idx % len(styles)], linewidth=0.9))
    ax.plot(query[1], query[0], marker="s", color="black", markersize=5, fillstyle="none")
    legend = ", ".join(f"{styles[i % len(styles)]!s} {100 * m:g} %" for i, m in enumerate(masses))
    ax.set_title(f"centres q + Δ_h and mass contours\n({legend}; □ = query)", fontsize=8)
    alpha_text = "∞" if math.isinf(layer.alpha) else f"{layer.alpha:g}"
    fig.suptitle(f"{layer.n_heads} heads of conv_to_mhsa, α = {alpha_text}, query q = {query}",
                 fontsize=10)
    return fig


def plot_alpha(weight: np.ndarray | None = None, x: np.ndarray | None = None,
               bias: np.ndarray | None = None, *, alphas: Sequence[float] | None = None,
               **conv_options: Any) -> Any:
    """Observed max error against ``α`` (log scale) with the rigorous bound over it.

    Runs :func:`attn_expressivity.verify` at each ``α`` and draws
    ``max |MHSA(x) − conv(x)|`` (markers), the report's ``bound`` (line) and its
    leak term (dashed; not drawn where it is 0). Errors of exactly 0 are drawn at
    ``1e-18``.

    Parameters
    ----------
    weight : ndarray, shape ``(*kernel_size, d_in // groups, d_out)``, optional
        Default: a random 3×3 kernel, 4 → 6 channels.
    x : ndarray, shape ``(*batch, *spatial, d_in)``, optional
        Default: a random 16×16 image.
    bias : ndarray, shape ``(d_out,)``, optional
    alphas : sequence of float, optional
        Default: 40 values from 0.25 to 60, evenly spaced.
    **conv_options
        Passed to :func:`attn_expressivity.verify`.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.reports`` holds the :class:`attn_expressivity.VerifyReport` of each ``α``.

    Raises
    ------
    OptionalDependencyError
        matplotlib is not installed.
    ShapeError, ParameterTypeError, ParameterValueError, NonFiniteError
        As for :func:`attn_expressivity.verify`; an empty ``alphas``.
    """

    Figure = _figure_class()
    rng = np.random.default_rng(1)
    if weight is None:
        weight = rng.standard_normal((3, 3, 4, 6))
        bias = rng.standard_normal(6) if bias is None else bias
    weight = as_float_array(weight, "weight", min_ndim=3)
    if x is None:
        x = rng.standard_normal((16,) * (weight.ndim - 2) + (weight.shape[-2] * conv_options.get("groups", 1),))
    alphas = list(np.linspace(0.25, 60.0, 40) if alphas is None else alphas)
    if not alphas:
        raise ParameterValueError("`alphas` must hold at least one value, got none")
    reports = [verify(weight, x, bias, alpha=float(a), **conv_options) for a in alphas]
    err = np.maximum([r.max_abs_error for r in reports], _FLOOR)
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.semilogy(alphas, [r.bound for r in reports], "-", color="C3", label="rigorous bound (verify)")
    leak = np.array([r.leak_term for r in reports])
    ax.semilogy(alphas, np.where(leak > 0, leak, np.nan), "--", color="C1",   # 0 is not drawn
                label="its leak term")
    ax.semilogy(alphas, err, "o", color="C0", markersize=4, label="observed max |MHSA − conv|")
    ax.set_xlabel("α (inverse width of every head)")
    ax.set_ylabel("absolute error")
    cfg = reports[0].config
    ax.set_title(f"kernel {tuple(cfg['kernel_size'])}, {cfg['in_channels']} → {cfg['out_channels']} "
                 f"channels, image {tuple(cfg['image_shape'])}, {cfg['dtype']}", fontsize=9)
    ax.set_ylim(bottom=_FLOOR / 2)
    ax.grid(True, which="major", color="0.9")
    ax.legend(fontsize=8)
    fig.reports = reports
    return fig


def plot_border(weight: np.ndarray | None = None, x: np.ndarray | None = None,
                bias: np.ndarray | None = None, *, alpha: float = 30.0,
                alphas: Sequence[float] | None = None) -> Any:
    """The border effect: attention without padding is not a zero-padded convolution.

    Three panels, for a ``padding="same"``, zeros-padded convolution: the per-pixel
    error ``max_c |MHSA(x) − conv(x)|`` of the attention layer run on the unpadded
    image (softmax at the border renormalises over in-image pixels), the same for
    pad → attend → crop (the construction), both at ``alpha`` on one log colour
    scale, and :func:`attn_expressivity.verify.border_effect`'s interior and border
    errors against ``α``.

    Parameters
    ----------
    weight : ndarray, shape ``(kh, kw, d_in, d_out)``, optional
        Default: a random 3×3 kernel, 3 → 4 channels.
    x : ndarray, shape ``(h, w, d_in)``, optional
        Default: a random 12×12 image.
    bias : ndarray, shape ``(d_out,)``, optional
    alpha : float, optional
        Inverse width of the two error maps.
    alphas : sequence of float, optional
        The ``α`` of the third panel (default: 20 values from 0.5 to 60).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    OptionalDependencyError
        matplotlib is not installed.
    UnsupportedConfigurationError
        A kernel that is not 2-D.
    ShapeError, ParameterTypeError, ParameterValueError, NonFiniteError
        As for :func:`attn_expressivity.conv_to_mhsa`.
    """
    from matplotlib.colors import LogNorm


    Figure = _figure_class()
    rng = np.random.default_rng(2)
    if weight is None:
        weight = rng.standard_normal((3, 3, 3, 4))
        bias = rng.standard_normal(4) if bias is None else bias
    weight = as_float_array(weight, "weight")
    if weight.ndim != 4:
        raise UnsupportedConfigurationError(
            f"the border figure is drawn for 2-D kernels (kh, kw, d_in, d_out), got shape {weight.shape}"
        )
    if x is None:
        x = rng.standard_normal((12, 12, weight.shape[2]))
    x = as_float_array(x, "x")
    if x.ndim != 3:
        raise ShapeError(f"`x` must have shape (h, w, d_in), got {x.shape}")
    layer = conv_to_mhsa(weight, bias, alpha=alpha, padding="same")
    want = conv(x, weight, bias, padding="same")
    no_pad = np.abs(layer.mhsa(x) - want).max(axis=-1)                   # (h, w): attend, no pad/crop
    padded = np.abs(layer(x) - want).max(axis=-1)                        # (h, w): pad → attend → crop
    alphas = list(np.geomspace(0.5, 60.0, 20) if alphas is None else alphas)
    curves = [border_effect(weight, x, bias, alpha=float(a)) for a in alphas]

    fig = Figure(figsize=(11.0, 3.6), layout="constrained")
    axes = fig.subplots(1, 3, width_ratios=[1, 1, 1.35])
    lo = max(_FLOOR, float(min(no_pad.min(), padded.min(), 1e-16)))
    norm = LogNorm(vmin=lo, vmax=max(float(no_pad.max()), 10 * lo))
    for ax, err, title in ((axes[0], no_pad, "attention on the unpadded image"),
                           (axes[1], padded, "pad → attend → crop")):
        im = ax.imshow(np.maximum(err, lo), cmap="magma", norm=norm)
        ax.set_title(f"{title}\nmax error {err.max():.1e}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes[:2], label=f"max_c |MHSA − conv|, α = {alpha:g}", shrink=0.9)
    ax = axes[2]
    ax.semilogy(alphas, [max(c["border"], _FLOOR) for c in curves], "o-", markersize=3,
                label="border pixels, no padding")
    ax.semilogy(alphas, [max(c["interior"], _FLOOR) for c in curves], "s-", markersize=3,
                label="interior pixels, no padding")
    ax.set_xlabel("α")
    ax.set_ylabel("max error")
    ax.set_title("verify.border_effect", fontsize=9)
    ax.grid(True, color="0.9")
    ax.legend(fontsize=8)
    return fig


def save_figures(out_dir: str | pathlib.Path, which: Sequence[str] = FIGURES, *,
                 dpi: int = 90) -> list[pathlib.Path]:
    """Draw the named figures with their defaults and write them as PNG files.

    Parameters
    ----------
    out_dir : str or path
        Created if missing.
    which : sequence of {"heads", "alpha", "border"}, optional
        Default: all three.
    dpi : int, optional

    Returns
    -------
    list of pathlib.Path
        ``out_dir / "<name>.png"`` for each name, in order.

    Raises
    ------
    ParameterValueError
        An unknown figure name.
    OptionalDependencyError
        matplotlib is not installed.
    """
    unknown = [w for w in which if w not in FIGURES]
    if unknown:
        raise ParameterValueError(f"unknown figure(s) {unknown}; expected some of {list(FIGURES)}")
    dpi = as_int(dpi, "dpi", minimum=10)
    makers = {"heads": plot_heads, "alpha": plot_alpha, "border": plot_border}
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in which:
        fig = makers[name]()
        path = out / f"{name}.png"
        fig.savefig(path, dpi=dpi, metadata={"Software": None})
        paths.append(path)
    return paths
