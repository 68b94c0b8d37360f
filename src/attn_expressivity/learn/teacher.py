"""A quadratic-attention layer learns a fixed convolution (the teacher): where do its centres go?

The student is :class:`~attn_expressivity.learn.models.QuadraticAttention` on a
16×16 image with ``d`` channels in and out; the teacher a fixed random
convolution (kernel ``K``, dilation ``d``, no bias). The loss is taken on the
interior queries, whose every tap lies inside the image.

**The objective.** For inputs with i.i.d. standard normal entries, the
expected squared error of a positional layer ``Σ_h P_h ⊗ M_h``
(``M_h = W_val^(h) W_out^(h)``) against the convolution ``Σ_Δ S_Δ ⊗ W_Δ`` on the
interior rows is the squared Frobenius norm of their difference, and with the
per-axis factors of the quadratic heads (``P_h = A_h ⊗ B_h``) it costs a few
``H × H`` products:

.. math:: E = \\sum_{h,g} \\langle A_h, A_g\\rangle \\langle B_h, B_g\\rangle \\langle M_h, M_g\\rangle
          - 2 \\sum_{h,\\Delta} c^A_{h,\\Delta_0} c^B_{h,\\Delta_1} \\langle M_h, W_\\Delta\\rangle
          + n_{int} \\sum_\\Delta \\|W_\\Delta\\|^2 + n_{int}\\|b_{out}\\|^2 ,

``c^A_{h,t} = Σ_q A_h[q, q + t]`` over interior rows. ``objective="population"``
minimises ``E`` itself (the infinite-data limit of training on Gaussian images,
deterministic and fast); ``objective="sampled"`` trains on minibatches of
Gaussian images. Either way the reported **relative MSE** is ``E`` divided by
the teacher's expected squared output ``n_int Σ_Δ ‖W_Δ‖²``: exact, not sampled.

**Too few heads.** Any positional layer with ``H`` heads has relative MSE at
least ``Σ_{i > H} σ_i² / Σ_i σ_i²`` of ``U(W)``, whose rows are ``vec(W_Δ)``
(Eckart–Young, :func:`attn_expressivity.heads_lower_bound`; every interior query
sees every shift, so the weights ``c_Δ`` are all equal): reported as ``lower_bound``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..analysis import analyse_attention
from ..convolution.shifts import shift_set
from ..errors import ParameterValueError
from ..theorem.lower_bound import heads_lower_bound
from .models import QuadraticAttention, flush_denormals
from .progress import progress

__all__ = ["TeacherConfig", "population_error", "train_teacher"]


@dataclass(frozen=True)
class TeacherConfig:
    """One teacher run (defaults: criterion 1, a 3×3 kernel with dilation 2 and 16 heads)."""

    kernel_size: int = 3
    dilation: int = 2
    channels: int = 8
    image: int = 16
    heads: int = 16
    d_head: int | None = None          # None: channels (the paper's d_head = d_out)
    steps: int = 2000
    lr: float = 0.02
    objective: str = "population"       # or "sampled"
    batch: int = 16
    record_every: int = 25
    seed: int = 0

    def check(self) -> TeacherConfig:
        for name in ("kernel_size", "dilation", "channels", "image", "heads", "steps", "batch", "record_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ParameterValueError(f"`{name}` must be an integer >= 1, got {getattr(self, name)!r}")
        if self.seed < 0:
            raise ParameterValueError(f"`seed` must be >= 0, got {self.seed}")
        if self.objective not in ("population", "sampled"):
            raise ParameterValueError(f"`objective` must be 'population' or 'sampled', got {self.objective!r}")
        if self.dilation * (self.kernel_size - 1) >= self.image:
            raise ParameterValueError(
                f"the kernel's reach {self.dilation * (self.kernel_size - 1) + 1} does not fit a "
                f"{self.image}×{self.image} image"
            )
        if not self.lr > 0:
            raise ParameterValueError(f"`lr` must be > 0, got {self.lr!r}")
        return self


def population_error(layer: QuadraticAttention, slices: torch.Tensor, shifts: np.ndarray,
                     size: int, margin: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(E, n_int Σ‖W_Δ‖²)`` of the module docstring, differentiable in the layer's parameters."""
    rows = torch.arange(margin, size - margin)
    a0, a1 = layer.axis_weights((size, size))                                # (H, L, L) each
    m = torch.einsum("hij,hjo->hio", layer.heads.w_val, layer.heads.w_out)   # (H, d_in, d_out)
    g0 = torch.einsum("hqk,gqk->hg", a0[:, rows], a0[:, rows])
    g1 = torch.einsum("hqk,gqk->hg", a1[:, rows], a1[:, rows])
    self_term = (g0 * g1 * torch.einsum("hio,gio->hg", m, m)).sum()
    t0 = torch.as_tensor(shifts[:, 0]).long()
    t1 = torch.as_tensor(shifts[:, 1]).long()
    c0 = a0[:, rows[:, None], rows[:, None] + t0[None, :]].sum(dim=1)         # (H, S)
    c1 = a1[:, rows[:, None], rows[:, None] + t1[None, :]].sum(dim=1)
    cross = (c0 * c1 * torch.einsum("hio,sio->hs", m, slices)).sum()
    n_int = len(rows) ** 2
    norm = n_int * (slices ** 2).sum()
    return self_term - 2 * cross + norm + n_int * (layer.heads.b_out ** 2).sum(), norm


