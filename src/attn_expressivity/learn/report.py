"""The Markdown tables of the results page, from the summary of :func:`~attn_expressivity.learn.runner.run_all`."""

from __future__ import annotations

from typing import Any

__all__ = ["results_markdown"]


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def results_markdown(summary: dict[str, Any], runs: dict[str, list[dict[str, Any]]]) -> str:
    """The Table-1-shaped table, the criteria with PASS/FAIL, and the run's wall time and load."""
    lines = ["| model | test accuracy, mean ± std (seeds) | per seed | paper (CIFAR-10) |",
             "| --- | --- | --- | --- |"]
    for row in summary["table1"]:
        if row["seeds"]:
            acc = f"{_pct(row['mean'])} ± {100 * row['std']:.1f} ({row['seeds']})"
            per = ", ".join(f"{100 * a:.1f}" for a in row["accuracy"])
        else:
            acc, per = "not run", "—"
        lines.append(f"| {row['label']} | {acc} | {per} | {_pct(row['paper'])} |")
    lines += ["", "| criterion | statement | result | verdict |", "| --- | --- | --- | --- |"]
    for c in summary["criteria"]:
        lines.append(f"| {c['criterion']} | {c['statement']} | {c['detail']} | **{c['verdict']}** |")
    extra = []
    for key, label in (("teacher_dilated_9", "3×3 dilation-2 teacher with 9 heads"),
                       ("teacher_dilated_sampled", "3×3 dilation-2 teacher, 16 heads, trained on sampled images")):
        rs = runs.get(key, [])
        if rs:
            covered = sum(r["worst_match"] <= 0.5 for r in rs)
            extra.append(f"| {label} | every offset within 0.5 px in {covered} of {len(rs)} seeds; worst match "
                         + ", ".join(f"{r['worst_match']:.2f}" for r in rs) + " px; relative MSE "
                         + ", ".join(f"{r['relative_mse']:.1e}" for r in rs) + " |")
    if extra:
        lines += ["", "| also measured | result |", "| --- | --- |"] + extra
    load = summary["load"]
    lines += ["", f"Wall time {summary['wall_seconds'] / 60:.1f} min for {summary['seeds']} seeds, "
              f"{summary['jobs']} job(s) at a time, one thread each; 1-minute load average "
              f"{load[0]:.1f} at the start and {load[1]:.1f} at the end on {summary['cpu_count']} cores."]
    return "\n".join(lines) + "\n"
