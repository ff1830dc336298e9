"""Optimiser speed benchmark: the reference optimiser against the faster settings, in one run.

For t10_body (default: 2 mm grid, two full arcs at 4 degrees, 2.5 mm beamlets) it builds the influence
matrix once, then plans the three modes (as ``simsbrt compare`` does) with each optimiser configuration:

* reference: every lever off: bisection search (5 bisections), the full optimisation matrix, every
             escalation step at full solver options;
* fast:      the reference with the levers of --levers on (default: all three):
             truncation: the optimisation matrix truncated below --frac of each column's peak (--organ-frac
               in the cord PRV / thecal sac rows) with the iterated correction term
               (simsbrt.optimize.truncation);
             interpolate: the interpolating search (simsbrt.optimize.search) stopping at a bracket of
               --tolerance-gy;
             escalation_search: the escalation search's warm-started steps at the search solver options plus
               a final polish;
             search_iter: the search steps capped at --search-iter iterations (the final polish unchanged);
             ring_sampling: the normal-tissue ring's rows on a checkerboard (half of them; built in the first plan).
The PlanSettings defaults are the reference with truncation and escalation_search on.

Per configuration and plan: the plan's wall time and CPU time, the search alone (from the plan's start to the last
search step's verdict), optimisation time, iterations, search steps, the optimiser's non-zeros, the exact
final dose's time, and the plan on its EXACT final dose: GTV D50% / D98%, cord PRV D0.03cc, feasible.

Before timing, shared by both configurations and not in any plan's time: the influence matrix, the
optimisation matrix (merged columns, transposed copy), the final dose's radiological depths and the
kernels' compilation (one short optimisation and one exact dose). The truncated matrix is built inside
the first fast plan (truncation_s). Cached cold optimisations are cleared between configurations.

    python benchmarks/optimiser_speed.py [--spacing-mm 2.0] [--modes uniform,sib,uniform_escalated] [--levers truncation]
    python benchmarks/optimiser_speed.py --reference defaults --levers interpolate   # one lever on today's defaults
    python benchmarks/optimiser_speed.py --reference defaults --levers search_iter --search-iter 80
    python benchmarks/optimiser_speed.py --evaluations-only   # one objective evaluation, full vs truncated matrix

--evaluations-only times one objective evaluation (D x, the penalties, D^T g: one solver iteration's work)
on the full optimisation matrix and on the truncated one (with its correction term), median of --repeats
after one untimed call, and no plans.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_average, peak_rss_mib, phantom_at, print_run_header, print_table, timed_runs  # noqa: E402

from simsbrt.geometry.arcs import default_arc_set  # noqa: E402
from simsbrt.optimize.plans import MODES, PlanSettings, _Planner, make_plan, prepare_plan_inputs  # noqa: E402
from simsbrt.optimize.solvers import SolverOptions  # noqa: E402

COLUMNS = ["config", "mode", "plan_s", "cpu_s", "search_s", "optimise_s", "final_dose_s", "truncation_s", "iterations",
           "steps", "optimiser_nnz", "goal_gy", "GTV_D50", "GTV_D98", "PRV_D0.03cc", "feasible_exact"]


def _cpu_s() -> float:
    """CPU seconds of this process (user + system, every thread): less sensitive than wall time to a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime



LEVERS = ("truncation", "interpolate", "escalation_search", "search_iter", "ring_sampling")


def configurations(args) -> dict:
    """reference = every lever off (the full optimisation matrix, bisection, every escalation step at full
    options; five inner search steps), or with --reference defaults the PlanSettings defaults; fast = the
    reference with the chosen levers on. The PlanSettings defaults
    are the reference with truncation and escalation_search on."""
    reference = PlanSettings(n_bisections=5, search_method="bisection", search_tolerance_gy=0.0,
                             truncation_frac=0.0, truncation_organ_frac=0.0, escalation_step_options="full")
    if args.reference == "defaults":
        reference = PlanSettings()
    levers = {
        "truncation": dict(truncation_frac=args.frac, truncation_organ_frac=args.organ_frac,
                           truncation_rounds=args.rounds),
        "interpolate": dict(search_method="interpolate", search_tolerance_gy=args.tolerance_gy),
        "escalation_search": dict(escalation_step_options="search"),
        "search_iter": dict(search_solver_options=replace(PlanSettings().search_solver_options,
                                                          max_iter=args.search_iter)),
        "ring_sampling": dict(ring_sampling=2),
    }
    chosen = [name for name in args.levers.split(",") if name]
    unknown = sorted(set(chosen) - set(levers))
    if unknown:
        raise SystemExit(f"--levers: unknown {', '.join(unknown)}; choose from {', '.join(LEVERS)}")
    fast = reference
    for name in chosen:
        fast = replace(fast, **levers[name])
    return {"reference": reference, "fast": fast}


