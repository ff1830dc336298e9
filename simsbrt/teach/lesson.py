"""The teaching page: uniform and SIB plans of one phantom -> figures, figure_data.json, teach.html.

Two entry points:
  teach_from_inputs(inputs, settings, out)   plans uniform and sib on one influence matrix
                                             (simsbrt.cli_compare.run_comparison), then draws;
  teach_from_plans(plans_dir, out)           reads uniform.h5 and sib.h5 that `simsbrt compare`
                                             wrote and only draws (protocol rows re-evaluated
                                             from the stored doses with the plans' organ limits).
Files written into out (each atomically): dose_axial.png, dose_sagittal.png, profile_ap.png,
gradient_cord.png, dvh.png, figure_data.json, teach.html (plus the run_comparison files when
planning).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simsbrt.errors import SpecError
from simsbrt.teach import html as page_html
from simsbrt.teach.figures import DEFAULT_ISODOSE_GY, VIEW_HALF_MM, axial_slice, check_levels, sagittal_slice
from simsbrt.teach.gradient import DEFAULT_HALF_WIDTH_MM, gradient_map
from simsbrt.teach.profile import ap_profile

TEACH_MODES = ("uniform", "sib")
FIGURES = {"axial": "dose_axial.png", "sagittal": "dose_sagittal.png", "profile": "profile_ap.png",
           "gradient": "gradient_cord.png", "dvh": "dvh.png"}
DATA_FILE, PAGE_FILE = "figure_data.json", "teach.html"
CORD_PRV = "SpinalCord_PRV02"


@dataclass(frozen=True)
class TeachOptions:
    isodose_gy: tuple[float, ...] = DEFAULT_ISODOSE_GY
    view_half_mm: float = VIEW_HALF_MM
    gradient_half_width_mm: float = DEFAULT_HALF_WIDTH_MM

    def __post_init__(self):
        object.__setattr__(self, "isodose_gy", check_levels(self.isodose_gy))
        for name in ("view_half_mm", "gradient_half_width_mm"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise SpecError(name.replace("_", "-"), f"must be > 0 mm, got {v}")


@dataclass(frozen=True, eq=False)
class Lesson:
    files: dict                  # kind -> Path
    figure_data: dict            # the figure_data.json document
    slices: dict                 # (view, plan) -> DoseSlice
    profiles: dict               # plan -> ProfileData
    gradient_maps: dict          # plan -> GradientMap


def teach_from_inputs(inputs, settings, out_dir, progress=None, options: TeachOptions = TeachOptions()) -> Lesson:
    """Plan uniform and sib (run_comparison, one influence matrix), then write the lesson."""
    from simsbrt.cli_compare import run_comparison

    run = run_comparison(inputs, settings, out_dir, progress, modes=TEACH_MODES)
    doses = {m: r.dose_gy for m, r in run.results.items()}
    evaluations = {m: r.evaluation for m, r in run.results.items()}
    return write_lesson(inputs.phantom, doses, evaluations, run.table, out_dir, _trial_protocol(settings),
                        options, progress, dvh_path=run.files["figure"], plan_files={m: run.files[m] for m in doses})


def teach_from_plans(plans_dir, out_dir, cord_prv_limit_gy: float | None = None, progress=None,
                     options: TeachOptions = TeachOptions(), expected_phantom: str | None = None) -> Lesson:
    """Draw the lesson from the uniform.h5 and sib.h5 of an earlier `simsbrt compare` (no planning).
    expected_phantom: when given, the plans' phantom must carry this name."""
    from simsbrt.cli_compare import check_out_dir
    from simsbrt.io.plan_h5 import read_plan
    from simsbrt.optimize.plans import PlanSettings
    from simsbrt.report import compare

    plans_dir = Path(plans_dir)
    stored = {}
    for mode in TEACH_MODES:
        path = plans_dir / f"{mode}.h5"
        if not path.is_file():
            raise SpecError("plans", f"{path} not found (run `simsbrt compare ... --out {plans_dir}` first)")
        stored[mode] = read_plan(path)
    phantom = stored["sib"].phantom
    _check_same_phantom(stored)
    if expected_phantom is not None and phantom.spec.name != expected_phantom:
        raise SpecError("phantom", f"the plans in {plans_dir} were made on {phantom.spec.name!r}, "
                                   f"not {expected_phantom!r}")
    saved = stored["sib"].settings
    settings = PlanSettings(cord_prv_limit_gy=cord_prv_limit_gy if cord_prv_limit_gy is not None
                            else saved.get("cord_prv_limit_gy"),
                            thecal_sac_limit_gy=saved.get("thecal_sac_limit_gy"),
                            protocol=_recorded_protocol(stored["sib"]))
    out = check_out_dir(out_dir)
    masks, voxel_cc = phantom.structures, phantom.grid.voxel_volume_cc
    trial = _trial_protocol(settings)
    doses = {m: np.asarray(p.dose_gy) for m, p in stored.items()}
    evaluations = {m: _reevaluate(m, p, settings, masks, voxel_cc) for m, p in stored.items()}
    per_plan = {m: compare.plan_metrics_for(doses[m], masks, voxel_cc, evaluations[m], trial, trial.n_fractions)
                for m in TEACH_MODES}
    table = compare.build_table(per_plan, trial.n_fractions)
    return write_lesson(phantom, doses, evaluations, table, out, trial, options, progress,
                        plan_files={m: plans_dir / f"{m}.h5" for m in TEACH_MODES})


