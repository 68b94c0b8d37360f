"""Run every experiment on several seeds, cache each run, evaluate the criteria, draw the figures.

:func:`run_all` (``attn-expressivity learn --all``) runs the experiments of
:data:`EXPERIMENTS` on each seed, one process per run (``jobs`` at a time, one
thread each). Each finished run is written to ``OUT/runs/<name>-seed<k>.json``
(and its weights to ``.pt``) and skipped when the command is run again with the
same configuration, so an interrupted run resumes. At the end it writes
``OUT/criteria.json``, ``OUT/results.json``, ``OUT/results.md`` (the tables of
the documentation's results page) and ``OUT/figures/*.png``.

torch is imported by the runs, not by this module.
"""

from __future__ import annotations

import json
import os
import pathlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ParameterValueError
from .criteria import evaluate_criteria

__all__ = ["EXPERIMENTS", "PAPER_TABLE1", "run_all", "run_one", "table1"]

#: name: (kind, configuration changes). The criteria read the first five seeds of each.
EXPERIMENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "teacher_dilated": ("teacher", {"kernel_size": 3, "dilation": 2, "heads": 16}),
    "teacher_dilated_sampled": ("teacher", {"kernel_size": 3, "dilation": 2, "heads": 16,
                                            "objective": "sampled", "batch": 8, "steps": 1500}),
    "teacher_dilated_9": ("teacher", {"kernel_size": 3, "dilation": 2, "heads": 9}),
    "teacher_plain": ("teacher", {"kernel_size": 3, "dilation": 1, "heads": 9}),
    "teacher_5x5_9": ("teacher", {"kernel_size": 5, "dilation": 1, "heads": 9}),
    "teacher_5x5_25": ("teacher", {"kernel_size": 5, "dilation": 1, "heads": 25}),
    "cnn": ("classify", {"model": "cnn"}),
    "quadratic": ("classify", {"model": "quadratic"}),
    "relative": ("classify", {"model": "relative"}),
    "shuffled": ("classify", {"model": "shuffled"}),
    # n × n weights per head and image: forty times the cost of a step of the others on a
    # CPU; a quarter of their batch keeps one run within reach of a shared CPU
    "relative_content": ("classify", {"model": "relative_content", "batch": 16}),
}

#: The paper's Table 1 (CIFAR-10 test accuracy), for reference beside ours.
PAPER_TABLE1 = {"cnn": 0.938, "quadratic": 0.938, "relative": 0.918, "relative_content": 0.871}

#: Rows of the Table-1-shaped table, in order, with their labels.
TABLE_ROWS = (("cnn", "CNN (3×3 convolutions; the paper: ResNet18)"),
              ("quadratic", "attention, quadratic encoding (learned Δ_h, α_h)"),
              ("relative", "attention, learned relative encoding"),
              ("relative_content", "attention, learned relative encoding + content"),
              ("shuffled", "attention, quadratic encoding, pixels shuffled (control)"))


def _config(name: str, seed: int, overrides: dict[str, Any]) -> tuple[str, Any]:
    kind, changes = EXPERIMENTS[name]
    if kind == "teacher":
        from .teacher import TeacherConfig

        return kind, TeacherConfig(**{**changes, **overrides.get("teacher", {}), "seed": seed}).check()
    from .classify import ClassifyConfig

    return kind, ClassifyConfig(**{**changes, **overrides.get("classify", {}), "seed": seed}).check()


def run_one(name: str, seed: int, out: str, overrides: dict[str, Any], show_progress: bool) -> dict[str, Any]:
    """One run, cached: the stored result when its configuration matches, else a fresh run."""
    import dataclasses

    kind, cfg = _config(name, seed, overrides)
    path = pathlib.Path(out) / "runs" / f"{name}-seed{seed}.json"
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("config") == json.loads(json.dumps(dataclasses.asdict(cfg))):
            return stored
    import torch

    load0 = os.getloadavg()[0]
    if kind == "teacher":
        from .teacher import train_teacher

        result = train_teacher(cfg, show_progress=show_progress)
        module = result.pop("layer")
    else:
        from .classify import train_classifier

        result = train_classifier(cfg, show_progress=show_progress)
        module = result.pop("network")
    result.update(name=name, kind=kind, load=[load0, os.getloadavg()[0]], threads=torch.get_num_threads())
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(module.state_dict(), path.with_suffix(".pt"))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result), encoding="utf-8")
    tmp.replace(path)                       # a run is stored whole or not at all
    return result


