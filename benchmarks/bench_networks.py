"""Whole networks with every convolution converted to attention: time and memory against the original.

Run from the repository root::

    python benchmarks/bench_networks.py [--batch 8] [--size 224] [--dtype float32]
        [--alphas 40 inf] [--repeat 5] [--device cpu|cuda] [--budget MIB]

The network is ResNet-18 (``resnet18`` in ``tests/interop/nets.py``, torchvision's
architecture and initialisation written with ``torch.nn``) in eval mode, random weights (seed 0), and its copy
from ``convert_model(..., route="separable")`` for each ``alpha``: all 20
convolutions converted, the 7×7/2 stem included (196 heads).

* **Time**: forward passes under ``torch.inference_mode``, the original and the
  converted networks interleaved in one process (one pass of each per round, the
  order rotating), after a warm-up pass; the medians and the median of the
  per-round ratios are reported, with the load average before and after.
* **Memory**: each network runs one forward pass in a fresh subprocess. On the
  CPU: the process's peak resident set (``ru_maxrss``) and the growth of that peak
  during the pass over the resident set just before it (which holds the
  interpreter, torch, the weights and the input); glibc's mmap threshold is fixed
  at 128 KiB so that freed tensors leave the resident set. On a GPU:
  ``torch.cuda.max_memory_allocated`` over the pass, minus what was allocated
  before it.
* **Agreement**: the largest difference of the logits from the original's,
  relative to the largest logit.

Nothing here needs a GPU; ``--device cuda`` runs the same on one.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NETS = os.path.join(os.path.dirname(HERE), "tests", "interop")


def load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "n/a"


def build(alpha: str | None, dtype: str, device: str, budget: int):
    import torch

    sys.path.insert(0, NETS)
    from nets import resnet18

    from attn_expressivity.interop.convert import convert_model

    torch.manual_seed(0)
    model = resnet18().to(device=device, dtype=getattr(torch, dtype))
    if alpha is None:
        return model, None
    return convert_model(model, alpha=float(alpha), memory_budget=budget)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def memory_child(args: argparse.Namespace) -> None:
    """One forward pass; print the memory figures as JSON (run in a fresh process)."""
    import torch

    model, _ = build(None if args.child == "original" else args.child, args.dtype, args.device,
                     args.budget << 20)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    x = x.to(device=args.device, dtype=getattr(torch, args.dtype))
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        with torch.inference_mode():
            model(x)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        print(json.dumps({"before": before / 2**20, "peak": peak / 2**20,
                          "growth": (peak - before) / 2**20}))
        return
    with open("/proc/self/statm") as f:
        before = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    with torch.inference_mode():
        model(x)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"before": before / 2**20, "peak": peak / 2**20,
                      "growth": (peak - before) / 2**20}))


def memory(args: argparse.Namespace, which: str) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", which, "--batch", str(args.batch), "--size",
           str(args.size), "--dtype", args.dtype, "--device", args.device, "--budget", str(args.budget)]
    # a fixed mmap threshold: every large block is mapped on allocation and unmapped on free,
    # so the resident set follows the live tensors (glibc otherwise raises the threshold and
    # keeps freed blocks in its heap)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def timing(args: argparse.Namespace) -> tuple[dict, dict, float]:
    import torch

    models = {"original": build(None, args.dtype, args.device, args.budget << 20)[0]}
    heads = 0
    for a in args.alphas:
        models[f"alpha={a}"], report = build(a, args.dtype, args.device, args.budget << 20)
        heads = report.n_heads
    x = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
    x = x.to(device=args.device, dtype=getattr(torch, args.dtype))
    times: dict[str, list[float]] = {k: [] for k in models}
    agree = {}
    with torch.inference_mode():
        ref = models["original"](x)
        for name, m in models.items():                       # warm-up, and the agreement
            y = m(x)
            agree[name] = float((y - ref).abs().max() / ref.abs().max())
        names = list(models)
        for r in range(args.repeat):
            for name in names[r % len(names):] + names[:r % len(names)]:
                sync(args.device)
                t = time.perf_counter()
                models[name](x)
                sync(args.device)
                times[name].append(time.perf_counter() - t)
    return times, agree, heads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--alphas", nargs="+", default=["40", "inf"])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--budget", type=int, default=32, help="memory budget per block, MiB")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        memory_child(args)
        return
    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), device {args.device}")
    print(f"ResNet-18, batch {args.batch}, {args.size}x{args.size}, {args.dtype}, memory budget "
          f"{args.budget} MiB per block")
    print(f"load average at start: {load()}")
    t0 = time.perf_counter()
    mem = {} if args.skip_memory else {k: memory(args, k) for k in ["original"] + args.alphas}
    times, agree, heads = timing(args)
    print(f"load average at end:   {load()}  (whole run {time.perf_counter() - t0:.0f} s; "
          f"{heads} heads in the converted network)\n")
    base = statistics.median(times["original"])
    print("| network | forward median [s] | time ratio (ratio of medians; median of per-round ratios) "
          "| peak memory [MiB] | peak growth during the pass [MiB] | memory ratio (peak; growth) "
          "| max rel. logit difference |")
    print("|---|---|---|---|---|---|---|")
    for name, ts in times.items():
        key = "original" if name == "original" else name.split("=", 1)[1]
        med = statistics.median(ts)
        per_round = statistics.median(t / b for t, b in zip(ts, times["original"]))
        m, m0 = mem.get(key), mem.get("original")
        mem_cells = ("n/a", "n/a", "n/a") if m is None else (
            f"{m['peak']:.0f}", f"{m['growth']:.0f}",
            f"{m['peak'] / m0['peak']:.2f}; {m['growth'] / m0['growth']:.2f}")
        print(f"| {name} | {med:.3f} | {med / base:.2f}; {per_round:.2f} | {mem_cells[0]} | "
              f"{mem_cells[1]} | {mem_cells[2]} | {agree[name]:.1e} |")
    if any(not math.isfinite(v) for v in agree.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