def _recorded_protocol(plan_file):
    """The SIB plan's protocol as recorded in its PLAN.h5 (files written before it was recorded: sib_trial)."""
    from simsbrt.optimize.protocol_numbers import DEFAULT_PROTOCOL
    from simsbrt.protocols.loader import protocol_from_dict

    doc = plan_file.summary.get("protocol_definition")
    return DEFAULT_PROTOCOL if doc is None else protocol_from_dict(doc)


def _reevaluate(mode, plan_file, settings, masks, voxel_cc):
    from simsbrt.evaluate import evaluate_protocol
    from simsbrt.optimize.plans import protocol_for

    protocol = protocol_for(mode, settings, plan_file.summary.get("prescription_gy"))
    return evaluate_protocol(protocol, plan_file.dose_gy, masks, voxel_cc)


def _check_same_phantom(stored) -> None:
    a, b = (stored[m].phantom for m in TEACH_MODES)
    same = a.grid == b.grid and set(a.structures) == set(b.structures) and all(
        np.array_equal(a.structures[n], b.structures[n]) for n in a.structures)
    if not same:
        raise SpecError("plans", "uniform.h5 and sib.h5 were planned on different phantoms")


def _trial_protocol(settings):
    """The trial's Table 1 with the settings' organ limits: the limits the page marks."""
    from simsbrt.optimize.plans import protocol_for

    return protocol_for("sib", settings)


# ------------------------------------------------------------------ figures and page
def write_lesson(phantom, doses: dict, evaluations: dict, table, out_dir, trial_protocol,
                 options: TeachOptions = TeachOptions(), progress=None, dvh_path=None, plan_files=None) -> Lesson:
    """Figure data, figures, figure_data.json and teach.html for the plans in ``doses`` (mode -> Gy).
    trial_protocol: Table 1 with the organ limits in force (its cord PRV limit is the one marked)."""
    from simsbrt.cli_compare import check_out_dir
    from simsbrt.io.atomic import write_text_atomic
    from simsbrt.teach import draw

    say = progress or (lambda message: None)
    out = check_out_dir(out_dir)
    cord_prv_limit_gy = trial_protocol.max_dose_limit_gy(CORD_PRV)
    grid, masks = phantom.grid, phantom.structures
    modes = [m for m in TEACH_MODES if m in doses] + [m for m in doses if m not in TEACH_MODES]
    levels = options.isodose_gy
    say("figure data: slices, profile, gradient ...")
    slices = {}
    for m in modes:
        slices[("axial", m)] = axial_slice(m, doses[m], phantom, levels, half_mm=options.view_half_mm)
        slices[("sagittal", m)] = sagittal_slice(m, doses[m], phantom, levels, half_mm=options.view_half_mm)
    profiles = {m: ap_profile(m, doses[m], grid, masks, cord_prv_limit_gy) for m in modes}
    k = slices[("axial", modes[0])].fixed_index
    maps = {m: gradient_map(m, doses[m], grid, masks, k, options.gradient_half_width_mm) for m in modes}
    vmax = max(float(np.max(doses[m])) for m in modes)

    say("drawing the figures ...")
    name = phantom.spec.name
    files = {}
    for view in ("axial", "sagittal"):
        files[view] = draw.draw_dose_slices([slices[(view, m)] for m in modes], out / FIGURES[view], vmax,
                                            title=f"{name}: {view} dose, " + " vs ".join(modes)
                                            + f" (same colour scale 0-{vmax:.1f} Gy)")
    files["profile"] = draw.draw_profiles([profiles[m] for m in modes], out / FIGURES["profile"],
                                          title=f"{name}: dose along the AP line through the GTV centre "
                                          f"(x = {profiles[modes[0]].x_mm:.1f} mm, z = {profiles[modes[0]].z_mm:.1f} mm)")
    files["gradient"] = draw.draw_gradient_maps([maps[m] for m in modes], out / FIGURES["gradient"],
                                                cord_prv_limit_gy, line_x_mm=profiles[modes[0]].x_mm,
                                                title=f"{name}: dose gradient around the cord")
    files["dvh"] = Path(dvh_path) if dvh_path is not None else _draw_dvh(doses, phantom, out, trial_protocol)
    document = figure_data_document(phantom, modes, slices, profiles, maps, levels, cord_prv_limit_gy, table,
                                    files, plan_files)
    files["data"] = out / DATA_FILE
    write_text_atomic(files["data"], json.dumps(document, indent=1) + "\n")
    files["html"] = out / PAGE_FILE
    write_text_atomic(files["html"], lesson_page(phantom, modes, profiles, maps, evaluations, table, files,
                                                 cord_prv_limit_gy, levels))
    say(f"wrote {files['html']}")
    return Lesson(files, document, slices, profiles, maps)


