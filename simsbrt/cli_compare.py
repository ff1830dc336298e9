"""``simsbrt compare``: uniform, uniform_escalated and sib on one phantom, side by side (issue 5).

The three plans share the phantom, arcs, beam model, organ limits and ONE influence matrix
(prepare_plan_inputs runs once). Written into --out DIR, each file atomically:
  uniform.h5, uniform_escalated.h5, sib.h5   PLAN.h5 of each plan (simsbrt.io.plan_h5)
  dvh.png                                   cumulative DVHs of the three plans
  comparison.csv                            the table (one row per metric, one column per plan)
  comparison.json                           the --json document
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from simsbrt.errors import SpecError
from simsbrt.report.compare import PLAN_ORDER

FILES = {"csv": "comparison.csv", "json": "comparison.json", "figure": "dvh.png"}
OUTPUT_NAMES = (*FILES.values(), *(f"{mode}.h5" for mode in PLAN_ORDER))


@dataclass(frozen=True, eq=False)
class ComparisonRun:
    results: dict          # mode -> PlanResult
    metrics: dict          # mode -> simsbrt.report.compare.PlanMetrics
    table: object          # ComparisonTable
    document: dict         # the JSON document
    files: dict            # kind -> Path


def check_out_dir(out) -> Path:
    """--out must be a directory (created if missing), not an existing file."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpecError("out", f"{out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SpecError("out", f"cannot create directory {out}: {exc.strerror}") from None
    return out


def run_comparison(inputs, settings, out_dir, progress=None, modes=PLAN_ORDER) -> ComparisonRun:
    """Plan every mode on the same prepared inputs, write the plans, table, CSV, JSON and figure."""
    from simsbrt.io.atomic import write_text_atomic
    from simsbrt.io.plan_h5 import write_plan
    from simsbrt.optimize.plans import make_plans, protocol_for
    from simsbrt.report import compare
    from simsbrt.report.dvh_plot import plot_dvh_comparison

    out = check_out_dir(out_dir)
    say = progress or (lambda message: None)
    phantom = inputs.phantom
    masks, voxel_cc = phantom.structures, phantom.grid.voxel_volume_cc
    trial = protocol_for("sib", settings)   # Table 1 with the same organ limits
    per_plan, files = {}, {}

    def write(mode, result):   # each plan's file as soon as it is judged (also when a later plan's search fails)
        files[mode] = out / f"{mode}.h5"
        write_plan(files[mode], result, inputs, settings)
        per_plan[mode] = compare.plan_metrics_for(result.dose_gy, masks, voxel_cc, result.evaluation, trial,
                                                  trial.n_fractions)
        say(f"{mode}: {'feasible' if result.feasible else 'NOT feasible'} in {result.timings_s['plan_s']:.1f} s "
            f"(its search, the shared exact-dose pass and its verdict); wrote {files[mode].name}")

    results = make_plans(inputs, modes, settings, progress, announce=say, on_result=write)
    table = compare.build_table(per_plan, trial.n_fractions)
    files["csv"] = out / FILES["csv"]
    record = protocol_record(settings)
    compare.write_table_csv(files["csv"], table, protocol_comments(record))
    say("drawing the DVH figure ...")
    files["figure"] = plot_dvh_comparison(
        {m: r.dose_gy for m, r in results.items()}, masks, voxel_cc, out / FILES["figure"],
        limits_gy=limit_lines(trial), protocol=trial,
        title=f"{phantom.spec.name}: cumulative DVH, " + " vs ".join(results))
    files["json"] = out / FILES["json"]
    document = compare.comparison_json(
        {m: r.summary() for m, r in results.items()}, per_plan, table,
        {m: files[m].name for m in results},
        phantom=phantom.spec.name, protocol=record, out=str(out), files={k: str(v) for k, v in files.items()})
    write_text_atomic(files["json"], json.dumps(document, indent=2) + "\n")
    return ComparisonRun(results, per_plan, table, document, files)


def protocol_record(settings) -> dict:
    """The protocols of a comparison: the SIB plan's and the uniform plans' (organ limits in force), in full."""
    from simsbrt.optimize.plans import protocol_for

    sib, uniform = protocol_for("sib", settings), protocol_for("uniform", settings)
    return {"name": sib.name, "origin": sib.origin, "comparator": uniform.name,
            "definition": sib.to_dict(), "comparator_definition": uniform.to_dict()}


def protocol_comments(record: dict) -> tuple[str, ...]:
    """The CSV header lines that record the protocols (one JSON object per line)."""
    return (f"protocol: {record['name']} ({record['origin'] or 'given in memory'}); uniform plans: "
            f"{record['comparator']}",
            "protocol_json: " + json.dumps(record["definition"], separators=(",", ":")),
            "comparator_json: " + json.dumps(record["comparator_definition"], separators=(",", ":")))


def limit_lines(protocol) -> dict:
    """Labelled dose lines for DVH figures: cord PRV and thecal sac maxima and the PTV_Eval prescription."""
    from simsbrt.report.compare import CORD_PRV, THECAL_SAC

    from simsbrt.optimize.protocol_numbers import organ_limits_gy

    organs = organ_limits_gy(protocol)
    cord_gy, sac_gy = organs.get(CORD_PRV), organs.get(THECAL_SAC)
    rx_gy = protocol.prescription.dose_gy
    lines = {f"cord PRV {cord_gy:g} Gy": cord_gy} if cord_gy is not None else {}
    if sac_gy == rx_gy:
        lines[f"thecal sac / Rx {sac_gy:g} Gy"] = sac_gy
    else:
        if sac_gy is not None:
            lines[f"thecal sac {sac_gy:g} Gy"] = sac_gy
        lines[f"PTV_Eval Rx {rx_gy:g} Gy"] = rx_gy
    return lines


def plan_inputs_from_args(args, progress, modes=PLAN_ORDER):
    """Settings and the prepared inputs (one influence matrix) from the shared planning arguments."""
    from simsbrt.geometry.arcs import default_arc_set, load_arc_set
    from simsbrt.optimize.cli import check_protocol, load_phantom_source
    from simsbrt.optimize.plans import PlanSettings, prepare_plan_inputs
    from simsbrt.optimize.search import search_fields
    from simsbrt.progress import step

    if args.search_steps < 0:
        raise SpecError("search-steps", f"must be >= 0, got {args.search_steps}")
    settings = PlanSettings(cord_prv_limit_gy=args.cord_prv_limit_gy, n_bisections=args.search_steps,
                            **search_fields(args.search_method), boost_policy=args.boost_policy,
                            protocol=args.protocol)
    check_protocol(settings, modes=modes)
    arc_set = load_arc_set(args.arcs) if args.arcs else default_arc_set()   # cheap checks first
    phantom = load_phantom_source(args.phantom)
    for note in check_protocol(settings, phantom, modes):
        progress(note)
    progress(f"radiological depths and influence matrix of {phantom.spec.name} ({phantom.grid.n_voxels} voxels), "
             "computed once ...")
    inputs = prepare_plan_inputs(phantom, arc_set, args.backend)
    step(progress, f"{inputs.influence.n_voxels} rows x {inputs.influence.n_beamlets} beamlets in "
                   f"{inputs.timings_s['dose_s']:.1f} s")
    return inputs, settings


def run_compare(args) -> int:
    from simsbrt.io.outputs import check_output_dir
    from simsbrt.progress import Progress, plan_steps

    check_output_dir(args.out, [args.phantom, args.arcs], writes=OUTPUT_NAMES)
    out = check_out_dir(args.out)
    total = 1 + sum(plan_steps(mode, args.search_steps) for mode in PLAN_ORDER)
    deliverable = None
    with Progress("compare", total, quiet=getattr(args, "quiet", False)) as progress:
        inputs, settings = plan_inputs_from_args(args, progress)
        run = run_comparison(inputs, settings, out, progress)
        if getattr(args, "deliverable", False):
            from simsbrt.delivery.cli import deliverable_comparison

            deliverable = deliverable_comparison(inputs, settings, run, out, args, progress)
    if args.json:
        from simsbrt.cli import print_json

        print_json(run.document if deliverable is None else {**run.document, "deliverable": deliverable})
        return 0
    print(format_comparison(run))
    if deliverable is not None:
        from simsbrt.delivery.cli import format_deliverable

        print(format_deliverable(deliverable))
    return 0


def format_comparison(run: ComparisonRun) -> str:
    from simsbrt.report.compare import format_table

    lines = []
    for mode, r in run.results.items():
        extra = ""
        if mode == "sib" and r.boost_goal_gy is not None:
            extra = f", GTV boost goal {r.boost_goal_gy:.2f} Gy"
        elif mode == "uniform_escalated":
            extra = f", PTV_Eval prescription reached {r.prescription_gy:.2f} Gy"
        verdict = "feasible" if r.feasible else "NOT feasible: " + "; ".join(r.evaluation.violated_limits)
        lines.append(f"{mode} ({r.protocol.name}): {verdict}{extra}")
    lines += ["", format_table(run.table), ""]
    lines.append("wrote " + ", ".join(str(p) for p in run.files.values()))
    return "\n".join(lines)


def register(sub) -> None:
    from simsbrt.optimize.cli import add_planning_arguments

    p = sub.add_parser("compare", help="plan uniform, uniform_escalated and sib on one phantom; table, CSV, DVH plot")
    add_planning_arguments(p, out_help="output directory (files in it are replaced atomically)",
                           limit_scope=" for all three plans")
    from simsbrt.delivery.cli import add_deliverable_arguments

    add_deliverable_arguments(p)
    p.set_defaults(func=run_compare)
