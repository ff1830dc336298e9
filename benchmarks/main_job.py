"""The main job as a newcomer runs it: `simsbrt compare <phantom>` end to end, timed from outside.

Each run is a fresh process (imports, the numba kernels loaded from their on-disk cache, influence
matrix, the three plans, their exact final doses, every output file), exactly the README command.
One untimed run first fills the kernel cache (a fresh checkout compiles once; that compile is
reported separately, never hidden in the median). Prints per run: wall time, the process's CPU time
in user and kernel mode (sys: mostly first touches of fresh memory, benchmarks/memory_first_touch.py),
its peak memory, the load average, and each plan's verdict and GTV D50% on its exact final dose, then the
median.

    python benchmarks/main_job.py                      # t10_body, 3 timed runs
    python benchmarks/main_job.py --repeats 1 --no-warmup
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import git_commit, machine_line, print_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PLANS = ("uniform", "uniform_escalated", "sib")


def simsbrt_command() -> list[str]:
    """The installed console script next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("simsbrt")
    return [str(script)] if script.exists() else [sys.executable, "-m", "simsbrt.cli"]


def run_once(phantom: str, extra: list[str]) -> dict:
    """One `simsbrt compare` in a fresh process; wall time, child peak RSS, load, plan verdicts."""
    out = Path(tempfile.mkdtemp(prefix="simsbrt_main_job_"))
    try:
        command = [*simsbrt_command(), "compare", phantom, "--out", str(out / "run"), *extra]
        load0 = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        load1 = os.getloadavg()[0]
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak = after.ru_maxrss / 1024.0
        row = {"rc": proc.returncode, "wall_s": wall, "load_start": load0, "load_end": load1, "peak_mib": peak,
               "user_s": after.ru_utime - before.ru_utime, "sys_s": after.ru_stime - before.ru_stime,
               "stderr": proc.stderr}
        doc_path = out / "run" / "comparison.json"
        if proc.returncode == 0 and doc_path.exists():
            plans = json.loads(doc_path.read_text())["plans"]
            for mode in PLANS:
                p = plans.get(mode, {})
                row[f"{mode}_feasible"] = p.get("feasible")
                row[f"{mode}_d50"] = (p.get("metrics", {}).get("GTV", {}) or {}).get("D50%")
                row[f"{mode}_prv"] = (p.get("metrics", {}).get("SpinalCord_PRV02", {}) or {}).get("D0.03cc")
                row[f"{mode}_plan_s"] = p.get("timing_s", {}).get("plan_s")
                row[f"{mode}_final_dose_s"] = p.get("timing_s", {}).get("final_dose_s")
            row["breakdown"] = time_breakdown(plans)
        return row
    finally:
        shutil.rmtree(out, ignore_errors=True)


def time_breakdown(plans: dict) -> str:
    """Where a run's time went, from its comparison.json: the stages built once (in the first plan's timings)
    and each plan's optimisation time, L-BFGS iterations and search steps."""
    t = {}
    for p in plans.values():
        for key, value in p.get("timing_s", {}).items():
            t[key] = max(t.get(key, 0.0), value)
    # dose_s: the influence matrix, with the depth trace of every body voxel when one ran first (depth_trace_s,
    # shared with the exact final-dose pass, which then only sums the doses)
    once = [("depth trace of the body", "depth_trace_s"), ("influence matrix (with the depth trace)", "dose_s"),
            ("optimisation matrix", "problem_s"), ("truncated copy", "truncation_s"),
            ("exact final-dose pass", "final_dose_s")]
    parts = [f"{label} {t[key]:.1f} s" for label, key in once if key in t]
    for mode in PLANS:
        p = plans.get(mode)
        if p:
            parts.append(f"{mode}: optimise {p['timing_s'].get('optimise_s', 0.0):.1f} s, {p.get('n_iterations')} "
                         f"iterations, {len(p.get('search', []))} search steps")
    return "; ".join(parts)


def fmt(value, digits=2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phantom", default="phantoms/t10_body.toml")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-warmup", action="store_true", help="skip the untimed first run (kernel cache already warm)")
    ap.add_argument("--print-stages", action="store_true", help="print the stage lines of the last run")
    args, extra = ap.parse_known_args(argv)
    print(f"main job benchmark: simsbrt compare {args.phantom} {' '.join(extra)} (fresh process per run)")
    print(f"{machine_line()} | commit {git_commit()} | load average at start {os.getloadavg()[0]:.2f}")
    print(f"command: python benchmarks/main_job.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    if not args.no_warmup:
        warm = run_once(args.phantom, extra)
        print(f"untimed first run (fills the numba kernel cache; a fresh checkout pays this once): "
              f"{warm['wall_s']:.1f} s, rc {warm['rc']}")
    rows, last = [], None
    for k in range(args.repeats):
        last = run_once(args.phantom, extra)
        row = {"run": k + 1, "rc": last["rc"], "wall_s": fmt(last["wall_s"], 1), "user_s": fmt(last["user_s"], 1),
               "sys_s": fmt(last["sys_s"], 1), "peak_MiB": fmt(last["peak_mib"], 0),
               "load": f"{last['load_start']:.2f}->{last['load_end']:.2f}"}
        for mode in PLANS:
            row[f"{mode} ok"] = fmt(last.get(f"{mode}_feasible"))
            row[f"{mode} D50"] = fmt(last.get(f"{mode}_d50"))
            row[f"{mode} s"] = fmt(last.get(f"{mode}_plan_s"), 1)
        rows.append(row)
        sys.stdout.flush()
    columns = list(rows[0].keys())
    print_table(rows, columns)
    walls = [float(r["wall_s"]) for r in rows if r["rc"] == 0]
    if walls:
        print(f"median wall {statistics.median(walls):.1f} s over {len(walls)} run(s) (min {min(walls):.1f}, "
              f"max {max(walls):.1f}); exact final dose per plan (s) in the last run (one pass over the voxels "
              f"shared by the plans, plus any correction round of its own): "
              + ", ".join(f"{m} {fmt(last.get(f'{m}_final_dose_s'), 1)}" for m in PLANS))
    if last is not None and last.get("breakdown"):
        print(f"last run: {last['breakdown']}")
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    if args.print_stages and last is not None:
        print("--- stage lines of the last run (stderr)")
        print(last["stderr"].rstrip())
    return 0 if walls and len(walls) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
