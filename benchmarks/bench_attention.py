"""Benchmarks of verify and the attention paths against the reference convolution.

Run from the repository root::

    python benchmarks/bench_attention.py [--repeat 3] [--quick] [--write docs/performance.md]

Every target of the performance issue is printed with its measured ratio and
PASS or MISS, beside a machine-peak line (a 2048 × 2048 float64 matrix product
in the same run). Ratios are taken within one run, on the same machine, the
load average printed beside them; times are the median of ``--repeat`` runs.
Sections:

1. targets (the table);
2. ``verify`` end to end at 224 × 224, 64 → 64, K = 7 and 3, float64 and float32,
   its parts, achieved GFLOP/s and the minimum FLOP count of the attention;
3. time against the number of pixels (K = 3, 32² … 512²) and against K (3 … 11,
   128²) for the separable path and the reference convolution;
4. threads (the package's workers and OpenBLAS's, 1 and 2, in subprocesses),
   batch 32 against batch 1, stride 2 against stride 1;
5. memory: peak traced memory of a 10⁶-sample signal and a 1024 × 1024 image on
   the separable path, and of the dense path from a few queries over all keys,
   against the memory budget;
6. the 20 convolution shapes of a ResNet-18 at 224 × 224: ``verify`` over all of
   them, building included, against their reference convolutions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc

import numpy as np

from attn_expressivity import conv, conv_to_mhsa, verify
from attn_expressivity._threads import single_blas_thread
from attn_expressivity.convolution.instances import random_instance

ALPHA = 37.0
LINES: list[str] = []
TARGETS: list[tuple[str, str, str]] = []


def say(text: str = "") -> None:
    print(text, flush=True)
    LINES.append(text)


def median_time(fn, repeat: int) -> float:
    fn()                                                  # warm-up (allocations, imports)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def paired(fa, fb, repeat: int) -> tuple[float, float, float]:
    """``(median t_a, median t_b, median of t_a / t_b)`` with a and b alternated.

    On a machine other processes load unevenly, a and b timed in turn see the
    same load; the median of the per-pair ratios is what the targets use.
    """
    fa()
    fb()
    ta, tb = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        fa()
        ta.append(time.perf_counter() - t)
        t = time.perf_counter()
        fb()
        tb.append(time.perf_counter() - t)
    return statistics.median(ta), statistics.median(tb), statistics.median(a / b for a, b in zip(ta, tb))


def target(name: str, measured: float, limit: float, unit: str = "") -> None:
    """Record a target: PASS when ``measured <= limit``."""
    ok = measured <= limit
    TARGETS.append((name, f"{measured:.3g}{unit} (limit {limit:g}{unit})", "PASS" if ok else
                    f"MISS by {measured / limit:.2f}x"))


def peak_gflops(repeat: int) -> float:
    a = np.random.default_rng(0).standard_normal((2048, 2048))
    t = median_time(lambda: a @ a, repeat)
    return 2 * 2048**3 / t / 1e9


def conv_flops(w: np.ndarray, out_pixels: int, groups: int = 1) -> float:
    return 2.0 * out_pixels * math.prod(w.shape[:-2]) * w.shape[-2] * w.shape[-1]


def attention_min_flops(layer, x: np.ndarray) -> float:
    """The conv's multiply-adds plus one pass of each distinct per-axis band over the kept outputs.

    The band of a table is its number of keys above the flush threshold (3 at α = 37).
    """
    cfg, m = layer.config, layer.mhsa
    xp = layer.pad(x)
    padded = xp.shape[:-1]
    queries = m.query_positions(padded, layer.crop(padded))
    out = math.prod(len(q) for q in queries)
    total = conv_flops(layer.kernel, out, cfg.groups)
    a, b = m.axis_coefficients()
    from attn_expressivity.attention.axes import axis_table

    for i in range(len(padded)):
        keys = {(float(a[h, i]), float(b[h, i])) for h in range(m.n_heads)}
        w = max(axis_table(*k, padded[i], queries[i], np.dtype(np.float64), m.beta).width for k in keys)
        chans = cfg.d_in if i == 0 else cfg.d_out
        total += 2.0 * len(keys) * out * w * chans
    return total


# --------------------------------------------------------------------------- 2. verify end to end


def section_verify(repeat: int, quick: bool) -> None:
    say("\n### 2. `verify` end to end, 224×224, 64 → 64 channels, one core\n")
    say("One worker thread and BLAS on one thread, for the convolution as for the attention "
        "(the per-core cost; section 4 has the threads). Each ratio is the median over "
        "alternated runs. `attention GFLOP/s` divides the minimum FLOP count (the convolution's "
        "multiply-adds plus one pass of each per-axis band over the outputs) by the separable "
        "path's time.\n")
    say("| K | dtype | conv [s] | attention [s] | attention / conv | verify [s] | verify / conv | "
        "construct | attention in verify | conv in verify | bound | conv GFLOP/s | attention GFLOP/s "
        "(min FLOPs) | min FLOPs / conv FLOPs |")
    say("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for k in (7, 3):
        for dtype in ((np.float64,) if quick else (np.float64, np.float32)):
            w, x, b = (a.astype(dtype) for a in random_instance(kernel_size=k, in_channels=64, out_channels=64,
                                                                image_size=224))
            layer = conv_to_mhsa(w, b, alpha=ALPHA)
            t_attn, t_conv, r_attn = paired(lambda: layer(x), lambda: conv(x, w, b), repeat)  # noqa: B023
            reports = []
            t_verify, _, r_verify = paired(lambda: reports.append(verify(w, x, b, alpha=ALPHA)),  # noqa: B023
                                           lambda: conv(x, w, b), repeat)                         # noqa: B023
            s = reports[-1].seconds
            flops = conv_flops(w, 224 * 224)
            min_flops = attention_min_flops(layer, x)
            name = np.dtype(dtype).name
            say(f"| {k} | {name} | {t_conv:.3f} | {t_attn:.3f} | {r_attn:.2f} | {t_verify:.3f} | {r_verify:.2f} | "
                f"{s['construct']:.3f} | {s['attention']:.3f} | {s['conv']:.3f} | {s['bound']:.3f} | "
                f"{flops / t_conv / 1e9:.1f} | {min_flops / t_attn / 1e9:.1f} | {min_flops / flops:.3f} |")
            target(f"verify ≤ 2.0× conv, 224², K = {k}, {name}", r_verify, 2.0, "×")
            if k == 7:
                target(f"attention forward ≤ 1.3× conv, 224², K = 7, {name}", r_attn, 1.3, "×")
            assert reports[-1].holds


# --------------------------------------------------------------------------- 3. slopes


def slope(xs, ys) -> float:
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def section_scaling(repeat: int, quick: bool) -> None:
    say("\n### 3. time against pixels (K = 3, 16 → 16) and against K (128², 64 → 64), one core\n")
    sides = [32, 64, 128, 256] if quick else [32, 64, 128, 256, 512]
    ta, tc = [], []
    for side in sides:
        w, x, b = random_instance(kernel_size=3, in_channels=16, out_channels=16, image_size=side)
        layer = conv_to_mhsa(w, b, alpha=ALPHA)
        a, c, _ = paired(lambda: layer(x), lambda: conv(x, w, b), repeat)   # noqa: B023
        ta.append(a)
        tc.append(c)
    n = [s * s for s in sides]
    sa, sc = slope(n, ta), slope(n, tc)
    say("| sides | separable [s] | conv [s] | slope in n: separable | conv |")
    say("|---|---|---|---|---|")
    say(f"| {', '.join(map(str, sides))} | {', '.join(f'{t:.4f}' for t in ta)} | "
        f"{', '.join(f'{t:.4f}' for t in tc)} | {sa:.2f} | {sc:.2f} |")
    target(f"separable slope in pixels ≤ 1.1 ({sides[0]}² to {sides[-1]}²)", sa, 1.1)
    ks = [3, 5, 7] if quick else [3, 5, 7, 8, 9, 11]
    rows = []
    for k in ks:
        w, x, b = random_instance(kernel_size=k, in_channels=64, out_channels=64, image_size=128)
        layer = conv_to_mhsa(w, b, alpha=ALPHA)
        t_a, t_c, ratio = paired(lambda: layer(x), lambda: conv(x, w, b), repeat)   # noqa: B023
        rows.append((k, t_a, t_c, ratio))
    say("\n| K | separable [s] | conv [s] | separable / conv |")
    say("|---|---|---|---|")
    for r in rows:
        say(f"| {r[0]} | {r[1]:.4f} | {r[2]:.4f} | {r[3]:.2f} |")
    ratios = [r[3] for r in rows]
    if not quick:
        jump = rows[ks.index(8)][3] / rows[ks.index(7)][3]
        target("no jump at K = 8: (separable/conv at K = 8) / (at K = 7)", jump, 1.3)
    target("time in K grows like the conv's: max/min of separable/conv over K", max(ratios) / min(ratios), 2.0)


# --------------------------------------------------------------------------- 4. threads, batch, stride

CHILD = """
import json, os, time, statistics
import numpy as np
from attn_expressivity import conv, verify
from attn_expressivity.convolution.instances import random_instance
w, x, b = random_instance(kernel_size=7, in_channels=64, out_channels=64, image_size=224)
verify(w, x, b, alpha={alpha})
ts, tc = [], []
for _ in range({repeat}):
    t = time.perf_counter(); verify(w, x, b, alpha={alpha}); ts.append(time.perf_counter() - t)
    t = time.perf_counter(); conv(x, w, b); tc.append(time.perf_counter() - t)
