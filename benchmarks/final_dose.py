"""Final-dose benchmark: the exact final dose of each plan against the optimiser's dose, and what it costs.

For t10_body (default: 2 mm grid, two full arcs at 4 degrees, 2.5 mm beamlets) it plans the three modes on
one influence matrix, as ``simsbrt compare`` does, and prints

1. per plan: wall time, optimisation time, the optimisation matrix build (problem_s: built once and
   reused by the later plans), the exact final dose (time, voxels, proven truncation bound, correction
   rounds), the verdict and GTV D50% on the exact dose;
2. per plan: the difference final - optimiser (Gy) of the reported DVH metrics, both doses of the same
   final weights (the exact dose and the optimisation matrix's D w);
3. the exact final dose alone, timed on the chosen SIB weights, before / after in one run: the depth trace on
   its own (per voxel, before; by grid columns, after), then the dose with the per-voxel kernel (before) and the column kernel (after), median of the
   repeats; a comparison's first plan pays trace + dose, each later plan (and correction round) the dose; and
   the doses of three weight vectors in one pass (final_doses, as compare runs its three plans).

    python benchmarks/final_dose.py [--spacing-mm 2.0] [--backend cpu] [--search-steps 5] [--repeats 2]
    python benchmarks/final_dose.py --dose-only      # table 3 alone, on random (exponential) weights, no plans
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from common import load_average, peak_rss_mib, phantom_at, print_run_header, print_table  # noqa: E402

from simsbrt.dose.final import CHUNK_VOXELS as CHUNK  # noqa: E402
from simsbrt.geometry.arcs import default_arc_set  # noqa: E402
from simsbrt.optimize.correction import DIFFERENCE_METRICS  # noqa: E402
from simsbrt.optimize.plans import MODES, PlanSettings, make_plan, prepare_plan_inputs  # noqa: E402



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

    print_run_header("final_dose.py", sys.argv[1:], args.phantom, args.spacing_mm, args.backend)
    phantom = phantom_at(args.phantom, args.spacing_mm)
    if args.dose_only:
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
                      "load": load_average()})
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
    """Table 3: the exact final dose alone, before / after in one run: the depth trace timed on its own, then the
    dose of the traced depths with the per-voxel kernel (before) and the column kernel (after); a comparison's
    first plan pays the trace and one dose, every later plan (and correction round) one dose."""
    from simsbrt.dose.engine import _drivers
    from simsbrt.dose.final import DoseGeometry, final_dose, final_doses, fluence_maps

    geometry = DoseGeometry.build(phantom, beamlets, args.backend)
    n = len(geometry.voxels)
    drv = _drivers(geometry.backend)
    g = phantom.grid
    grid = (geometry.sources, np.asarray(g.origin_mm, dtype=np.float64), np.asarray(g.spacing_mm, dtype=np.float64),
            np.asarray(g.shape, dtype=np.int64), geometry.density_flat)
    old_s, new_s, same = 0.0, 0.0, True
    for start in range(0, n, CHUNK):   # before: trace_ray per voxel (the influence matrix's); after: by columns
        points = geometry.points(start, min(start + CHUNK, n))
        t0 = time.perf_counter()
        per_voxel = drv.to_host(drv.radiological_depths(points, *grid))
        old_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        by_column = drv.to_host(geometry.depths(drv, start, points))
        new_s += time.perf_counter() - t0
        same = same and np.array_equal(per_voxel, by_column)
    load_after_trace = load_average()
    runs = {"pair": [], "column": []}
    results = {}
    for _ in range(args.repeats):   # the two kernels alternate, so a change of the machine's load hits both
        for kernel in runs:
            t0 = time.perf_counter()
            results[kernel] = final_dose(phantom, beamlets, weights, geometry=geometry, kernel=kernel)
            runs[kernel].append(time.perf_counter() - t0)
    rows = []
    for kernel, times in runs.items():
        median_s = statistics.median(times)
        trace = old_s if kernel == "pair" else new_s
        rows.append({"kernel": kernel + (" (before)" if kernel == "pair" else " (after)"),
                     "dose_s": f"{median_s:.1f}", "runs_s": "/".join(f"{x:.1f}" for x in times),
                     "first_plan_s": f"{trace + median_s:.1f}", "later_plan_s": f"{median_s:.1f}",
                     "three_plans_s": f"{trace + 3 * median_s:.1f}"})
    # after: three plans' doses in one pass (final_doses; the weights above and two more of the same kind)
    others = [np.random.default_rng(seed).permutation(np.asarray(weights, dtype=np.float64)) for seed in (1, 2)]
    passes = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        batch = final_doses(phantom, beamlets, [weights, *others], geometry=geometry)
        passes.append(time.perf_counter() - t0)
    pass_s = statistics.median(passes)
    rows.append({"kernel": "column, 3 plans in one pass (after)", "dose_s": f"{pass_s:.1f}",
                 "runs_s": "/".join(f"{x:.1f}" for x in passes), "first_plan_s": "-", "later_plan_s": "-",
                 "three_plans_s": f"{new_s + pass_s:.1f}"})
    same_in_pass = np.array_equal(batch[0].dose_gy, results["column"].dose_gy)
    box = fluence_maps(beamlets, weights, geometry.cpi, geometry.cell_to_col)[2]
    distinct = int(((box[:, 1] > box[:, 0])).sum())
    print(f"\n## 3. exact final dose alone ({what}; median of the runs listed)")
    print(f"# depth trace (radiological depths, every voxel x {len(geometry.sources)} sources): per voxel (before) "
          f"{old_s:.1f} s, by columns (after) {new_s:.1f} s, {'bit-identical' if same else 'DIFFERENT'}; "
          f"load after it {load_after_trace}")
    print_table(rows, list(rows[0]))
    pair, column = results["pair"], results["column"]
    diff = np.max(np.abs(column.dose_gy.astype(np.float64) - pair.dose_gy)) / max(float(pair.dose_gy.max()), 1e-30)
    print(f"# {n} voxels (body and every structure), {distinct} distinct control points with weight "
          f"({len(geometry.cpi)} in all), backend {column.backend}, truncation bound {column.bound_rel_max:.2g} of the "
          f"dose (limit 2^-26 = 1.5e-08), {column.n_recomputed} voxels recomputed; "
          f"max |column - pair| / max dose = {diff:.1g}; speed-up: depth trace {old_s / new_s:.2f}x, dose "
          f"{statistics.median(runs['pair']) / statistics.median(runs['column']):.2f}x; three plans "
          f"{new_s + 3 * statistics.median(runs['column']):.1f} s one by one vs {new_s + pass_s:.1f} s in one pass, "
          f"the pass's first dose {'bit-identical to' if same_in_pass else 'DIFFERENT from'} its own column dose")
    print(f"# peak RSS {peak_rss_mib():.0f} MiB; load average at end {load_average()}")


if __name__ == "__main__":
    sys.exit(main())
