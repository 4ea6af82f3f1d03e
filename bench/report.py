"""Turn ``results.json`` into ``results.md`` (medians with min-max, ratios, targets) and ``memory.png``."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

ME = "rqpool"
OTHERS = ("rqworker-pool", "separate", "rqpool-simple", "rqpool-nowarm", "rqpool-prefork")


def machine() -> dict[str, Any]:
    """What the figures were measured on, and how busy it was."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {name: version(name) for name in ("django", "rq", "django-rq", "redis", "django-rq-pool")},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def spread(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def cell(values: list[float] | None, fmt: str) -> str:
    if not values:
        return "n/a"
    mid, low, high = spread(values)
    if len(values) == 1:
        return format(mid, fmt)
    return f"{mid:{fmt}} ({low:{fmt}}-{high:{fmt}})"


def median(values: list[float] | None) -> float | None:
    return statistics.median(values) if values else None


def ratio(mine: float | None, theirs: float | None) -> str:
    if mine is None or theirs is None or theirs == 0:
        return "n/a"
    return f"{mine / theirs:.2f}x"


class Figures:
    """Looks up the lists of measurements per contender for one row of the table."""

    def __init__(self, results: dict[str, Any]):
        self.results = results

    def startup(self, key: str, n: int) -> list[float] | None:
        return self.results.get("startup", {}).get(key, {}).get(str(n))

    def idle_memory(self, key: str, n: int, field: str) -> list[float] | None:
        runs = self.results.get("idle_memory", {}).get(key, {}).get(str(n))
        return [r[field] for r in runs] if runs else None

    def job_memory(self, key: str, when: str, field: str) -> list[float] | None:
        runs = self.results.get("job_memory", {}).get(key, {}).get(when)
        return [r[field] for r in runs] if runs else None

    def uss_growth(self, key: str, when: str) -> list[float] | None:
        idle, after = self.job_memory(key, "idle", "uss"), self.job_memory(key, when, "uss")
        return [b - a for a, b in zip(idle, after, strict=False)] if idle and after else None

    def rate(self, key: str, kind: str) -> list[float] | None:
        return self.results.get("jobs_per_second", {}).get(key, {}).get(kind)

    def done(self, key: str, kind: str) -> list[float] | None:
        return self.results.get("jobs_done", {}).get(key, {}).get(kind)

    def cpu_per_job(self, key: str, kind: str) -> list[float] | None:
        return self.results.get("cpu_ms_per_job", {}).get(key, {}).get(kind)

    def heavy_cost(self, key: str) -> list[float] | None:
        return self.results.get("django_heavy_cost", {}).get(key)

    def replacement(self, key: str) -> list[float] | None:
        return self.results.get("replacement", {}).get(key)

    def master_cpu(self, key: str) -> list[float] | None:
        return self.results.get("master_cpu", {}).get(key)

    def latency(self, key: str, percentile: str) -> list[float] | None:
        return self.results.get(f"latency_{percentile}_ms", {}).get(key)


