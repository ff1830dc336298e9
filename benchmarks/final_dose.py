"""Final-dose benchmark: the exact final dose of each plan against the optimiser's dose, and what it costs.

For t10_body (default: 2 mm grid, two full arcs at 4 degrees, 2.5 mm beamlets) it plans the three modes on
one influence matrix, as ``simsbrt compare`` does, and prints

1. per plan: wall time, optimisation time, the optimisation matrix build (problem_s: built once and
   reused by the later plans), the exact final dose (time, voxels, proven truncation bound, correction
   rounds), the verdict and GTV D50% on the exact dose;
2. per plan: the difference final - optimiser (Gy) of the reported DVH metrics, both doses of the same
   final weights (the exact dose and the optimisation matrix's D w);
3. the exact final dose alone, timed on the chosen SIB weights: first call (radiological depths traced)
   and a later call (depths reused), median of the repeats.

    python benchmarks/final_dose.py [--spacing-mm 2.0] [--backend cpu] [--search-steps 5] [--repeats 2]
    python benchmarks/final_dose.py --dose-only      # table 3 alone, on random (exponential) weights, no plans
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import git_commit, machine_line, peak_rss_mib, print_table, timed_runs  # noqa: E402

from simsbrt.geometry.arcs import default_arc_set  # noqa: E402
from simsbrt.optimize.correction import DIFFERENCE_METRICS  # noqa: E402
from simsbrt.optimize.plans import MODES, PlanSettings, make_plan, prepare_plan_inputs  # noqa: E402
from simsbrt.phantom import build_phantom, load_spec  # noqa: E402


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phantom", default="t10_body")
    ap.add_argument("--spacing-mm", type=float, default=2.0)
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--search-steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dose-only", action="store_true", help="time the exact final dose alone (no influence matrix, "
                                                               "no plans) on random weights")
    args = ap.parse_args()

    print(f"# command: python benchmarks/final_dose.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"# commit {git_commit()}; {machine_line()}; load average (1/5/15 min) at start {_load()}")
    print(f"# {args.phantom}, {args.spacing_mm} mm grid, two full arcs (4 deg), 2.5 mm beamlets; backend {args.backend}")
    spec = load_spec(args.phantom)
    if args.spacing_mm != spec.grid.spacing_mm:
        spec = spec.with_spacing(args.spacing_mm)
    phantom = build_phantom(spec)
    if args.dose_only:
        import numpy as np

        from simsbrt.geometry.beamlets import build_beamlets

        beamlets = build_beamlets(default_arc_set(), phantom.grid, phantom.structures["PTV"])
        weights = np.random.default_rng(0).exponential(1.0, beamlets.n_beamlets)
        time_final_dose(phantom, beamlets, weights, args, "random exponential weights")
        return 0
    t0 = time.perf_counter()
    inputs = prepare_plan_inputs(phantom, default_arc_set(), args.backend)
    im = inputs.influence
    print(f"# influence {im.n_voxels} rows x {im.n_beamlets} beamlets, {im.nnz} non-zeros, "
          f"{time.perf_counter() - t0:.1f} s; body voxels {int(phantom.structures['Body'].sum())}")
    settings = PlanSettings(n_bisections=args.search_steps)
    progress = lambda msg: print(f"  {msg}", file=sys.stderr, flush=True)  # noqa: E731
    plans, diffs, results = [], [], {}
    for mode in MODES:
        t0 = time.perf_counter()
        result = make_plan(inputs, mode, settings, progress)
        wall = time.perf_counter() - t0
        results[mode] = result
        fd, t = result.final_dose, result.timings_s
        plans.append({"mode": mode, "plan_s": f"{wall:.1f}", "optimise_s": f"{t['optimise_s']:.1f}",
                      "problem_s": f"{t['problem_s']:.1f}", "final_dose_s": f"{t.get('final_dose_s', 0.0):.1f}",
                      "voxels": fd["n_voxels"], "bound_rel": fd["truncation_bound_rel"],
                      "corr_rounds": fd["correction_rounds"], "iters": result.n_iterations,
                      "GTV_D50": f"{result.metrics['GTV']['D50%']:.2f}",
                      "feasible": "yes" if result.feasible else "no: " + "; ".join(result.binding_limits),
                      "load": _load()})
        print(f"# {mode}: " + ", ".join(f"{k} {v}" for k, v in plans[-1].items()), flush=True)
        diffs.append({"mode": mode, **{f"{s} {m}": ("-" if result.final_minus_optimiser_gy.get(f"{s} {m}") is None
                                                    else f"{result.final_minus_optimiser_gy[f'{s} {m}']:+.3f}")
                                       for s, m in DIFFERENCE_METRICS}})
    print("\n## 1. plans (every reported dose: the exact final dose)")
    print_table(plans, list(plans[0]))
    print("\n## 2. final - optimiser dose of the same final weights (Gy)")
    print_table(diffs, list(diffs[0]))

    time_final_dose(phantom, im.beamlets, results["sib"].weights, args, "sib weights")
    return 0


def time_final_dose(phantom, beamlets, weights, args, what: str) -> None:
    """Table 3: the exact final dose alone, first call (depths traced) and later calls (depths reused)."""
    from simsbrt.dose.final import DoseGeometry, final_dose

    def fresh():
        geometry = DoseGeometry.build(phantom, beamlets, args.backend)
        final_dose(phantom, beamlets, weights, geometry=geometry)
        return geometry

    fresh_s, fresh_runs, geometry = timed_runs(fresh, repeats=args.repeats, warmup=0)
    again_s, again_runs, fd = timed_runs(lambda: final_dose(phantom, beamlets, weights, geometry=geometry),
                                         repeats=args.repeats, warmup=0)
    print(f"\n## 3. exact final dose alone ({what}; median of the runs listed)")
    print_table([{"call": "first (depths traced)", "time_s": f"{fresh_s:.1f}",
                  "runs_s": "/".join(f"{x:.1f}" for x in fresh_runs)},
                 {"call": "later (depths reused)", "time_s": f"{again_s:.1f}",
                  "runs_s": "/".join(f"{x:.1f}" for x in again_runs)}], ["call", "time_s", "runs_s"])
    print(f"# {fd.n_voxels} voxels (body and every structure), backend {fd.backend}, truncation bound "
          f"{fd.bound_rel_max:.2g} of the dose (limit 2^-26 = 1.5e-08), {fd.n_recomputed} voxels recomputed")
    print(f"# peak RSS {peak_rss_mib():.0f} MiB; load average at end {_load()}")


if __name__ == "__main__":
    sys.exit(main())
