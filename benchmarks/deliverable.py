"""Fluence vs deliverable plans, side by side: uniform and SIB on one phantom (default t10_body, 2 mm,
two full arcs at 4 degrees, 2.5 mm beamlets), each sequenced into MLC apertures on a machine model
(default TrueBeam HD120) with segment-MU re-optimisation on the exact aperture doses.

    python benchmarks/deliverable.py [--phantom t10_body] [--spacing-mm 2.0] [--arc-spacing-deg 4]
                                     [--machine truebeam_hd120] [--search-steps 5] [--dose-voxels body|grid]
                                     [--median-pairs 3] [--smoothing-mm 0] [--modes uniform,sib]

Prints, per mode: GTV D50% / D98%, PTV_Eval D2%, cord PRV D0.03cc and the GTV-to-cord-PRV fall-off (Gy/mm,
simsbrt.evaluate.falloff) of both plans (exact final doses on the whole body), the deliverable's MU per
fraction, beam-on time per fraction, MCS, the fastest leaf, the boost goals, and the times of the fluence
plan and of the deliverable step (with its parts); for the SIB, every step of the deliverable boost search
(simsbrt.delivery.search). Timings include numba compilation on a cold cache only if the cache is cold (stated).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import git_commit, machine_line, peak_rss_mib, print_table  # noqa: E402

from simsbrt.delivery.plan import DeliverySettings, fluence_vs_deliverable, make_deliverable  # noqa: E402
from simsbrt.geometry.arcs import default_arc_set  # noqa: E402
from simsbrt.optimize.plans import PlanSettings, make_plan, prepare_plan_inputs  # noqa: E402
from simsbrt.phantom import build_phantom, load_spec  # noqa: E402


DELIVERABLE_PARTS = ("fluence_resequence_s", "sequence_s", "aperture_matrix_s", "optimise_s", "boost_search_s",
                     "final_dose_s", "deliverable_s")


def _fmt(x, digits=2):
    return "-" if x is None else f"{x:.{digits}f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phantom", default="t10_body")
    ap.add_argument("--spacing-mm", type=float, default=2.0)
    ap.add_argument("--arc-spacing-deg", type=float, default=4.0)
    ap.add_argument("--beamlet-mm", type=float, default=2.5)
    ap.add_argument("--machine", default="truebeam_hd120")
    ap.add_argument("--search-steps", type=int, default=5)
    ap.add_argument("--dose-voxels", default="body", choices=["body", "grid"])
    ap.add_argument("--median-pairs", type=int, default=3)
    ap.add_argument("--modes", default="uniform,sib", help="comma-separated plan modes")
    ap.add_argument("--smoothing-mm", type=float, default=0.0)
    ap.add_argument("--transmission-check", action="store_true",
                    help="also recompute each deliverable plan's dose (same apertures and MU) without MLC transmission")
    args = ap.parse_args(argv)
    commit = git_commit()
    print(f"deliverable benchmark: {args.phantom}, {args.spacing_mm} mm grid, two full arcs "
          f"({args.arc_spacing_deg:g} deg), {args.beamlet_mm:g} mm beamlets, machine {args.machine}, "
          f"dose voxels {args.dose_voxels}, leaf-edge median over {args.median_pairs} pairs, fluence smoothing "
          f"{args.smoothing_mm:g} mm")
    print(f"{machine_line()} | commit {commit} | load average at start {os.getloadavg()[0]:.2f} "
          f"(shared machine: timings are on a loaded machine)")
    print("command: python benchmarks/deliverable.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    phantom = build_phantom(load_spec(args.phantom).with_spacing(args.spacing_mm))
    arcs = default_arc_set(spacing_deg=args.arc_spacing_deg, beamlet_size_mm=args.beamlet_mm)
    t0 = time.perf_counter()
    inputs = prepare_plan_inputs(phantom, arcs, "cpu")
    print(f"influence {inputs.influence.n_voxels} rows x {inputs.influence.n_beamlets} beamlets in "
          f"{time.perf_counter() - t0:.1f} s")
    settings = PlanSettings(n_bisections=args.search_steps)
    delivery = DeliverySettings(machine=args.machine, dose_voxels=args.dose_voxels, median_pairs=args.median_pairs,
                                smoothing_mm=args.smoothing_mm)
    rows, sides, searches, parts = [], [], {}, {}
    for mode in args.modes.split(","):
        plan = make_plan(inputs, mode, settings)
        deliverable = make_deliverable(inputs, plan, settings, delivery,
                                       progress=lambda m: print("  " + m, file=sys.stderr, flush=True))
        c = fluence_vs_deliverable(plan, deliverable)
        if deliverable.delivery.get("boost_search"):
            searches[mode] = deliverable.delivery["boost_search"]
        parts[mode] = {k: deliverable.timings_s[k] for k in DELIVERABLE_PARTS if k in deliverable.timings_s}
        sides.append(c)
        fd = deliverable.final_dose
        print(f"{mode}: deliverable final dose {fd['time_s']:.1f} s on {fd['n_voxels']} {fd['region']} voxels "
              f"(depths {fd['depths']}; MLC transmission {fd['mlc_transmission_frac']:g}); fluence final dose "
              f"{plan.final_dose.get('time_s', float('nan')):.1f} s")
        if args.transmission_check:
            transmission_effect(inputs, deliverable)
        m = {(r["structure"], r["metric"]): r for r in c["metrics"]}
        for kind, key in (("fluence", "fluence_gy"), ("deliverable", "deliverable_gy")):
            rows.append({"mode": mode, "plan": kind,
                         "GTV_D50": _fmt(m[("GTV", "D50%")][key]), "GTV_D98": _fmt(m[("GTV", "D98%")][key]),
                         "PTV_D2": _fmt(m[("PTV_Eval", "D2%")][key]),
                         "PRV_D0.03cc": _fmt(m[("SpinalCord_PRV02", "D0.03cc")][key]),
                         "boost_goal": _fmt(c["fluence_boost_goal_gy"] if kind == "fluence"
                                            else c["deliverable_boost_goal_gy"]),
                         "falloff_Gy/mm": _fmt(c["gtv_cord_falloff"][f"{kind}_gy_per_mm"], 3),
                         "limits_met": ("yes" if (c["fluence_feasible"] if kind == "fluence"
                                                  else c["deliverable_feasible"]) else "NO"),
                         "MU/fx": "-" if kind == "fluence" else f"{c['mu_per_fraction']:.0f}",
                         "time/fx_s": "-" if kind == "fluence" else f"{c['delivery_time_s_per_fraction']:.0f}",
                         "MCS": "-" if kind == "fluence" else f"{c['mcs']:.3f}",
                         "leaf_max_mm/s": "-" if kind == "fluence" else f"{c['max_leaf_speed_mm_per_s']:.1f}",
                         "plan_s": f"{c['fluence_plan_s']:.1f}" if kind == "fluence" else f"{c['deliverable_s']:.1f}"})
    print_table(rows, ["mode", "plan", "boost_goal", "GTV_D50", "GTV_D98", "PTV_D2", "PRV_D0.03cc", "falloff_Gy/mm",
                       "limits_met", "MU/fx", "time/fx_s", "MCS", "leaf_max_mm/s", "plan_s"])
    for c in sides:
        m = {(r["structure"], r["metric"]): r for r in c["metrics"]}
        print(f"{c['mode']}: deliverable - fluence: GTV D50% {_fmt(m[('GTV', 'D50%')]['change_gy'])} Gy, "
              f"GTV D98% {_fmt(m[('GTV', 'D98%')]['change_gy'])} Gy, cord PRV D0.03cc "
              f"{_fmt(m[('SpinalCord_PRV02', 'D0.03cc')]['change_gy'])} Gy; deliverable violates: "
              f"{'; '.join(c['deliverable_violated']) or 'nothing'}")
        for k, step in enumerate(searches.get(c["mode"], []), 1):
            print(f"  {c['mode']} deliverable search {k}: GTV boost goal {step['goal_gy']:.2f} Gy "
                  f"({'re-sequenced fluence' if step['resequenced'] else 'the fluence plan'}) -> "
                  f"{'; '.join(step['blocking']) or 'meets the limits'}")
        if c["mode"] in searches:
            print(f"  {c['mode']} deliverable: {c['deliverable_search_stop']}")
        print(f"  {c['mode']} deliverable step, s: " + ", ".join(f"{k} {v:.1f}" for k, v in parts[c["mode"]].items()))
    print(f"calibration: {sides[0]['calibration']}")
    print(f"plan_s: fluence = make_plan (search + evaluation; influence matrix excluded); deliverable = the deliverable "
          f"boost search (SIB: fluence re-optimisation at each lower goal, sequencing, exact aperture matrix, segment-MU "
          f"optimisation, judged on the exact aperture dose) + exact final dose. peak RSS {peak_rss_mib():.0f} MiB; "
          f"load average at end {os.getloadavg()[0]:.2f}")
    return 0


def transmission_effect(inputs, deliverable) -> None:
    """The same apertures and MU without MLC transmission: the dose the transmission adds (Gy)."""
    import numpy as np

    from simsbrt.delivery.apertures import ApertureDoseEngine
    from simsbrt.optimize.plans import plan_metrics

    ph = inputs.phantom
    geometry = inputs.cache["final_dose_geometry"]
    t0 = time.perf_counter()
    engine = ApertureDoseEngine(ph.grid, ph.density, deliverable.delivery["apertures"], transmission=0.0)
    values, _ = engine.dose_on(geometry, deliverable.delivery["mu_per_cp"])
    without = np.zeros(ph.grid.n_voxels, dtype=np.float32)
    without[geometry.voxels] = values
    without = without.reshape(ph.grid.shape)
    m0 = plan_metrics(without, ph.structures, ph.grid.voxel_volume_cc)
    m1 = deliverable.metrics
    added = deliverable.dose_gy[ph.structures["Body"]] - without[ph.structures["Body"]]
    parts = [f"{s} {k} {m1[s][k] - m0[s][k]:+.3f}" for s, k in (("GTV", "D50%"), ("GTV", "D98%"), ("PTV_Eval", "D90%"),
                                                              ("SpinalCord_PRV02", "D0.03cc")) if s in m1 and s in m0]
    print(f"  {deliverable.mode}: MLC transmission adds (Gy, same MU): {', '.join(parts)}; body mean "
          f"{added.mean():+.3f}, max {added.max():+.3f} ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