print(json.dumps(dict(verify=statistics.median(ts), conv=statistics.median(tc))))
"""


def _child(env_update: dict[str, str], repeat: int) -> dict[str, float]:
    env = dict(os.environ, **env_update)
    if "ATTN_EXPRESSIVITY_THREADS" not in env_update:
        env.pop("ATTN_EXPRESSIVITY_THREADS", None)           # the package's default
    out = subprocess.run([sys.executable, "-c", CHILD.format(alpha=ALPHA, repeat=repeat)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def section_threads(repeat: int, quick: bool) -> None:
    say("\n### 4. threads, batch and stride\n")
    say("`verify` at 224², 64 → 64, K = 7, float64, in a fresh process per setting "
        "(`ATTN_EXPRESSIVITY_THREADS`: the package's workers, unset = the cores not already busy; "
        "`OPENBLAS_NUM_THREADS`: BLAS's own pool, which verify holds to one thread inside):\n")
    say("| package workers | OpenBLAS threads | verify [s] | conv outside verify [s] |")
    say("|---|---|---|---|")
    settings = [(w_, b_) for w_ in ("default", "1", "2") for b_ in ("1", "2")]
    runs: dict[tuple[str, str], list[dict[str, float]]] = {k: [] for k in settings}
    for _ in range(2 if quick else 3):                      # rounds, each setting once per round
        for workers, blas in settings:
            env = {"OPENBLAS_NUM_THREADS": blas, "OMP_NUM_THREADS": blas}
            if workers != "default":
                env["ATTN_EXPRESSIVITY_THREADS"] = workers
            runs[(workers, blas)].append(_child(env, 1))
    res = {k: {f: statistics.median(r[f] for r in v) for f in ("verify", "conv")} for k, v in runs.items()}
    for (workers, blas), r in res.items():
        say(f"| {workers} | {blas} | {r['verify']:.3f} | {r['conv']:.3f} |")
    worst = max(res[("default", b)]["verify"] / res[("1", b)]["verify"] for b in ("1", "2"))
    target("default workers (2 cores) never slower than one (verify time ratio)", worst, 1.05)
    blas = max(res[(w, "2")]["verify"] / res[(w, "1")]["verify"] for w in ("default", "1"))
    target("two OpenBLAS threads never slower than one (verify time ratio)", blas, 1.05)
    # batch: per-image time at batch 32 against batch 1 (56², 64 → 64, K = 3)
    w, x1, b = random_instance(kernel_size=3, in_channels=64, out_channels=64, image_size=56)
    x32 = np.random.default_rng(1).standard_normal((32, 56, 56, 64))
    layer = conv_to_mhsa(w, b, alpha=ALPHA)
    t32, t1, ratio = paired(lambda: layer(x32), lambda: [layer(x1[None]) for _ in range(32)], repeat)
    say(f"\nBatch (56², 64 → 64, K = 3, separable, one core): batch 1 {t1 / 32 * 1e3:.2f} ms per image, "
        f"batch 32 {t32 / 32 * 1e3:.2f} ms per image ({ratio:.2f}×).")
    target("batch 32 per-image time ≤ batch 1's", ratio, 1.0, "×")
    # stride: the kept outputs only
    w, x, b = random_instance(kernel_size=3, in_channels=64, out_channels=64, image_size=224)
    s1 = conv_to_mhsa(w, b, alpha=ALPHA, padding=1)
    s2 = conv_to_mhsa(w, b, alpha=ALPHA, padding=1, stride=2)
    _, _, ra = paired(lambda: s2(x), lambda: s1(x), repeat)
    _, _, rc = paired(lambda: conv(x, w, b, padding=1, stride=2), lambda: conv(x, w, b, padding=1), repeat)
    say(f"Stride (224², 64 → 64, K = 3, one core): separable stride 2 / stride 1 = {ra:.2f} "
        f"(conv {rc:.2f}; a quarter of the outputs).")
    target("stride 2 computes only the kept outputs: time(stride 2)/time(stride 1)", ra, 0.35)


# --------------------------------------------------------------------------- 5. memory


def _peak(fn) -> tuple[float, object]:
    tracemalloc.start()
    out = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, out


def section_memory(quick: bool) -> None:
    say("\n### 5. memory (peak traced memory; budget 64 MiB)\n")
    say("| case | path | queries | input + output [MiB] | peak [MiB] | peak − (input + output) [MiB] | within the documented budget |")
    say("|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    cases = [("1-D, 10⁶ samples, K = 3, 1 → 1", (3, 1, 1), (10**6, 1)),
             ("1024 × 1024, K = 3, 8 → 8", (3, 3, 8, 8), (1024, 1024, 8))]
    worst = 0.0
    for name, wshape, xshape in cases:
        w = rng.standard_normal(wshape)
        x = rng.standard_normal(xshape)
        layer = conv_to_mhsa(w, alpha=ALPHA)
        xp = layer.pad(x)
        for path, queries in (("separable", None), ("dense", 64)):
            if queries is None:
                q, n_q = None, math.prod(xp.shape[:-1])
            else:                                     # a few queries over every key: O(n) memory
                q = tuple(np.linspace(0, s - 1, max(1, round(queries ** (1 / len(xp.shape[:-1]))))).astype(int)
                          for s in xp.shape[:-1])
                n_q = math.prod(len(a) for a in q)
            layer.mhsa(xp[tuple(slice(0, 40) for _ in xp.shape[:-1])], path=path)
            peak, _ = _peak(lambda: layer.mhsa(xp, path=path, queries=q))   # noqa: B023
            io = (xp.size + n_q * wshape[-1]) * 8
            extra = max(0.0, peak - io)
            ok = extra <= layer.mhsa.memory_budget + 16 * xp.size * 8 / xp.shape[-1] * max(wshape[-2:])
            worst = max(worst, extra / layer.mhsa.memory_budget)
            say(f"| {name} | {path} | {'all' if q is None else n_q} | {io / 2**20:.1f} | {peak / 2**20:.1f} | "
                f"{extra / 2**20:.1f} | {'yes' if ok else 'NO'} |")
    say("\nBeyond the budget each path holds `O(n)` arrays of the image's size (the values, "
        "the accumulators of the workers; `MultiHeadSelfAttention.memory_budget` names them): the "
        "last column allows the budget plus 16 arrays of `n · max(d_in, d_out)` float64 numbers.")


# --------------------------------------------------------------------------- 6. ResNet-18

def resnet18_shapes():
    """The 20 convolutions of a ResNet-18 at 224 × 224: (kernel, d_in, d_out, image, stride, padding)."""
    shapes = [(7, 3, 64, 224, 2, 3)]
    shapes += [(3, 64, 64, 56, 1, 1)] * 4
    for d_in, d_out, side in ((64, 128, 56), (128, 256, 28), (256, 512, 14)):
        shapes += [(3, d_in, d_out, side, 2, 1), (3, d_out, d_out, side // 2, 1, 1),
                   (1, d_in, d_out, side, 2, 0)] + [(3, d_out, d_out, side // 2, 1, 1)] * 2
    return shapes


def section_resnet(repeat: int) -> None:
    say("\n### 6. the 20 convolutions of a ResNet-18 at 224 × 224, float64, one core\n")
    say("| # | kernel | channels | image | stride | conv [ms] | verify [ms] | construct | attention | bound |")
    say("|---|---|---|---|---|---|---|---|---|---|")
    total_conv = total_verify = 0.0
    for i, (k, d_in, d_out, side, stride, pad) in enumerate(resnet18_shapes()):
        w, x, b = random_instance(kernel_size=k, in_channels=d_in, out_channels=d_out, image_size=side,
                                  seed=i)
        opts = dict(stride=stride, padding=pad)
        reports = []
        t_v, t_c, _ = paired(lambda: reports.append(verify(w, x, b, alpha=ALPHA, **opts)),  # noqa: B023
                             lambda: conv(x, w, b, **opts), repeat)                         # noqa: B023
        s = reports[-1].seconds
        assert reports[-1].holds
        total_conv += t_c
        total_verify += t_v
        say(f"| {i + 1} | {k}×{k} | {d_in} → {d_out} | {side}² | {stride} | {t_c * 1e3:.1f} | {t_v * 1e3:.1f} | "
            f"{s['construct'] * 1e3:.1f} | {s['attention'] * 1e3:.1f} | {s['bound'] * 1e3:.1f} |")
    say(f"| all | | | | | {total_conv * 1e3:.1f} | {total_verify * 1e3:.1f} | | | |")
    target("ResNet-18 shapes: verify over all ≤ 5× their convolutions", total_verify / total_conv, 5.0, "×")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="timed repetitions per case (median)")
    p.add_argument("--quick", action="store_true", help="fewer cases (a smoke run)")
    p.add_argument("--write", metavar="FILE", default=None,
                   help="write the tables into FILE between the generated-section markers")
    args = p.parse_args()
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    peak = peak_gflops(args.repeat)
    say(f"machine: {platform.machine()} {_cpu()}, {os.cpu_count()} cores, {_ram()} GiB RAM, Python "
        f"{platform.python_version()}, numpy {np.__version__} ({_blas()}); OPENBLAS_NUM_THREADS="
        f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, ATTN_EXPRESSIVITY_THREADS="
        f"{os.environ.get('ATTN_EXPRESSIVITY_THREADS', 'unset')}; load average at start {load0:.2f}")
    say(f"machine peak: a 2048 × 2048 float64 matrix product runs at {peak:.1f} GFLOP/s")
    os.environ["ATTN_EXPRESSIVITY_THREADS"] = "1"           # one core, both sides (section 4: threads)
    with single_blas_thread():
        section_verify(args.repeat, args.quick)
        section_scaling(args.repeat, args.quick)
        section_threads(args.repeat, args.quick)
        section_memory(args.quick)
        section_resnet(args.repeat)
    elapsed = time.perf_counter() - t0
    head = ["### 1. targets\n", "| target | measured | verdict |", "|---|---|---|"]
    head += [f"| {n} | {m} | {v} |" for n, m, v in TARGETS]
    for line in head:
        print(line)
    tail = (f"\ntotal {elapsed:.0f} s; load average {load0:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print(tail)
    if args.write:
        _write(args.write, head + [""] + LINES + [tail], args)


def _write(path: str, lines: list[str], args) -> None:
    begin, end = "<!-- generated by benchmarks/bench_attention.py -->", "<!-- end of generated section -->"
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    command = "python benchmarks/bench_attention.py --repeat " + str(args.repeat) + (
        " --quick" if args.quick else "") + f" --write {path}"
    block = "\n".join([begin, "", f"Command: `{command}`", ""] + lines + ["", end])
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return "(" + line.split(":", 1)[1].strip() + ")"
    except OSError:
        pass
    return platform.processor() or ""


def _ram() -> str:
    try:
        return f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f}"
    except (ValueError, OSError, AttributeError):
        return "?"


def _blas() -> str:
    try:
        from threadpoolctl import threadpool_info  # noqa: F401

        info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if info:
            return f"{info[0].get('internal_api')} {info[0].get('version')}"
    except ImportError:
        pass
    return "BLAS"


if __name__ == "__main__":
    main()
