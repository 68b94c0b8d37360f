"""Benchmarks of the attention paths; prints Markdown tables of medians and ratios.

Run from the repository root::

    python benchmarks/bench_attention.py [--repeat 3] [--quick]

Sections (all float64, the layer of ``conv_to_mhsa`` on a standard-normal instance,
the image padded as ``ConvAttention`` pads it):

1. dense path vs PyTorch ``scaled_dot_product_attention`` with the positional scores
   as an additive float mask (mask built outside the timed region, values and output
   projection inside), 16 -> 32 channels;
2. separable vs dense path on 32 x 32 and 64 x 64, K = 3 and 5, 16 -> 32 channels;
3. end-to-end ``verify`` at 224 x 224, 64 -> 64 channels, K = 7, in a subprocess
   (wall time and peak RSS of that process);
4. time against image side for each path, with the least-squares log-log slope in
   the number of pixels ``n``.

Ratios are taken within one run; the machine's load is printed first.
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

import numpy as np

from attn_expressivity import conv_to_mhsa
from attn_expressivity.convolution.instances import random_instance

ALPHA = 37.0


def median_time(fn, repeat):
    fn()                                              # warm-up (allocations, imports)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def layer_and_input(side, k, d_in, d_out, seed=0):
    w, x, b = random_instance(kernel_size=k, in_channels=d_in, out_channels=d_out,
                              image_size=side, seed=seed)
    layer = conv_to_mhsa(w, b, alpha=ALPHA)
    return layer, layer.pad(x)


def torch_case(layer, xp):
    import torch

    m = layer.mhsa
    spatial = xp.shape[:-1]
    n = math.prod(spatial)
    pos = np.indices(spatial).reshape(len(spatial), n).T
    rel = (pos[None, :, :] - pos[:, None, :]).astype(np.float64)          # (n, n, D)
    c = m.position_coefficients()                                          # (H, d_p)
    # term 4 for the quadratic encoding: c_0 ‖δ‖² + Σ c_i δ_i               (H, n, n)
    mask = torch.from_numpy(np.einsum("qk,h->hqk", (rel**2).sum(-1), c[:, 0])
                            + np.einsum("qkd,hd->hqk", rel, c[:, 1:]))[None]
    x = torch.from_numpy(xp.reshape(n, -1))
    w_val, w_out, b_out = (torch.from_numpy(a) for a in (m.w_val, m.w_out, m.b_out))
    zeros = torch.zeros((1, m.n_heads, n, m.d_k), dtype=torch.float64)     # W_qry = W_key = 0

    def run():
        v = torch.matmul(x, w_val)[None]                                   # (1, H, n, d_head)
        o = torch.nn.functional.scaled_dot_product_attention(zeros, zeros, v, attn_mask=mask)
        return o[0].permute(1, 0, 2).reshape(n, -1) @ w_out + b_out

    return run


def section_torch(repeat, quick):
    import torch

    rows = []
    cases = [(32, 3), (32, 5), (48, 3)] if quick else [(32, 3), (32, 5), (48, 3), (48, 5)]
    for side, k in cases:
        layer, xp = layer_and_input(side, k, 16, 32)
        run_t = torch_case(layer, xp)
        ours = layer.mhsa(xp, path="dense")
        err = float(np.abs(run_t().numpy().reshape(ours.shape) - ours).max() / np.abs(ours).max())
        t_ours = median_time(lambda: layer.mhsa(xp, path="dense"), repeat)  # noqa: B023
        t_torch = median_time(run_t, repeat)
        rows.append((f"{side}x{side}", k, layer.n_heads, xp.shape[0] * xp.shape[1],
                     t_ours, t_torch, t_ours / t_torch, err))
    print(f"\n### 1. dense path vs PyTorch SDPA (float64, 16 -> 32 channels, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads)\n")
    print("| image | K | heads | n (padded) | dense [s] | SDPA [s] | dense / SDPA | rel. diff |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.4f} | {r[5]:.4f} | {r[6]:.2f} | {r[7]:.1e} |")


def section_separable(repeat, quick):
    rows = []
    for side, k in [(32, 3), (64, 3)] if quick else [(32, 3), (32, 5), (64, 3), (64, 5)]:
        layer, xp = layer_and_input(side, k, 16, 32)
        dense = layer.mhsa(xp, path="dense")
        sep = layer.mhsa(xp, path="separable")
        err = float(np.abs(sep - dense).max() / np.abs(dense).max())
        t_d = median_time(lambda: layer.mhsa(xp, path="dense"), repeat)      # noqa: B023
        t_s = median_time(lambda: layer.mhsa(xp, path="separable"), max(repeat, 5))  # noqa: B023
        rows.append((f"{side}x{side}", k, t_d, t_s, t_d / t_s, err))
    print("\n### 2. separable vs dense path (float64, 16 -> 32 channels)\n")
    print("| image | K | dense [s] | separable [s] | dense / separable | rel. diff |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.4f} | {r[3]:.5f} | {r[4]:.0f} | {r[5]:.1e} |")


E2E = """
import json, resource, time
from attn_expressivity import verify
from attn_expressivity.convolution.instances import random_instance
w, x, b = random_instance(kernel_size=7, in_channels=64, out_channels=64, image_size=224)
t = time.perf_counter()
r = verify(w, x, b, alpha={alpha})
wall = time.perf_counter() - t
print(json.dumps(dict(wall=wall, rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      seconds=r.seconds, path=r.path, err=r.max_abs_error, bound=r.bound,
                      holds=r.holds)))
