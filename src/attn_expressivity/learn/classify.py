"""Texture classification with attention networks, a CNN and a shuffled control (Table 1 at small scale).

Five models share one network (:class:`~attn_expressivity.learn.models.Network`:
a per-pixel embedding, ``layers`` blocks, average pooling, a linear classifier)
and differ in the token-mixing layer of the blocks:

* ``cnn``: a 3×3 convolution (the paper's ResNet baseline, in miniature);
* ``quadratic``: :class:`~attn_expressivity.learn.models.QuadraticAttention`
  (learned centres and widths, no content);
* ``relative``: learned relative positional scores, no content;
* ``relative_content``: learned relative scores plus content attention;
* ``shuffled``: ``quadratic`` on patches whose pixels are permuted by one fixed
  permutation (spatial structure destroyed, pixel values kept).

Training is deterministic (one thread, one seeded generator for the weights and
the minibatch order); every attention layer of a trained network is read with
:func:`~attn_expressivity.analysis.analyse_attention`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from ..analysis import analyse_attention, attention_maps_of
from ..errors import ParameterValueError
from .criteria import neighbour_heads
from .data import texture_patches
from .models import ConvBlockLayer, Network, QuadraticAttention, RelativeAttention, flush_denormals
from .progress import progress

__all__ = ["MODELS", "ClassifyConfig", "build_network", "train_classifier"]

#: The models :func:`train_classifier` knows.
MODELS = ("cnn", "quadratic", "relative", "relative_content", "shuffled")


@dataclass(frozen=True)
class ClassifyConfig:
    """One classification run."""

    model: str = "quadratic"
    layers: int = 3
    width: int = 16
    heads: int = 9
    d_head: int = 2
    steps: int = 600
    batch: int = 64
    lr: float = 3e-3
    position_lr: float = 0.1
    record_every: int = 20
    seed: int = 0

    def check(self) -> ClassifyConfig:
        if self.model not in MODELS:
            raise ParameterValueError(f"`model` must be one of {MODELS}, got {self.model!r}")
        for name in ("layers", "width", "heads", "d_head", "steps", "batch", "record_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ParameterValueError(f"`{name}` must be an integer >= 1, got {getattr(self, name)!r}")
        if self.seed < 0:
            raise ParameterValueError(f"`seed` must be >= 0, got {self.seed}")
        if not self.lr > 0 or not self.position_lr > 0:
            raise ParameterValueError(f"`lr` and `position_lr` must be > 0, got {self.lr!r}, {self.position_lr!r}")
        return self


def build_network(cfg: ClassifyConfig, size: int, gen: torch.Generator) -> Network:
    """The network of ``cfg.model`` for ``size × size`` grey patches and three classes."""
    w, mixers = cfg.width, []
    for _ in range(cfg.layers):
        if cfg.model == "cnn":
            mixers.append(ConvBlockLayer(w, w, generator=gen))
        elif cfg.model in ("quadratic", "shuffled"):
            mixers.append(QuadraticAttention(w, w, cfg.heads, cfg.d_head, generator=gen))
        else:
            mixers.append(RelativeAttention(w, w, cfg.heads, cfg.d_head, size=(size, size), generator=gen,
                                            content=cfg.model == "relative_content"))
    return Network(mixers, 1, w, 3, generator=gen)


def _evaluate(net: Network, x: torch.Tensor, y: torch.Tensor, batch: int = 64) -> float:
    net.eval()
    with torch.no_grad():
        correct = sum(int((net(x[i:i + batch]).argmax(dim=1) == y[i:i + batch]).sum())
                      for i in range(0, len(x), batch))
    net.train()
    return correct / len(x)


def _mixer_inputs(net: Network, x: torch.Tensor) -> list[np.ndarray]:
    """What each mixer sees (the normalised hidden state) on ``x``, as float64 arrays."""
    seen: list[np.ndarray] = []
    hooks = [m.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().double().numpy()))
             for m in net.mixers]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    return seen


def _read_layers(net: Network, probe: torch.Tensor) -> list[dict[str, Any]]:
    """Every attention layer read by the analysis (content layers on the probe's hidden states)."""
    out = []
    inputs = _mixer_inputs(net, probe)
    for i, mix in enumerate(net.mixers):
        if not hasattr(mix, "as_attention"):
            continue
        content = isinstance(mix, RelativeAttention) and mix.content
        grid = tuple(probe.shape[1:3])
        rep = analyse_attention(mix, x=inputs[i] if content else None, grid=None if content else grid)
        query = tuple(s // 2 for s in grid)
        maps = attention_maps_of(mix, query, x=inputs[i][0] if content else None,
                                 grid=None if content else grid)
        out.append({"layer": i, "centres": rep.centres.tolist(), "centre_source": rep.centre_source[0],
                    "alphas": rep.alphas.tolist(), "mean_distance": rep.mean_distance.tolist(),
                    "entropy": rep.entropy.tolist(), "mass": rep.mass.tolist(),
                    "mean_attention_distance": float(np.mean(rep.mean_distance)),
                    "query": list(query), "query_maps": maps.tolist()})
    return out


def train_classifier(cfg: ClassifyConfig, *, show_progress: bool = False,
                     data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train one model on the texture patches and read its attention layers.

    Returns
    -------
    dict
        ``config``, ``test_accuracy``, ``train_accuracy`` (on every fourth training
        patch), ``layers`` (per attention
        layer: centres, widths, mean attention distance per head and its mean, entropy),
        ``layer0_heads`` (:func:`~attn_expressivity.learn.criteria.neighbour_heads` of
        layer 0, quadratic models),
        ``trajectory`` (per recorded step, per layer, the centres), ``losses``,
        ``seconds``; and ``network`` (the trained module, not JSON).
    """
    cfg.check()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(cfg.seed)
    perm = None
    if cfg.model == "shuffled":
        perm = torch.randperm(256, generator=torch.Generator().manual_seed(10_000 + cfg.seed)).numpy()
    d = data if data is not None and perm is None else texture_patches(16, shuffle_pixels=perm)
    x_tr, y_tr = torch.tensor(d["x_train"], dtype=torch.float32), torch.tensor(d["y_train"])
    x_te, y_te = torch.tensor(d["x_test"], dtype=torch.float32), torch.tensor(d["y_test"])
    net = build_network(cfg, x_tr.shape[1], gen)
    positional = [p for m in net.mixers for n, p in m.named_parameters() if not n.startswith("heads.")
                  and isinstance(m, (QuadraticAttention, RelativeAttention)) and n.split(".")[0] in ("centres", "spreads", "tables")]
    ids = {id(p) for p in positional}
    rest = [p for p in net.parameters() if id(p) not in ids]
    opt = torch.optim.Adam([{"params": rest, "lr": cfg.lr}, {"params": positional, "lr": cfg.position_lr}])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[cfg.lr, cfg.position_lr], total_steps=cfg.steps,
                                                pct_start=0.1)
    quadratic = [m for m in net.mixers if isinstance(m, QuadraticAttention)]
    trajectory = [[m.centres.detach().numpy().copy() for m in quadratic]]
    losses, order, pos = [], torch.randperm(len(x_tr), generator=gen), 0
    t0 = time.perf_counter()
    with flush_denormals():               # far keys' weights underflow: subnormals are slow
        for step in progress(range(cfg.steps), show_progress, f"classify {cfg.model} seed {cfg.seed}"):
            if pos + cfg.batch > len(order):
                order, pos = torch.randperm(len(x_tr), generator=gen), 0
            idx = order[pos:pos + cfg.batch]
            pos += cfg.batch
            loss = F.cross_entropy(net(x_tr[idx]), y_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if (step + 1) % cfg.record_every == 0:
                trajectory.append([m.centres.detach().numpy().copy() for m in quadratic])
                losses.append(float(loss.detach()))
    seconds = time.perf_counter() - t0
    layers = _read_layers(net, x_te[:: max(1, len(x_te) // 8)][:8])
    first = layers[0] if layers and cfg.model in ("quadratic", "shuffled") else None
    return {
        "config": asdict(cfg), "test_accuracy": _evaluate(net, x_te, y_te),
        "train_accuracy": _evaluate(net, x_tr[::4], y_tr[::4]), "layers": layers,
        "layer0_heads": None if first is None else neighbour_heads(first["centres"], first["alphas"]),
        "trajectory": [[c.tolist() for c in step] for step in trajectory], "losses": losses,
        "n_train": len(x_tr), "n_test": len(x_te), "seconds": seconds, "network": net,
        "chance": 1 / 3, "log_classes": math.log(3),
    }
