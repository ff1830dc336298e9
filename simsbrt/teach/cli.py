"""``simsbrt teach``: the teaching page on dose gradients (uniform vs SIB) for one phantom."""
from __future__ import annotations

import sys
from pathlib import Path

from simsbrt.errors import SpecError
from simsbrt.ranges import option


def _progress(message: str) -> None:
    print(f"simsbrt teach: {message}", file=sys.stderr, flush=True)


def _levels(text: str) -> tuple[float, ...]:
    from simsbrt.teach.figures import check_levels

    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SpecError("isodose-gy", f"needs comma-separated doses in Gy, got {text!r}") from None
    return check_levels(values)


def run_teach(args) -> int:
    from simsbrt.cli_compare import OUTPUT_NAMES
    from simsbrt.io.outputs import check_output_dir
    from simsbrt.teach.lesson import DATA_FILE, FIGURES, PAGE_FILE, TeachOptions, teach_from_inputs, teach_from_plans

    options = TeachOptions(isodose_gy=_levels(args.isodose_gy) if args.isodose_gy else TeachOptions().isodose_gy,
                           gradient_half_width_mm=args.gradient_half_width_mm)
    check_output_dir(args.out, [args.phantom, args.arcs], input_dirs=[args.plans],
                     writes=(*OUTPUT_NAMES, *FIGURES.values(), DATA_FILE, PAGE_FILE))
    if args.plans is not None:
        name = _phantom_name(args.phantom) if args.phantom is not None else None
        lesson = teach_from_plans(args.plans, args.out, args.cord_prv_limit_gy, _progress, options,
                                  expected_phantom=name)
    else:
        if args.phantom is None:
            raise SpecError("phantom", "needs SPEC.toml, a built-in phantom name or PHANTOM.h5 (or --plans DIR)")
        from simsbrt.cli_compare import check_out_dir, plan_inputs_from_args

        check_out_dir(args.out)
        lesson = teach_from_inputs(*plan_inputs_from_args(args, _progress), args.out, _progress, options)
    if args.json:
        from simsbrt.cli import print_json

        print_json(lesson_summary(lesson))
        return 0
    print(format_lesson(lesson))
    return 0


def _phantom_name(source: str) -> str:
    """The phantom's name without planning (with --plans the phantom only identifies the plans)."""
    if Path(source).suffix in (".h5", ".hdf5"):
        from simsbrt.optimize.cli import load_phantom_source

        return load_phantom_source(source).spec.name
    from simsbrt.phantom import load_spec

    return load_spec(source).name


def lesson_summary(lesson) -> dict:
    doc = lesson.figure_data
    return {"phantom": doc["phantom"], "cord_prv_limit_gy": doc["cord_prv_limit_gy"],
            "falloff": {m: p["falloff"] for m, p in doc["profiles"].items()},
            "gradient": {m: g["stats"] for m, g in doc["gradient"].items()},
            "files": {k: str(v) for k, v in lesson.files.items()}}


def format_lesson(lesson) -> str:
    from simsbrt.teach.lesson import point_volume_note, prv_d003cc_by_plan

    doc = lesson.figure_data
    prv_d003cc = prv_d003cc_by_plan(doc["comparison_table"])
    spacing = doc["spacing_mm"]
    lines = []
    for plan, profile in lesson.profiles.items():
        f = profile.falloff

        def num(v, unit):
            return "n/a" if v is None else f"{v:.2f} {unit}"

        lines.append(f"{plan}: steepest fall-off GTV -> cord {num(f.steepest_gy_per_mm, 'Gy/mm')}, "
                     f"80-20 % of {f.reference_label} ({f.reference_dose_gy:.1f} Gy) over "
                     f"{num(f.distance_high_low_mm, 'mm')}, {f.limit_gy:g} Gy crossing "
                     f"{num(f.limit_to_prv_edge_mm, 'mm')} from the cord PRV edge (< 0: inside); max |grad D| near the cord "
                     f"{lesson.gradient_maps[plan].stats['max_gy_per_mm']:.2f} Gy/mm")
        if prv_d003cc.get(plan) is not None:
            lines.append(f"  {plan}: cord PRV D0.03cc {prv_d003cc[plan]:.2f} Gy")
        note = point_volume_note(f, prv_d003cc.get(plan), spacing[1], spacing[0] * spacing[1] * spacing[2] / 1000.0)
        if note:
            lines.append("  " + note)
    lines.append("wrote " + ", ".join(str(p) for p in lesson.files.values()))
    return "\n".join(lines)


def register(sub) -> None:
    from simsbrt.optimize.cli import add_planning_arguments

    p = sub.add_parser("teach", help="teaching page on dose gradients (uniform vs SIB): figures, "
                                     "figure_data.json, teach.html")
    # with --plans the phantom comes from the stored plans: the positional is optional
    add_planning_arguments(p, out_help="output directory (files in it are replaced atomically)",
                           limit_scope="", phantom_optional=True)
    p.add_argument("--plans", type=Path, default=None,
                   help="draw the uniform.h5 and sib.h5 an earlier `simsbrt compare` wrote here (no planning); "
                        "a phantom given as well must be the plans' phantom; the cord PRV limit defaults to the plans' own")
    p.add_argument("--isodose-gy", default=None, help="isodose levels, comma-separated (default 15,25,30,36,42,45)")
    p.add_argument("--gradient-half-width-mm", type=option("gradient_half_width_mm"), default=30.0,
                   help="half width of the gradient map around the cord (mm)")
    p.set_defaults(func=run_teach)