"""


def section_end_to_end():
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", E2E.format(alpha=ALPHA)], capture_output=True,
                         text=True, check=True)
    outer = time.perf_counter() - t
    d = json.loads(out.stdout.strip().splitlines()[-1])
    print("\n### 3. end-to-end verify, 224x224, 64 -> 64 channels, K = 7 (49 heads), float64\n")
    print("| path | verify wall [s] | process wall [s] | peak RSS [GiB] | attention [s] | conv [s] "
          "| bound [s] | max error | bound | holds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    s = d["seconds"]
    print(f"| {d['path']} | {d['wall']:.2f} | {outer:.2f} | {d['rss'] / 2**20:.2f} | "
          f"{s['attention']:.2f} | {s['conv']:.2f} | {s['bound']:.2f} | {d['err']:.2e} | "
          f"{d['bound']:.2e} | {d['holds']} |")


def slope(sizes, times):
    lx, ly = np.log(sizes), np.log(times)
    return float(np.polyfit(lx, ly, 1)[0])


def section_scaling(repeat, quick):
    print("\n### 4. time against image size (K = 3, 16 -> 32 channels); slope of log t against log n\n")
    results = {}
    for path, sides in (("dense", [16, 24, 32, 48] if quick else [16, 24, 32, 48, 64]),
                        ("separable", [32, 64, 128] if quick else [32, 64, 128, 256])):
        ns, ts = [], []
        for side in sides:
            layer, xp = layer_and_input(side, 3, 16, 32)
            ns.append(xp.shape[0] * xp.shape[1])
            ts.append(median_time(lambda: layer.mhsa(xp, path=path), repeat))  # noqa: B023
        results[path] = (sides, ns, ts, slope(ns, ts))
    print("| path | sides | times [s] | slope in n |")
    print("|---|---|---|---|")
    for path, (sides, _ns, ts, sl) in results.items():
        print(f"| {path} | {', '.join(map(str, sides))} | {', '.join(f'{t:.4f}' for t in ts)} | {sl:.2f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions per case (median)")
    p.add_argument("--quick", action="store_true", help="fewer cases (a smoke run)")
    p.add_argument("--skip-e2e", action="store_true", help="skip the 224x224 verify")
    args = p.parse_args()
    t0 = time.perf_counter()
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, numpy {np.__version__}; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    # the end-to-end run goes first: a child process starts with its parent's peak RSS
    # as its own high-water mark, and the torch baseline's masks are large
    if not args.skip_e2e:
        section_end_to_end()
    section_torch(args.repeat, args.quick)
    section_separable(args.repeat, args.quick)
    section_scaling(args.repeat, args.quick)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; load average at end {os.getloadavg()[0]:.2f}; "
          f"peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
