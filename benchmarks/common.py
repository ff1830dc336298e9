"""Shared helpers for the benchmark scripts: timing medians, peak memory, plain-text tables."""
from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import time
from pathlib import Path


def timed_runs(fn, repeats: int = 3, warmup: int = 1):
    """Run fn warmup times untimed (compiles, caches), then repeats times; return (median_s, all_s, last result)."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, result


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine_line() -> str:
    return f"{platform.node()} | {platform.processor() or platform.machine()} | {os.cpu_count()} cores | Python {platform.python_version()}"


def git_commit() -> str:
    """The checked-out commit (short hash), marked when tracked code differs from it (results files excluded)."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":!benchmarks/results"], cwd=root, capture_output=True, text=True, check=True,
                               timeout=10).stdout.strip()
        return head + (" (uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return "unknown"


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.rjust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(str(r.get(c, "")).rjust(widths[c]) for c in columns))


def load_average() -> str:
    """The 1 / 5 / 15 min load averages, for results headers and footers."""
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def print_run_header(script: str, argv: list[str], phantom: str, spacing_mm: float, backend: str) -> None:
    """The '# command / commit / problem' header of a t10_body planning benchmark."""
    print(f"# command: python benchmarks/{script} {' '.join(argv)}".rstrip())
    print(f"# commit {git_commit()}; {machine_line()}; load average (1/5/15 min) at start {load_average()}")
    print(f"# {phantom}, {spacing_mm} mm grid, two full arcs (4 deg), 2.5 mm beamlets; backend {backend}")


def phantom_at(name: str, spacing_mm: float):
    """A built-in phantom (or spec file) built on the given grid spacing."""
    from simsbrt.phantom import build_phantom, load_spec

    spec = load_spec(name)
    if spacing_mm != spec.grid.spacing_mm:
        spec = spec.with_spacing(spacing_mm)
    return build_phantom(spec)