def rows(results: dict[str, Any]) -> list[tuple[str, str, Callable[[str], list[float] | None]]]:
    """(label, number format, contender key -> measurements) for every row."""
    f = Figures(results)
    sizes = sorted({int(n) for per in results.get("startup", {}).values() for n in per})
    jobs = results["settings"]["jobs"]
    at = results.get("throughput_workers", 8)
    table: list[tuple[str, str, Callable[[str], list[float] | None]]] = []
    for n in sizes:
        table.append((f"(a) start-up until {n} workers idle, s", ".2f", lambda k, n=n: f.startup(k, n)))
    for n in sizes:
        table.append((f"(b) total PSS idle, N={n}, MiB", ".0f", lambda k, n=n: f.idle_memory(k, n, "pss")))
    for n in sizes:
        table.append((f"(b) total USS idle, N={n}, MiB", ".0f", lambda k, n=n: f.idle_memory(k, n, "uss")))
    cap = results["settings"].get("batch_cap", 0)
    table += [
        (f"(b) total PSS after trivial batch, N={at}, MiB", ".0f", lambda k: f.job_memory(k, "after_trivial", "pss")),
        (f"(b) USS growth after the trivial batch, N={at}, MiB", ".1f", lambda k: f.uss_growth(k, "after_trivial")),
        (f"(b) USS growth after + realistic, N={at}, MiB", ".1f", lambda k: f.uss_growth(k, "after_realistic")),
        (f"(c) trivial jobs/s, {jobs} jobs, N={at}", ".0f", lambda k: f.rate(k, "trivial")),
        (f"(c) realistic jobs/s, {jobs} jobs, N={at}", ".1f", lambda k: f.rate(k, "realistic")),
    ]
    if "django_heavy_cost" in results:
        table += [
            (f"(c) Django-heavy jobs/s, {jobs} jobs, N={at}", ".1f", lambda k: f.rate(k, "django_heavy")),
            ("(c) CPU per trivial job (pool's processes), ms", ".1f", lambda k: f.cpu_per_job(k, "trivial")),
            ("(c) CPU per Django-heavy job (pool's processes), ms", ".1f", lambda k: f.cpu_per_job(k, "django_heavy")),
            ("(c) Django-heavy job's CPU / trivial job's, same launch", ".2f", f.heavy_cost),
        ]
    if cap > 0:  # a capped batch measures slower contenders on the jobs they did in time
        table += [
            (f"(c) trivial jobs done (all, or those done in {cap:.0f} s)", ".0f", lambda k: f.done(k, "trivial")),
            (f"(c) realistic jobs done (all, or those done in {cap:.0f} s)", ".0f", lambda k: f.done(k, "realistic")),
        ]
    table += [
        (f"(d) kill -9 to idle replacement, N={max(sizes, default=0)}, s", ".3f", f.replacement),
        ("(e) master CPU over 60 s idle, N=8, s", ".3f", f.master_cpu),
    ]
    late = results.get("latency_workers", 8)
    for pct in ("p50", "p99"):
        table.append((f"(g) pick-up latency {pct}, idle N={late}, ms", ".1f", lambda k, p=pct: f.latency(k, p)))
    return table


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """The targets of issues 6, 15 and 17 this run measured: (target, what was measured, met?)."""
    f = Figures(results)
    out: list[tuple[str, str, bool | None]] = []

    def add(text: str, mine: float | None, theirs: float | None, ok: Callable[[float], bool], shown: str) -> None:
        if mine is None or theirs is None or theirs == 0:
            out.append((text, "not measured", None))
        else:
            value = mine / theirs
            out.append((text, shown.format(value), ok(value)))

    sizes = sorted({int(n) for per in results.get("startup", {}).values() for n in per})
    for n in sizes:
        add(
            f"start-up ≤ 1.05x rqworker-pool's, N={n}",
            median(f.startup(ME, n)),
            median(f.startup("rqworker-pool", n)),
            lambda v: v <= 1.05,
            "{:.2f}x",
        )
    add(
        "start-up ≥ 5x faster than separate workers, N=8",
        median(f.startup("separate", 8)),
        median(f.startup(ME, 8)),
        lambda v: v >= 5,
        "{:.1f}x faster",
    )
    add(
        "total PSS ≤ rqworker-pool's, N=8",
        median(f.idle_memory(ME, 8, "pss")),
        median(f.idle_memory("rqworker-pool", 8, "pss")),
        lambda v: v <= 1,
        "{:.2f}x",
    )
    add(
        "USS growth after 2,000 (trivial) jobs ≤ ½ rqworker-pool's",
        median(f.uss_growth(ME, "after_trivial")),
        median(f.uss_growth("rqworker-pool", "after_trivial")),
        lambda v: v <= 0.5,
        "{:.2f}x",
    )
    add(
        "realistic jobs/s ≥ 1.5x rqworker-pool's",
        median(f.rate(ME, "realistic")),
        median(f.rate("rqworker-pool", "realistic")),
        lambda v: v >= 1.5,
        "{:.2f}x",
    )
    add(
        "replacement ≥ 10x faster than rqworker-pool's, N=32",
        median(f.replacement("rqworker-pool")),
        median(f.replacement(ME)),
        lambda v: v >= 10,
        "{:.1f}x faster",
    )
    add(
        f"trivial jobs/s ≥ 1.05x rqworker-pool's, N={results.get('throughput_workers', 8)}",
        median(f.rate(ME, "trivial")),
        median(f.rate("rqworker-pool", "trivial")),
        lambda v: v >= 1.05,
        "{:.2f}x",
    )
    for pct in ("p50", "p99"):
        add(
            f"pick-up latency {pct} ≤ rqworker-pool's",
            median(f.latency(ME, pct)),
            median(f.latency("rqworker-pool", pct)),
            lambda v: v <= 1,
            "{:.2f}x",
        )
    if "rqpool-prefork" in results["contenders"]:
        for pct in ("p50", "p99"):
            add(
                f"pick-up latency {pct} ≤ 0.5x rqworker-pool's with prefork_job_child",
                median(f.latency("rqpool-prefork", pct)),
                median(f.latency("rqworker-pool", pct)),
                lambda v: v <= 0.5,
                "{:.2f}x",
            )
    heavy = median(f.heavy_cost(ME))
    out.append(
        (
            "Django-heavy job ≤ 1.2x the trivial job's CPU under rqpool (same launch)",
            "not measured" if heavy is None else f"{heavy:.2f}x",
            None if heavy is None else heavy <= 1.2,
        )
    )
    cpu = median(f.master_cpu(ME))
    out.append(
        (
            "master idle CPU ≤ 0.05 s per minute",
            "not measured" if cpu is None else f"{cpu:.3f} s",
            None if cpu is None else cpu <= 0.05,
        )
    )
    return out