def _teacher(cfg: TeacherConfig, gen: torch.Generator) -> tuple[torch.Tensor, np.ndarray]:
    k, d = cfg.kernel_size, cfg.channels
    weight = torch.randn(k, k, d, d, generator=gen, dtype=torch.float64) / math.sqrt(k * k * d)
    return weight.reshape(k * k, d, d), shift_set(k, dilation=cfg.dilation)


def _sampled_loss(layer: QuadraticAttention, slices: torch.Tensor, cfg: TeacherConfig, margin: int,
                  gen: torch.Generator) -> torch.Tensor:
    x = torch.randn(cfg.batch, cfg.image, cfg.image, cfg.channels, generator=gen, dtype=torch.float64)
    k = cfg.kernel_size
    w = slices.reshape(k, k, cfg.channels, cfg.channels).permute(3, 2, 0, 1)   # (out, in, K, K)
    target = F.conv2d(x.permute(0, 3, 1, 2), w, dilation=cfg.dilation).permute(0, 2, 3, 1)
    y = layer(x)[:, margin:cfg.image - margin, margin:cfg.image - margin]
    return ((y - target) ** 2).sum() / (target ** 2).sum()


def _train(layer: QuadraticAttention, opt: Any, sched: Any, cfg: TeacherConfig, slices: torch.Tensor,
           shifts: np.ndarray, margin: int, gen: torch.Generator, trajectory: list[np.ndarray],
           losses: list[float], show_progress: bool) -> None:
    """The optimisation loop of :func:`train_teacher` (records into ``trajectory`` and ``losses``)."""
    for step in progress(range(cfg.steps), show_progress, f"teacher K={cfg.kernel_size} d={cfg.dilation} "
                         f"H={cfg.heads} seed {cfg.seed}"):
        opt.zero_grad()
        if cfg.objective == "population":
            err, norm = population_error(layer, slices, shifts, cfg.image, margin)
            loss = err / norm
        else:
            loss = _sampled_loss(layer, slices, cfg, margin, gen)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % cfg.record_every == 0:
            trajectory.append(layer.centres.detach().numpy().copy())
            losses.append(float(loss.detach()))


def train_teacher(cfg: TeacherConfig, *, show_progress: bool = False) -> dict[str, Any]:
    """Train the student on the teacher (one thread, seeded generators) and report where it went.

    Returns
    -------
    dict
        ``config``; ``relative_mse`` (exact, see the module docstring) and
        ``initial_relative_mse`` (before training); ``lower_bound``
        (Eckart–Young); ``teacher_shifts``; final ``centres``, ``alphas``; ``match``:
        per teacher offset the nearest head and its distance, and ``worst_match``;
        ``window_mass`` per head (inside the teacher's reach, from
        :func:`~attn_expressivity.analysis.analyse_attention`), ``mean_distance``,
        ``nearest``, ``shift_set``;
        ``trajectory`` (centres every ``record_every`` steps), ``losses``; ``seconds``.
    """
    cfg.check()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(cfg.seed)
    slices, shifts = _teacher(cfg, gen)
    layer = QuadraticAttention(cfg.channels, cfg.channels, cfg.heads, cfg.d_head or cfg.channels,
                               generator=gen, dtype=torch.float64)
    margin = cfg.dilation * (cfg.kernel_size - 1) // 2
    opt = torch.optim.Adam(layer.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    trajectory, losses = [layer.centres.detach().numpy().copy()], []
    with torch.no_grad():
        err, norm = population_error(layer, slices, shifts, cfg.image, margin)
        initial = float(err / norm)
    t0 = time.perf_counter()
    with flush_denormals():
        _train(layer, opt, sched, cfg, slices, shifts, margin, gen, trajectory, losses, show_progress)
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        err, norm = population_error(layer, slices, shifts, cfg.image, margin)
    centres, k = layer.centres.detach().numpy(), cfg.kernel_size
    reach = cfg.dilation * (cfg.kernel_size - 1) // 2
    read = analyse_attention(layer, grid=(cfg.image, cfg.image), window=reach)
    dist = np.linalg.norm(centres[None, :, :] - shifts[:, None, :], axis=-1)   # (S, H)
    return {
        "config": asdict(cfg), "relative_mse": float(err / norm), "initial_relative_mse": initial,
        # Eckart–Young: the least relative MSE of any positional layer with this many heads
        "lower_bound": heads_lower_bound(slices.numpy().reshape(k, k, cfg.channels, cfg.channels), cfg.heads,
                                         cfg.image, padding="valid", dilation=cfg.dilation).relative ** 2,
        "teacher_shifts": shifts.tolist(), "centres": centres.tolist(),
        "alphas": layer.alphas.detach().numpy().tolist(),
        "match": [{"offset": s.tolist(), "head": int(dist[i].argmin()), "distance": float(dist[i].min())}
                  for i, s in enumerate(shifts)],
        "worst_match": float(dist.min(axis=1).max()),
        "window_mass": read.window_mass.tolist(), "mean_distance": read.mean_distance.tolist(),
        "nearest": read.nearest.tolist(), "shift_set": read.shift_set,
        "trajectory": np.array(trajectory).tolist(), "losses": losses,
        "seconds": seconds, "layer": layer,
    }