def _draw_dvh(doses, phantom, out: Path, trial_protocol) -> Path:
    """The DVH figure as `simsbrt compare` draws it (same limit lines)."""
    from simsbrt.cli_compare import limit_lines
    from simsbrt.report.dvh_plot import plot_dvh_comparison

    lines = limit_lines(trial_protocol)
    return plot_dvh_comparison(doses, phantom.structures, phantom.grid.voxel_volume_cc, out / FIGURES["dvh"],
                               limits_gy=lines, protocol=trial_protocol, title=f"{phantom.spec.name}: cumulative DVH, " + " vs ".join(doses))


def figure_data_document(phantom, modes, slices, profiles, maps, levels, limit_gy, table, files, plan_files) -> dict:
    return {
        "phantom": phantom.spec.name, "level": phantom.summary()["level"],
        "spacing_mm": list(phantom.grid.spacing_mm), "plans": list(modes),
        "conventions": {
            "axes": "DICOM LPS: +x patient left, +y posterior, +z superior; arrays [i, j, k] along x, y, z",
            "axial": "radiological view: patient right on the image left, anterior at the top",
            "sagittal": "anterior on the left, superior at the top",
            "profile": "dose[i, :, k] at the voxel centres of the column nearest the GTV centroid (no interpolation)",
            "falloff_reference": "GTV D50% of each plan; 80 % / 20 % points and the limit crossing walk from the "
                                 "GTV centre toward the cord (linear between voxel centres)",
            "gradient": "3-D |grad D| (np.gradient with the spacing in mm) on the axial slice, Gy/mm",
        },
        "isodose_levels_gy": list(levels), "cord_prv_limit_gy": limit_gy,
        "slices": {f"{view}/{m}": slices[(view, m)].to_dict() for (view, m) in slices},
        "profiles": {m: profiles[m].to_dict() for m in modes},
        "gradient": {m: maps[m].to_dict() for m in modes},
        "comparison_table": table.to_dicts(),
        "files": {k: Path(v).name for k, v in files.items()},
        "plan_files": {m: str(p) for m, p in (plan_files or {}).items()},
    }