def warm_up(inputs) -> None:
    """Build what both configurations share: the optimisation matrix, the depth trace, the compiled kernels."""
    planner = _Planner(inputs, PlanSettings())
    result = planner.problem.optimise(planner.goals, None, "projected_lbfgs", SolverOptions(max_iter=2))
    planner.exact_dose(result.x)


def evaluation_rows(inputs, settings, repeats: int) -> list[dict]:
    """One objective evaluation on the full and on the truncated optimisation matrix (median of repeats)."""
    from simsbrt.optimize.correction import CorrectedOperator
    from simsbrt.optimize.plans import ORGAN_STRUCTURES
    from simsbrt.optimize.truncation import truncate

    planner = _Planner(inputs, settings)
    problem, goals = planner.problem, planner.goals.with_(boost_gy=43.0)
    x = problem.initial_variables(goals.prescription_gy)
    full = problem.objective(goals)
    t0 = time.perf_counter()
    t = truncate(problem, settings.truncation_frac, ORGAN_STRUCTURES, settings.truncation_organ_frac)
    build_s = time.perf_counter() - t0
    corrected = replace(full, influence=CorrectedOperator(t.operator, problem.operator @ x - t.operator @ x))
    rows = []
    for name, objective, nnz in (("full", full, problem.operator.nnz), ("truncated + correction", corrected, t.nnz)):
        median, times, _ = timed_runs(lambda: objective.value_and_gradient(x), repeats=repeats, warmup=1)
        rows.append({"matrix": name, "nnz": int(nnz), "eval_s": f"{median:.4f}",
                     "spread_s": f"{min(times):.4f}-{max(times):.4f}",
                     "build_s": f"{build_s:.1f}" if name != "full" else "-"})
    return rows


