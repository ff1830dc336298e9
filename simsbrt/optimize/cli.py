"""``simsbrt plan``: optimise a uniform, SIB or uniformly escalated plan and write PLAN.h5."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from simsbrt.errors import SpecError
from simsbrt.io.outputs import check_output_file

BACKENDS = ["cpu", "cuda", "cudasim", "auto"]


def _stage_line(quiet: bool):
    """One line per stage on stderr (work after the progress display has closed); nothing when quiet."""
    def show(message: str) -> None:
        if not quiet:
            print(f"simsbrt plan: {message}", file=sys.stderr, flush=True)
    return show


def load_phantom_source(source: str):
    """A phantom from PHANTOM.h5, SPEC.toml or a built-in name."""
    path = Path(source)
    if path.suffix in (".h5", ".hdf5"):
        from simsbrt.io.phantom_h5 import read_phantom

        if not path.is_file():
            raise SpecError("phantom", f"file not found: {path}")
        return read_phantom(path)
    from simsbrt.phantom import build_phantom, load_spec

    return build_phantom(load_spec(source))


def check_protocol(settings, phantom=None, modes=("sib",)) -> tuple[str, ...]:
    """Fail fast on a protocol the modes cannot be planned under, or that does not fit the phantom (before the
    influence matrix is computed); returns notes on optional structures the phantom lacks."""
    from simsbrt.optimize.protocol_numbers import check_phantom, mode_protocol

    for mode in modes:
        mode_protocol(settings.protocol, mode)
    if phantom is None:
        return ()
    return check_phantom(settings.protocol, phantom.structures, f"phantom {phantom.spec.name}")


def run_plan(args) -> int:
    from simsbrt.geometry.arcs import default_arc_set, load_arc_set
    from simsbrt.io.plan_h5 import write_plan
    from simsbrt.optimize.plans import PlanSettings, make_plan, prepare_plan_inputs
    from simsbrt.optimize.search import search_fields
    from simsbrt.progress import Progress, plan_steps, step

    if args.out.suffix not in (".h5", ".hdf5"):
        raise SpecError("out", f"the plan file needs a .h5 suffix, got {args.out}")
    check_output_file(args.out, [args.phantom, args.arcs])
    settings = PlanSettings(cord_prv_limit_gy=args.cord_prv_limit_gy, n_bisections=args.search_steps,
                            **search_fields(args.search_method), boost_policy=args.boost_policy,
                            protocol=args.protocol)
    check_protocol(settings, modes=(args.mode,))
    t0 = time.perf_counter()
    phantom = load_phantom_source(args.phantom)
    phantom_s = time.perf_counter() - t0
    for note in check_protocol(settings, phantom, (args.mode,)):
        print(f"simsbrt plan: {note}", file=sys.stderr, flush=True)
    arc_set = load_arc_set(args.arcs) if args.arcs else default_arc_set()
    with Progress("plan", 1 + plan_steps(args.mode, settings.n_bisections), quiet=args.quiet) as progress:
        progress(f"radiological depths and influence matrix of {phantom.spec.name} "
                 f"({phantom.grid.n_voxels} voxels) ...")
        inputs = prepare_plan_inputs(phantom, arc_set, args.backend)
        step(progress, f"{inputs.influence.n_voxels} rows x {inputs.influence.n_beamlets} beamlets in "
                       f"{inputs.timings_s['dose_s']:.1f} s; optimising ({args.mode}) ...")
        result = make_plan(inputs, args.mode, settings, progress)
    t0 = time.perf_counter()
    write_plan(args.out, result, inputs, settings)
    result.timings_s.update({"phantom_s": phantom_s, "write_s": time.perf_counter() - t0})
    summary = result.summary()
    summary["out"] = str(args.out)
    if getattr(args, "deliverable", False):
        from simsbrt.delivery.cli import deliverable_plan

        summary["deliverable"] = deliverable_plan(inputs, result, settings, args.out, args, _stage_line(args.quiet))
    if args.json:
        from simsbrt.cli import print_json

        print_json(summary)
        return 0
    print(format_plan(summary, result))
    if "deliverable" in summary:
        from simsbrt.delivery.cli import format_deliverable

        print(format_deliverable(summary["deliverable"]))
    return 0


def format_plan(summary: dict, result) -> str:
    lines = [f"plan {summary['mode']} ({summary['backend']} on {summary['device']}): "
             f"{'feasible' if summary['feasible'] else 'NOT feasible'}"]
    if summary["mode"] == "sib":
        lines.append(f"boost policy: {summary.get('boost_policy')}")
    if summary["mode"] == "sib" and summary["boost_goal_gy"] is not None:
        lines.append(f"GTV boost goal reached: {summary['boost_goal_gy']:.2f} Gy")
    if summary["mode"] == "uniform_escalated":
        lines.append(f"reached PTV_Eval prescription (D90%): {summary['prescription_gy']:.2f} Gy")
    if summary["binding_limits"]:
        lines.append("binding limit(s): " + "; ".join(summary["binding_limits"]))
    if summary.get("search_stop") and summary["mode"] != "uniform":
        lines.append(f"search: {summary['search_stop']}")
    lines.append("")
    lines.append(result.evaluation.format_table())
    lines.append("")
    lines.append("timing: " + ", ".join(f"{k} {v:.2f} s" for k, v in summary["timing_s"].items()))
    lines.append(f"wrote {summary['out']}")
    return "\n".join(lines)


def add_planning_arguments(p, out_help: str, limit_scope: str = "", phantom_optional: bool = False) -> None:
    """The arguments that `plan`, `compare` and `teach` share: phantom source, output, arcs, backend, limits."""
    from simsbrt.optimize.plans import PlanSettings
    from simsbrt.optimize.protocol_numbers import DEFAULT_PROTOCOL
    from simsbrt.optimize.sib import BOOST_POLICIES
    from simsbrt.optimize.search import INTERPOLATE_TOLERANCE_GY, SEARCH_METHODS
    from simsbrt.ranges import option

    p.add_argument("phantom", help="SPEC.toml, a built-in phantom name, or PHANTOM.h5",
                   **({"nargs": "?", "default": None} if phantom_optional else {}))
    p.add_argument("--out", required=True, type=Path, help=out_help)
    p.add_argument("--arcs", default=None, help="ARCS.toml (default: two coplanar full arcs, 4 degrees)")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="cpu | cuda | cudasim (the CUDA kernels in the Numba simulator: tiny cases only) | auto "
                        "(default: $SIMSBRT_BACKEND, else auto)")
    p.add_argument("--cord-prv-limit-gy", type=option("cord_prv_limit_gy"), default=None,
                   help=f"SpinalCord_PRV02 D0.03cc limit{limit_scope} (default: the protocol's; sib_trial: 25 Gy)")
    p.add_argument("--search-steps", type=option("search_steps"), default=5,
                   help="inner steps of the boost / escalation search, at most (after its two end steps)")
    p.add_argument("--search-method", choices=SEARCH_METHODS, default=PlanSettings().search_method,
                   help="where the search's inner steps go: bisection (default) = the middle of the bracket; "
                        f"interpolate = where the binding limits' margins cross zero, stopping at a "
                        f"{INTERPOLATE_TOLERANCE_GY:g} Gy bracket (fewer steps when the steps are well converged)")
    p.add_argument("--boost-policy", choices=BOOST_POLICIES, default=PlanSettings().boost_policy,
                   help="SIB boost search: optimal_window = highest boost that also keeps the protocol's optimal "
                        "ceilings, as the trial planned (default; sib_trial: GTV D2%% and PTV_Eval D2%% <= 48 Gy); "
                        "max = highest boost within every mandatory limit")
    p.add_argument("--protocol", default=DEFAULT_PROTOCOL, metavar="NAME|FILE",
                   help="dose protocol: a built-in name (`simsbrt protocol list`) or a TOML file; every planning "
                        "number comes from it; the uniform plans use its comparator (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true",
                   help="no progress display on stderr (default: a progress bar with the time left on a terminal, "
                        "one line per stage otherwise)")


def register(sub) -> None:
    p = sub.add_parser("plan", help="optimise a uniform / SIB / uniformly escalated plan and write PLAN.h5")
    p.add_argument("--mode", required=True, choices=["sib", "uniform", "uniform_escalated"])
    add_planning_arguments(p, out_help="output PLAN.h5")
    from simsbrt.delivery.cli import add_deliverable_arguments

    add_deliverable_arguments(p)
    p.set_defaults(func=run_plan)