def markdown(results: dict[str, Any], plot_name: str | None) -> str:
    labels = results["contenders"]
    keys = [k for k in (ME, *OTHERS) if k in labels]
    others = [k for k in OTHERS if k in labels]
    settings = results["settings"]
    lines = [
        "| figure | "
        + " | ".join(labels[k] for k in keys)
        + " | "
        + " | ".join(f"rqpool ÷ {labels[k]}" for k in others)
        + " |",
        "| --- " * (1 + len(keys) + len(others)) + "|",
    ]
    for label, fmt, values in rows(results):
        if not any(values(k) for k in keys):
            continue  # a phase or batch this run did not measure
        mine = median(values(ME))
        cells = [cell(values(k), fmt) for k in keys]
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + " | "
            + " | ".join(ratio(mine, median(values(k))) for k in others)
            + " |"
        )
    lines += ["", "| target (issues 6, 15, 17) | measured | met |", "| --- | --- | --- |"]
    for text, measured, ok in targets(results):
        lines.append(f"| {text} | {measured} | {'n/a' if ok is None else ('yes' if ok else '**no**')} |")
    before, after = results["machine_before"], results.get("machine_after", {})
    versions = ", ".join(f"{k} {v}" for k, v in before["versions"].items())
    lines += [
        "",
        f"Cells: median (min-max) of {settings['repeats']} runs"
        + (f" ({settings['big_repeats']} at the largest N)" if settings["big_repeats"] != settings["repeats"] else "")
        + f"; app state {settings['state_mb']:.0f} MB loaded at `django.setup()`; {settings['jobs']} jobs per batch.",
        f"Machine: {before['cpu']}, {before['cores']} cores, {before['memory_gib']} GiB, Linux {before['kernel']}; "
        f"Python {before['python']}, {versions}, redis-server {before.get('redis', '?')}.",
        f"Load average before: {before['load_average']}, after: {after.get('load_average', '?')}; "
        f"run took {results.get('duration_s', 0) / 60:.1f} min.",
        "",
    ]
    if plot_name:
        lines += [f"![total memory against N]({plot_name})", ""]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = results["contenders"]
    f = Figures(results)
    sizes = sorted({int(n) for per in results.get("idle_memory", {}).values() for n in per})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, field, title in zip(axes, ("pss", "uss"), ("total PSS at idle", "total USS at idle"), strict=True):
        for key, label in labels.items():
            points = [(n, spread(v)) for n in sizes if (v := f.idle_memory(key, n, field))]
            if not points:
                continue
            xs = [n for n, _ in points]
            mids = [s[0] for _, s in points]
            errors = [[s[0] - s[1] for _, s in points], [s[2] - s[0] for _, s in points]]
            ax.errorbar(xs, mids, yerr=errors, marker="o", capsize=3, label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.set_xlabel("workers (N)")
        ax.set_ylabel("MiB (log scale)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Memory of all processes, app with {results['settings']['state_mb']:.0f} MB of state")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(results: dict[str, Any], out: Path) -> None:
    """results.md, and memory.png when the run measured idle memory (the start-up phase)."""
    plot_name = "memory.png" if results.get("idle_memory") else None
    if plot_name:
        plot(results, out / plot_name)
    (out / "results.md").write_text(markdown(results, plot_name))