def _execute(tasks: list[tuple[str, int]], out: str, overrides: dict[str, Any], jobs: int,
             show_progress: bool, log: Callable[[str], None]) -> dict[str, list[dict[str, Any]]]:
    results: dict[tuple[str, int], dict[str, Any]] = {}
    if jobs == 1:
        for i, (name, seed) in enumerate(tasks):
            results[(name, seed)] = run_one(name, seed, out, overrides, show_progress)
            log(f"[{i + 1}/{len(tasks)}] {name} seed {seed}: {results[(name, seed)]['seconds']:.1f} s")
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = {pool.submit(run_one, name, seed, out, overrides, False): (name, seed) for name, seed in tasks}
            for i, fut in enumerate(as_completed(futures)):
                results[futures[fut]] = fut.result()
                log(f"[{i + 1}/{len(tasks)}] {futures[fut][0]} seed {futures[fut][1]}: "
                    f"{results[futures[fut]]['seconds']:.1f} s")
    grouped: dict[str, list[dict[str, Any]]] = {}
    for name, seed in tasks:
        grouped.setdefault(name, []).append(results[(name, seed)])
    return grouped


def table1(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows of the Table-1-shaped table: test accuracy per model, mean ± std over seeds, and the paper's."""
    rows = []
    for key, label in TABLE_ROWS:
        accs = [r["test_accuracy"] for r in runs.get(key, [])]
        rows.append({"model": key, "label": label, "seeds": len(accs),
                     "accuracy": accs, "mean": float(np.mean(accs)) if accs else None,
                     "std": float(np.std(accs)) if accs else None, "paper": PAPER_TABLE1.get(key)})
    return rows


def run_all(out: str | os.PathLike[str], *, seeds: int = 5, jobs: int = 1, content: bool = False,
            content_seeds: int | None = None, figures: bool = True, show_progress: bool = True, overrides: dict[str, Any] | None = None,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every experiment on ``seeds`` seeds, the criteria, the table and the figures.

    Parameters
    ----------
    out : path
        Output folder (created); cached runs in it are reused.
    seeds : int, optional
        Seeds ``0 … seeds − 1`` (the criteria need 5).
    jobs : int, optional
        Runs at a time, each in its own process with one thread.
    content : bool, optional
        Also the "learned + content" classifier (attention weights ``n × n`` per
        head and image: about forty times the cost of the other runs on a CPU).
    content_seeds : int, optional
        Run it on the first ``content_seeds`` seeds only (default: every seed); it
        enters no criterion, only the table.
    figures : bool, optional
        Draw the figures (matplotlib).
    show_progress : bool, optional
        A progress bar per run (``jobs = 1``).
    overrides : dict, optional
        ``{"teacher": {...}, "classify": {...}}`` configuration changes for every
        run (e.g. fewer steps for a quick look; the criteria then judge those runs).
    log : callable, optional

    Returns
    -------
    dict
        ``criteria``, ``table1``, ``wall_seconds``, ``load`` (1-minute load average
        at the start and the end), ``cpu_count``.
    """
    if seeds < 1 or jobs < 1 or (content_seeds is not None and content_seeds < 1):
        raise ParameterValueError(f"`seeds`, `jobs` and `content_seeds` must be >= 1, got {seeds}, {jobs}, {content_seeds}")
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    overrides = overrides or {}
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    names = [n for n in EXPERIMENTS if n != "relative_content"]
    tasks = [(n, s) for s in range(seeds) for n in names]
    if content:
        tasks += [("relative_content", s) for s in range(seeds if content_seeds is None else min(seeds, content_seeds))]
    runs = _execute(tasks, str(out), overrides, jobs, show_progress, log)
    criteria = evaluate_criteria(runs)
    summary = {"criteria": criteria, "table1": table1(runs), "wall_seconds": time.perf_counter() - t0,
               "load": [load0, os.getloadavg()[0]], "cpu_count": os.cpu_count(), "seeds": seeds,
               "jobs": jobs, "overrides": overrides,
               "run_seconds": {n: [r["seconds"] for r in rs] for n, rs in runs.items()}}
    if figures:
        from .figures import draw_all

        summary["figures"] = [str(p) for p in draw_all(runs, out / "figures")]
    (out / "criteria.json").write_text(json.dumps(criteria, indent=2), encoding="utf-8")
    (out / "results.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    from .report import results_markdown

    (out / "results.md").write_text(results_markdown(summary, runs), encoding="utf-8")
    return summary
