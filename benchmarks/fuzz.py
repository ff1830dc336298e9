"""Fuzz every input format through the real command line and count the outcomes.

    python benchmarks/fuzz.py --cases 2000 [--seed 1] [--subprocess] [--family "DICOM folders"]

Cases come from tests/fuzz/mutations.py (seeded): mutated phantom specs, arcs, sweeps, protocols,
name maps, numeric options, damaged phantom / plan HDF5 files, damaged DICOM folders and output
paths onto inputs. Each runs ``simsbrt`` in a child process (forked from a warmed parent, or with
--subprocess a fresh interpreter) in its own empty folder under a wall-clock limit. Printed: the
header (command, commit, machine, load), one row per family with the count of every outcome,
totals, then every failing case (family, mutation, outcome, last stderr line).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# GNU OpenMP is not fork-safe: the forked cases use Numba's own work queue (same results)
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
sys.path.insert(0, str(ROOT))

from benchmarks.common import git_commit, machine_line  # noqa: E402
from tests.fuzz.harness import FAILURES, OUTCOMES, run_case  # noqa: E402
from tests.fuzz.mutations import FAMILIES, make_cases  # noqa: E402


def warm_up(assets: Path) -> float:
    """Import the CLI and compile the dose kernels once in this parent (children inherit them)."""
    t0 = time.perf_counter()
    import simsbrt.cli  # noqa: F401
    from simsbrt.geometry.arcs import load_arc_set
    from simsbrt.io.phantom_h5 import read_phantom
    from simsbrt.optimize.plans import prepare_plan_inputs

    prepare_plan_inputs(read_phantom(assets / "phantom.h5"), load_arc_set(assets / "arcs.toml"), "cpu",
                        body_margin_mm=10.0, structure_margin_mm=10.0)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=200)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--family", action="append", choices=sorted(FAMILIES), default=None,
                   help="only these families (repeatable; default all)")
    p.add_argument("--subprocess", action="store_true", help="a fresh interpreter per case (slower)")
    p.add_argument("--workdir", type=Path, default=None, help="keep case folders here (default: a temp folder)")
    p.add_argument("--assets", type=Path, default=None, help="valid inputs built here once (default: in the workdir)")
    p.add_argument("--show", type=int, default=200, help="list at most this many failing cases")
    args = p.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="simsbrt_fuzz_"))
    from tests.fuzz.assets import build_assets

    t_start = time.perf_counter()
    assets = build_assets(args.assets or work / "assets")
    warm_s = 0.0 if args.subprocess else warm_up(assets)
    cases = make_cases(args.cases, args.seed, assets, args.family)
    print(f"--- command: python benchmarks/fuzz.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"# simsbrt fuzz | commit {git_commit()} | {machine_line()}")
    print(f"# load average at start {os.getloadavg()[0]:.2f}; {len(cases)} cases, seed {args.seed}, "
          f"{'fresh interpreter' if args.subprocess else 'forked from a warmed parent'} per case; "
          f"assets + warm-up {time.perf_counter() - t_start:.1f} s")
    outcomes = []
    for n, case in enumerate(cases):
        folder = work / f"case_{n:05d}"
        outcomes.append(run_case(case, folder, subprocess_mode=args.subprocess))
        _restore_permissions(folder)
        shutil.rmtree(folder, ignore_errors=True)
    counts: dict[str, Counter] = {}
    for o in outcomes:
        counts.setdefault(o.case.family, Counter())[o.kind] += 1
    short = {k: k for k in OUTCOMES}
    columns = ["family", "cases", *OUTCOMES, "median_s", "max_s"]
    rows = []
    for family in counts:
        times = sorted(o.seconds for o in outcomes if o.case.family == family)
        rows.append({"family": family, "cases": sum(counts[family].values()),
                     **{short[k]: counts[family][k] for k in OUTCOMES},
                     "median_s": f"{times[len(times) // 2]:.2f}", "max_s": f"{times[-1]:.1f}"})
    total = Counter(o.kind for o in outcomes)
    all_times = sorted(o.seconds for o in outcomes)
    rows.append({"family": "TOTAL", "cases": len(outcomes), **{k: total[k] for k in OUTCOMES},
                 "median_s": f"{all_times[len(all_times) // 2]:.2f}" if all_times else "",
                 "max_s": f"{all_times[-1]:.1f}" if all_times else ""})
    _print_table(rows, columns)
    print(f"# load average at end {os.getloadavg()[0]:.2f}; wall {time.perf_counter() - t_start:.0f} s; "
          f"failures {sum(total[k] for k in FAILURES)}")
    failing = [o for o in outcomes if o.kind in FAILURES]
    if failing:
        print("\nfailing cases (family | mutation | outcome | detail):")
        seen = set()
        for o in failing:
            key = (o.case.family, o.case.name, o.kind)
            if key in seen:
                continue
            seen.add(key)
            if len(seen) > args.show:
                break
            print(f"  {o.case.family} | {o.case.name} | {o.kind} | {o.detail[:200]}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failing else 0


def _restore_permissions(folder: Path) -> None:
    for p in folder.rglob("*") if folder.exists() else ():
        if p.is_dir():
            p.chmod(0o755)


def _print_table(rows, columns) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) if c == "family" else c.rjust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(str(r.get(c, "")).ljust(widths[c]) if c == "family" else str(r.get(c, "")).rjust(widths[c])
                        for c in columns))


if __name__ == "__main__":
    sys.exit(main())
