"""Figures of the experiments (matplotlib, imported lazily; drawn from the stored results).

* ``teacher_centres.png``: the heads' centres during training on the dilation-2
  and the plain 3×3 teachers, with the teacher's offsets and 50 % mass circles;
* ``centres_layers.png``: the paper's Figure 3 at this scale: every head's centre
  per layer of the quadratic classifier, its trajectory and 50 % mass circle,
  and layer 0 of the shuffled control;
* ``attention_maps.png``: every head's attention around the middle query, per
  layer, for the quadratic, learned relative (and learned + content) classifiers
  (the paper's Figures 4–5);
* ``mean_distance.png``: the mean attention distance per layer and model, every seed.
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

from ..errors import OptionalDependencyError

__all__ = ["draw_all"]

_VIEW = 5.0      # half-width, in pixels, of the centre plots


def _figure(**kwargs: Any) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - exercised without matplotlib
        raise OptionalDependencyError("figures need matplotlib: pip install 'attn-expressivity[learn]'") from exc
    return Figure(**kwargs)


def _centres_panel(ax: Any, trajectory: np.ndarray, alphas: np.ndarray, title: str,
                   targets: np.ndarray | None = None) -> None:
    """Trajectories ``(T, H, 2)`` (row, column offsets), final centres, 50 % mass circles."""
    from matplotlib.patches import Circle

    colours = [f"C{h % 10}" for h in range(trajectory.shape[1])]
    for h, colour in enumerate(colours):
        ax.plot(trajectory[:, h, 1], trajectory[:, h, 0], color=colour, lw=0.8, alpha=0.5)
        ax.plot(trajectory[-1, h, 1], trajectory[-1, h, 0], "o", color=colour, ms=4)
        if alphas[h] > 0:
            r = np.sqrt(np.log(2.0) / alphas[h])    # 50 % of e^{-α r²} (attn_expressivity.plot.mass_radius)
            ax.add_patch(Circle((trajectory[-1, h, 1], trajectory[-1, h, 0]), r, fill=False, color=colour, lw=0.8))
    if targets is not None:
        ax.plot(targets[:, 1], targets[:, 0], "kx", ms=7, mew=1.5, label="teacher offsets")
    ax.plot([0], [0], "k*", ms=9)
    ax.set_xlim(-_VIEW, _VIEW)
    ax.set_ylim(_VIEW, -_VIEW)
    ax.set_aspect("equal")
    ax.set_xticks(range(-int(_VIEW), int(_VIEW) + 1))
    ax.set_yticks(range(-int(_VIEW), int(_VIEW) + 1))
    ax.grid(True, lw=0.3)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("column offset δ₁ (px)", fontsize=8)


def teacher_figure(runs: dict[str, list[dict[str, Any]]]) -> Any:
    panels = [runs[k][0] for k in ("teacher_dilated", "teacher_plain", "teacher_5x5_25") if runs.get(k)]
    fig = _figure(figsize=(4 * len(panels), 4.3), layout="constrained")
    for ax, r in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        c = r["config"]
        title = (f"{c['kernel_size']}×{c['kernel_size']}, dilation {c['dilation']}, {c['heads']} heads, "
                 f"seed {c['seed']}\nrelative MSE {r['relative_mse']:.1e}")
        _centres_panel(ax, np.array(r["trajectory"]), np.array(r["alphas"]), title, np.array(r["teacher_shifts"]))
    fig.axes[0].set_ylabel("row offset δ₀ (px)", fontsize=8)
    return fig


def layers_figure(runs: dict[str, list[dict[str, Any]]]) -> Any:
    quad = runs["quadratic"][0]
    traj = quad["trajectory"]
    seed = quad["config"]["seed"]
    panels = [(np.array([step[i] for step in traj]), np.array(layer["alphas"]), f"quadratic, layer {i}, seed {seed}")
              for i, layer in enumerate(quad["layers"])]
    if runs.get("shuffled"):
        sh = runs["shuffled"][0]
        panels.append((np.array([step[0] for step in sh["trajectory"]]), np.array(sh["layers"][0]["alphas"]),
                       f"shuffled pixels, layer 0, seed {sh['config']['seed']}"))
    fig = _figure(figsize=(3.6 * len(panels), 4.0), layout="constrained")
    for ax, (trajectory, alphas, title) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        _centres_panel(ax, trajectory, alphas, title)
    fig.axes[0].set_ylabel("row offset δ₀ (px)", fontsize=8)
    return fig


def maps_figure(runs: dict[str, list[dict[str, Any]]]) -> Any:
    models = [m for m in ("quadratic", "relative", "relative_content") if runs.get(m)]
    rows = [(m, i, np.array(layer["query_maps"]), layer["query"]) for m in models
            for i, layer in enumerate(runs[m][0]["layers"])]
    n_heads = max(r[2].shape[0] for r in rows)
    fig = _figure(figsize=(1.3 * n_heads, 1.45 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), n_heads, squeeze=False)
    for (model, layer, maps, query), ax_row in zip(rows, axes):
        for h, ax in enumerate(ax_row):
            ax.set_xticks([])
            ax.set_yticks([])
            if h >= maps.shape[0]:
                ax.set_visible(False)
                continue
            ax.imshow(maps[h], cmap="viridis", interpolation="nearest")
            ax.plot([query[1]], [query[0]], "r+", ms=5)
            if h == 0:
                ax.set_ylabel(f"{model}\nlayer {layer}", fontsize=7)
            if layer == 0 and model == rows[0][0]:
                ax.set_title(f"head {h}", fontsize=7)
    return fig


def distance_figure(runs: dict[str, list[dict[str, Any]]]) -> Any:
    fig = _figure(figsize=(5.5, 3.8), layout="constrained")
    ax = fig.subplots()
    for j, model in enumerate(m for m in ("quadratic", "relative", "relative_content", "shuffled") if runs.get(m)):
        dist = np.array([[layer["mean_attention_distance"] for layer in r["layers"]] for r in runs[model]])
        layers = np.arange(dist.shape[1])
        for row in dist:
            ax.plot(layers + 0.05 * j, row, "o", color=f"C{j}", ms=3, alpha=0.5)
        ax.plot(layers + 0.05 * j, dist.mean(axis=0), "-", color=f"C{j}", label=f"{model} (mean of {len(dist)})")
    ax.set_xlabel("layer")
    ax.set_ylabel("mean attention distance (px)")
    ax.set_xticks(range(int(ax.get_xlim()[1]) + 1))
    ax.legend(fontsize=8)
    return fig


def draw_all(runs: dict[str, list[dict[str, Any]]], out: pathlib.Path, *, dpi: int = 90) -> list[pathlib.Path]:
    """Draw every figure whose runs are present into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    made = []
    jobs = [("teacher_centres.png", teacher_figure, any(runs.get(k) for k in ("teacher_dilated", "teacher_plain"))),
            ("centres_layers.png", layers_figure, bool(runs.get("quadratic"))),
            ("attention_maps.png", maps_figure, bool(runs.get("quadratic") or runs.get("relative"))),
            ("mean_distance.png", distance_figure, bool(runs.get("quadratic")))]
    for name, draw, present in jobs:
        if present:
            path = out / name
            draw(runs).savefig(path, dpi=dpi)
            made.append(path)
    return made
