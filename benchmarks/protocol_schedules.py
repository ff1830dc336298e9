"""One phantom planned under several fractionation protocols: uniform, uniform_escalated and sib per protocol.

The influence matrix does not depend on the protocol, so it is computed once; every plan is then made with
PlanSettings(protocol=NAME) (every planning number from that protocol, simsbrt.optimize.protocol_numbers)
and re-judged here with simsbrt.evaluate on its stored dose against the protocol it was planned under.

    python benchmarks/protocol_schedules.py [--phantom t10_body] [--protocols sib_2fx,sib_3fx,sib_trial]
        [--spacing-mm 3] [--arc-spacing-deg 8] [--beamlet-mm 5] [--search-steps 4] [--backend cpu]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import git_commit, machine_line, peak_rss_mib, print_table  # noqa: E402

from simsbrt.evaluate import evaluate_protocol  # noqa: E402
from simsbrt.geometry.arcs import default_arc_set  # noqa: E402
from simsbrt.optimize.plans import PlanSettings, make_plan, plan_numbers, prepare_plan_inputs  # noqa: E402
from simsbrt.phantom import build_phantom, load_spec  # noqa: E402

MODES = ("uniform", "uniform_escalated", "sib")
COLUMNS = ["protocol", "fx", "mode", "feasible", "Rx Gy", "boost/esc goal", "PTV D90", "PTV D98", "PTV D2",
           "GTV D50", "GTV D98", "GTV D2", "PRV D0.03cc", "PRV limit", "binding", "s"]


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def plan_row(inputs, mode: str, settings: PlanSettings) -> dict:
    t0 = time.perf_counter()
    result = make_plan(inputs, mode, settings)
    seconds = time.perf_counter() - t0
    ph = inputs.phantom
    ev = evaluate_protocol(result.protocol, result.dose_gy, ph.structures, ph.grid.voxel_volume_cc)
    m = result.metrics
    goal = result.boost_goal_gy if mode == "sib" else (result.prescription_gy if mode == "uniform_escalated" else None)
    return {"protocol": result.protocol.name, "fx": result.protocol.n_fractions, "mode": mode,
            "feasible": "yes" if (ev.feasible and result.feasible) else "NO",
            "Rx Gy": _fmt(result.protocol.prescription.dose_gy), "boost/esc goal": _fmt(goal),
            "PTV D90": _fmt(m["PTV_Eval"]["D90%"]), "PTV D98": _fmt(m["PTV_Eval"]["D98%"]),
            "PTV D2": _fmt(m["PTV_Eval"]["D2%"]), "GTV D50": _fmt(m["GTV"]["D50%"]),
            "GTV D98": _fmt(m["GTV"]["D98%"]), "GTV D2": _fmt(m["GTV"]["D2%"]),
            "PRV D0.03cc": _fmt(m["SpinalCord_PRV02"]["D0.03cc"]), "PRV limit": _fmt(result.cord_prv_limit_gy),
            "binding": "; ".join(result.binding_limits) or "-", "s": f"{seconds:.0f}"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phantom", default="t10_body")
    ap.add_argument("--protocols", default="sib_2fx,sib_3fx,sib_trial")
    ap.add_argument("--spacing-mm", type=float, default=3.0)
    ap.add_argument("--arc-spacing-deg", type=float, default=8.0)
    ap.add_argument("--beamlet-mm", type=float, default=5.0)
    ap.add_argument("--search-steps", type=int, default=4)
    ap.add_argument("--backend", default="cpu")
    args = ap.parse_args(argv)
    protocols = [p for p in args.protocols.split(",") if p]
    print(f"protocol schedules: {args.phantom} at {args.spacing_mm:g} mm, two full arcs at "
          f"{args.arc_spacing_deg:g} deg, "
          f"{args.beamlet_mm:g} mm beamlets, {args.search_steps} search bisections, backend {args.backend}; "
          f"PlanSettings defaults otherwise (boost policy {PlanSettings().boost_policy})")
    print("command: python benchmarks/protocol_schedules.py " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(f"commit {git_commit()} | {machine_line()} | load average at start {os.getloadavg()[0]:.2f} "
          "(shared machine: timings are loaded-machine numbers)")
    t0 = time.perf_counter()
    phantom = build_phantom(load_spec(args.phantom).with_spacing(args.spacing_mm))
    arcs = default_arc_set(spacing_deg=args.arc_spacing_deg, beamlet_size_mm=args.beamlet_mm)
    inputs = prepare_plan_inputs(phantom, arcs, args.backend)
    print(f"influence matrix {inputs.influence.n_voxels} rows x {inputs.influence.n_beamlets} beamlets in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for protocol in protocols:
        settings = PlanSettings(protocol=protocol, n_bisections=args.search_steps)
        numbers = plan_numbers(settings)
        print(f"{protocol}: " + ", ".join(f"{k} {v}" for k, v in numbers.to_dict().items() if k != "protocol"),
              flush=True)
        for mode in MODES:
            rows.append(plan_row(inputs, mode, settings))
            print("  " + ", ".join(f"{k} {rows[-1][k]}" for k in COLUMNS[2:]), flush=True)
    print()
    print_table(rows, COLUMNS)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s, peak RSS {peak_rss_mib():.0f} MiB, "
          f"load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