def _num(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def point_volume_note(falloff, prv_d003cc_gy, spacing_ap_mm: float, voxel_volume_cc: float) -> str | None:
    """One sentence reconciling a limit crossing inside the cord PRV edge (a point on one line) with a
    PRV D0.03cc within the limit (a volume metric over voxel doses); None when nothing needs reconciling."""
    inside_mm = falloff.limit_to_prv_edge_mm
    if inside_mm is None or inside_mm >= 0 or prv_d003cc_gy is None or prv_d003cc_gy > falloff.limit_gy:
        return None
    return (f"Both are true: the {falloff.limit_gy:g} Gy crossing {-inside_mm:.2f} mm inside the cord PRV edge is a "
            "point interpolated between voxel centres on one line, whereas PRV D0.03cc "
            f"({prv_d003cc_gy:.2f} Gy) is the lowest dose in the PRV's hottest 0.03 cm3 "
            f"({0.03 / voxel_volume_cc:.1f} voxels of {voxel_volume_cc:.3f} cm3), each voxel scored at its centre, "
            f"the outermost of which lie half a voxel ({spacing_ap_mm / 2:g} mm) inside the edge.")


def prv_d003cc_by_plan(table_rows) -> dict:
    """{plan: SpinalCord_PRV02 D0.03cc} from the comparison table's rows (ComparisonTable.to_dicts())."""
    from simsbrt.report.compare import CORD_PRV

    for row in table_rows:
        if row["metric"] == f"{CORD_PRV} D0.03cc":
            return dict(row["values"])
    return {}


def falloff_rows(profiles, modes) -> list[tuple]:
    rows = []
    for m in modes:
        f = profiles[m].falloff
        rows.append((m, f"{f.reference_dose_gy:.1f}", _num(f.steepest_gy_per_mm, 2), _num(f.steepest_at_mm),
                     _num(f.high_point_mm), _num(f.low_point_mm), _num(f.distance_high_low_mm),
                     _num(f.limit_crossing_mm), _num(f.prv_edge_mm), _num(f.limit_to_prv_edge_mm)))
    return rows


FALLOFF_HEADER = ("plan", "reference GTV D50% (Gy)", "steepest fall-off (Gy/mm)", "at y (mm)", "80 % point y (mm)",
                  "20 % point y (mm)", "80 % -> 20 % distance (mm)", "limit crossing y (mm)",
                  "cord PRV edge y (mm)", "limit crossing to PRV edge (mm)")


def lesson_page(phantom, modes, profiles, maps, evaluations, table, files, limit_gy: float, levels) -> str:
    h = page_html
    spec, grid = phantom.spec, phantom.grid
    sib = profiles.get("sib", profiles[modes[0]])
    f = sib.falloff
    parts = [h.paragraphs([
        f"Phantom {spec.name}: {phantom.description()}; dose grid {grid.spacing_mm[0]:g} mm. "
        f"Plans: {', '.join(modes)}; 30 Gy in 5 fractions to PTV_Eval D90% in both, the SIB plan boosts the GTV "
        f"as far as the mandatory limits allow (cord PRV D0.03cc <= {limit_gy:g} Gy).",
        "Simulated pencil-beam doses on a voxel phantom, for teaching: not a clinical plan.",
        "Conventions: DICOM LPS patient axes (+x patient left, +y posterior, +z superior). Axial images are shown "
        "in the radiological convention (patient right on the image left, anterior at the top); sagittal images "
        "have anterior on the left and superior at the top. Doses in Gy (physical, whole course), distances in mm.",
    ])]
    parts.append(h.figure_section(
        "1. Axial dose: uniform vs SIB", files["axial"], "axial dose colour wash with isodose lines",
        [f"Both panels share one colour scale; isodose lines at {', '.join(f'{v:g}' for v in levels)} Gy "
         "(levels outside a slice's dose range are not drawn).",
         "In the SIB plan the 36-45 Gy lines hug the GTV (red dashed) while the 30 Gy line still follows PTV_Eval: "
         "two dose levels in one plan.",
         "Between the GTV and the cord (yellow) the isodose lines crowd together: that is the dose gradient.",
         f"The {limit_gy:g} Gy line should stay outside the orange cord PRV."]))
    parts.append(h.figure_section(
        "2. Sagittal dose: uniform vs SIB", files["sagittal"], "sagittal dose colour wash with isodose lines",
        ["The boost is confined to the vertebral level of the GTV; the PTV margin is larger superior-inferior "
         "(5 mm) than in-plane (2 mm), each rounded to whole voxels on the grid.",
         "The cord runs top to bottom just posterior of the vertebral bodies; follow the isodose lines along it."]))
    parts.append(h.figure_section(
        "3. Dose profile from the GTV to the cord", files["profile"], "dose profile along the AP line",
        [f"The dose falls from the GTV to the cord at up to {_num(f.steepest_gy_per_mm, 2)} Gy/mm in the SIB plan; "
         f"the 80 % to 20 % distance of its GTV D50% ({f.reference_dose_gy:.1f} Gy) is "
         f"{_num(f.distance_high_low_mm)} mm.",
         f"The X marks where the profile crosses the {limit_gy:g} Gy cord PRV limit; its distance to the PRV edge "
         f"({_num(f.limit_to_prv_edge_mm)} mm in the SIB plan) is the safety margin on this line "
         "(positive: the limit isodose lies outside the PRV). On a grid the first PRV voxel centre lies half a "
         f"voxel ({grid.spacing_mm[1] / 2:g} mm) inside the PRV edge and the limit applies to voxel doses, so a "
         "crossing up to half a voxel inside the edge can still meet it.",
         *[n for n in [point_volume_note(f, prv_d003cc_by_plan(table.to_dicts()).get(sib.plan), grid.spacing_mm[1],
                                         grid.voxel_volume_cc)] if n],
         "Compare the two plans: the SIB profile starts higher in the GTV but must reach the same limit at the "
         "PRV, so its fall-off is steeper.",
         "Coloured bars under the axis mark where each structure lies on the line."],
        ["The profile samples the dose at the voxel centres of the grid column nearest the GTV centroid "
         "(no interpolation); the fall-off numbers interpolate linearly between samples. The steepest fall-off is "
         "the largest difference between neighbouring samples from the GTV centre to the cord centre, divided by "
         "the spacing. Reference dose for 80 % / 20 %: each plan's GTV D50%. Typical cord-side gradients in spine "
         "SBRT are about 10 %/mm (physics-and-clinical-facts.md 6.1); an open 6 MV field edge has an 80-20 % "
         "penumbra of 4-9 mm (facts 1.5). n/a: the profile does not fall to that level before the line leaves the "
         "region where the dose was computed (for a uniform plan the GTV dose is barely above the cord limit, and "
         "the posterior arc entrance keeps more than 20 % of it behind the cord)."],
        h.table(FALLOFF_HEADER, falloff_rows(profiles, modes), numeric_columns=tuple(range(1, 10)))))
    grad_rows = [(m, f"{maps[m].z_mm:.1f}", f"{maps[m].stats['max_gy_per_mm']:.2f}",
                  _num(maps[m].stats.get("prv_mean_gy_per_mm"), 2), _num(maps[m].stats.get("prv_max_gy_per_mm"), 2))
                 for m in modes]
    parts.append(h.figure_section(
        "4. Dose-gradient map around the cord", files["gradient"], "gradient magnitude map",
        ["Bright bands are where the dose changes fastest: between the GTV and the cord PRV.",
         f"The dotted white line is the {limit_gy:g} Gy isodose; the dotted cyan line is the profile of figure 3.",
         "A steep gradient protects the cord but makes the cord dose sensitive to set-up error: a 1 mm shift "
         "moves the cord dose by about the Gy/mm value shown."],
        [f"|grad D| from central differences of the 3-D dose with the grid spacing, in Gy/mm, cropped to "
         f"+-{maps[modes[0]].half_width_mm:g} mm around the cord centre."],
        h.table(("plan", "slice z (mm)", "max |grad D| in view (Gy/mm)", "mean in cord PRV (Gy/mm)",
                 "max in cord PRV (Gy/mm)"), grad_rows, numeric_columns=(1, 2, 3, 4))))
    parts.append(h.figure_section(
        "5. Dose-volume histograms", files["dvh"], "cumulative DVHs",
        ["Solid: uniform, dashed: SIB. The GTV curve moves right in the SIB plan while PTV_Eval still crosses "
         "90 % at 30 Gy (same prescription).",
         f"The cord PRV curve must end left of the {limit_gy:g} Gy line (D0.03cc)."]))
    parts.append("<h2>6. Protocol tables</h2>\n")
    parts.append(h.paragraphs(["Each plan judged by its own protocol (uniform: 30 Gy to PTV_Eval with a homogeneity "
                               "goal; sib: the trial's Table 1). optimal = inside the optimal range, acceptable = "
                               "only the mandatory range met, violated = a mandatory limit broken."]))
    for m in modes:
        parts.append(f"<h3>{h.esc(m)}</h3>\n" + h.protocol_table(evaluations[m]))
    parts.append("<h2>7. Side-by-side comparison</h2>\n" + h.comparison_table(table))
    return h.page(f"Dose gradients in spine SBRT: {spec.name}, uniform vs SIB", "\n".join(parts))