def plan_row(config: str, mode: str, inputs, settings) -> dict:
    marks = []

    def progress(msg):
        marks.append((time.perf_counter(), msg))
        print(f"  [{config} {mode}] {msg}", file=sys.stderr, flush=True)

    t0, cpu0 = time.perf_counter(), _cpu_s()
    result = make_plan(inputs, mode, settings, progress)
    wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    search_marks = [t for t, msg in marks if msg.startswith("search ")]
    t, m = result.timings_s, result.metrics
    nnz = t.get("optimiser_nnz", _Planner(inputs, settings).problem.operator.nnz)
    return {"config": config, "mode": mode, "plan_s": f"{wall:.1f}", "cpu_s": f"{cpu:.1f}",
            "search_s": f"{search_marks[-1] - t0:.1f}" if search_marks else "-",
            "optimise_s": f"{t['optimise_s']:.1f}", "final_dose_s": f"{t.get('final_dose_s', 0.0):.1f}",
            "truncation_s": f"{t['truncation_s']:.1f}" if "truncation_s" in t else "-",
            "iterations": result.n_iterations, "steps": len(result.search), "optimiser_nnz": int(nnz),
            "goal_gy": f"{result.plan_goal_gy:.2f}" if result.plan_goal_gy is not None else "-",
            "GTV_D50": f"{m['GTV']['D50%']:.2f}", "GTV_D98": f"{m['GTV']['D98%']:.2f}",
            "PRV_D0.03cc": f"{m['SpinalCord_PRV02']['D0.03cc']:.2f}",
            "feasible_exact": "yes" if result.feasible else "NO: " + "; ".join(result.evaluation.violated_limits),
            "_steps": " ".join(f"{s.goal_gy:.2f}{'+' if s.acceptable else '-'}({s.n_iterations})" for s in result.search)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phantom", default="t10_body")
    ap.add_argument("--spacing-mm", type=float, default=2.0)
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--frac", type=float, default=0.05, help="fast: truncation below this fraction of a column's peak")
    ap.add_argument("--organ-frac", type=float, default=0.001, help="fast: the same in the cord PRV / thecal sac rows")
    ap.add_argument("--rounds", type=int, default=3, help="fast: correction rounds per optimisation")
    ap.add_argument("--search-iter", type=int, default=80, help="search_iter: the search steps' iteration cap")
    ap.add_argument("--tolerance-gy", type=float, default=0.3, help="fast: stop the search at this bracket width")
    ap.add_argument("--levers", default=",".join(LEVERS), help="fast: the levers on (comma-separated, of "
                                                                 + ", ".join(LEVERS) + ")")
    ap.add_argument("--reference", choices=("off", "defaults"), default="off",
                    help="reference: every lever off, or today's PlanSettings defaults")
    ap.add_argument("--evaluations-only", action="store_true", help="time one objective evaluation, full vs "
                                                                     "truncated matrix; no plans")
    ap.add_argument("--repeats", type=int, default=10, help="--evaluations-only: timed evaluations per matrix")
    args = ap.parse_args()
    modes = [m for m in args.modes.split(",") if m]

    print_run_header("optimiser_speed.py", sys.argv[1:], args.phantom, args.spacing_mm, args.backend)
    phantom = phantom_at(args.phantom, args.spacing_mm)
    t0 = time.perf_counter()
    inputs = prepare_plan_inputs(phantom, default_arc_set(), args.backend)
    im = inputs.influence
    print(f"# influence {im.n_voxels} rows x {im.n_beamlets} beamlets, {im.nnz} non-zeros, "
          f"{time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    if not args.evaluations_only:
        warm_up(inputs)
        print(f"# shared warm-up (optimisation matrix, depth trace, compilation; untimed in the plans): "
              f"{time.perf_counter() - t0:.1f} s")
    configs = configurations(args)
    if args.evaluations_only:
        print(f"# one objective evaluation (D x, penalties, D^T g), median of {args.repeats} after one untimed; "
              f"truncation_frac {args.frac:g}, organ rows {args.organ_frac:g}")
        print_table(evaluation_rows(inputs, configs["fast"], args.repeats), ["matrix", "nnz", "eval_s", "spread_s",
                                                                             "build_s"])
        print(f"# load average at end {load_average()}; peak RSS {peak_rss_mib():.0f} MiB")
        return 0
    for name, s in configs.items():
        print(f"# {name}: search {s.search_method}, {s.n_bisections} inner steps at most, tolerance "
              f"{s.search_tolerance_gy:g} Gy; truncation_frac {s.truncation_frac:g} (organ rows "
              f"{s.truncation_organ_frac:g}), {s.truncation_rounds} rounds; escalation steps at "
              f"{s.escalation_step_options} options; search steps at most {s.search_solver_options.max_iter} "
              f"iterations (ftol {s.search_solver_options.ftol:g}); ring sampling {s.ring_sampling}")
    rows = []
    for name, settings in configs.items():
        for key in [k for k in inputs.cache if isinstance(k, tuple) and k[0] == "cold optimisation"]:
            del inputs.cache[key]
        for mode in modes:
            rows.append(plan_row(name, mode, inputs, settings))
            print(f"# done {name} {mode} (load {load_average()})", flush=True)
    print_table(rows, COLUMNS)
    print("# search steps per plan: goal (Gy), + acceptable / - not, (iterations of the step)")
    for r in rows:
        print(f"#   {r['config']} {r['mode']}: {r['_steps'] or 'no search'}")
    for name in configs:
        total = sum(float(r["plan_s"]) for r in rows if r["config"] == name)
        cpu = sum(float(r["cpu_s"]) for r in rows if r["config"] == name)
        print(f"# {name}: all plans {total:.1f} s wall, {cpu:.1f} s CPU (summed over the plans; the influence matrix "
              "and warm-up not included)")
    print(f"# load average at end {load_average()}; peak RSS {peak_rss_mib():.0f} MiB")
    print("# timings on a shared machine: see the load averages; not idle-machine numbers unless the load is ~0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
