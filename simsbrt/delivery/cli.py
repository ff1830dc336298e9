"""``--deliverable`` for ``simsbrt compare`` and ``simsbrt plan``: each fluence plan is also sequenced into
MLC apertures on a machine model, re-optimised on the exact aperture doses and written next to it:
  MODE_deliverable.h5       PLAN.h5 of the deliverable plan (/delivery: apertures, segment MU)
  MODE_deliverable_RP.dcm   its RTPLAN (MLCX leaves, jaws, meterset in machine MU)
  deliverable.json / .csv   fluence vs deliverable, per plan (compare only)
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from simsbrt.delivery.machine import DEFAULT_MACHINE, MACHINES


def add_deliverable_arguments(p) -> None:
    p.add_argument("--deliverable", action="store_true",
                   help="also make each plan deliverable: one MLC aperture per control point within the machine's "
                        "limits, segment MU re-optimised on the exact aperture doses (docs/deliverable.md)")
    p.add_argument("--machine", default=DEFAULT_MACHINE, type=machine_argument,
                   help=f"machine model for --deliverable: {' | '.join(MACHINES)} or a machine TOML file "
                        f"(default {DEFAULT_MACHINE})")


def machine_argument(value: str) -> str:
    """argparse type: a loadable machine (its SpecError becomes argparse's one-line error naming the option)."""
    import argparse

    from simsbrt.delivery.machine import load_machine
    from simsbrt.errors import SpecError

    try:
        load_machine(value)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _write_deliverable(path_h5: Path, result, inputs, plan_settings, delivery_settings, progress):
    from simsbrt.delivery.plan import make_deliverable
    from simsbrt.dicom.export import write_deliverable_rtplan
    from simsbrt.io.plan_h5 import write_plan

    deliverable = make_deliverable(inputs, result, plan_settings, delivery_settings, progress)
    write_plan(path_h5, deliverable, inputs, plan_settings)
    rp = path_h5.with_name(path_h5.stem + "_RP.dcm")
    write_deliverable_rtplan(rp, inputs.phantom, deliverable.delivery, deliverable.protocol.n_fractions,
                             deliverable.prescription_gy, f"{result.mode} deliverable")
    return deliverable, rp


def _settings(args):
    from simsbrt.delivery.plan import DeliverySettings

    return DeliverySettings(machine=args.machine)


def deliverable_comparison(inputs, plan_settings, run, out_dir, args, progress) -> dict:
    """Deliverable versions of every plan of a compare run; writes the files above; returns the JSON document."""
    from simsbrt.delivery.plan import fluence_vs_deliverable
    from simsbrt.io.atomic import write_text_atomic

    settings = _settings(args)
    out = Path(out_dir)
    document = {"machine": args.machine, "plans": {}}
    for mode, result in run.results.items():
        progress(f"deliverable {mode} on {args.machine} ...")
        deliverable, rp = _write_deliverable(out / f"{mode}_deliverable.h5", result, inputs, plan_settings,
                                             settings, progress)
        side = fluence_vs_deliverable(result, deliverable)
        side["files"] = {"plan": f"{mode}_deliverable.h5", "rtplan": rp.name}
        document["plans"][mode] = side
    write_text_atomic(out / "deliverable.json", json.dumps(document, indent=2) + "\n")
    write_text_atomic(out / "deliverable.csv", deliverable_csv(document))
    return document


def deliverable_csv(document: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["plan", "quantity", "fluence", "deliverable", "change"])
    for mode, side in document["plans"].items():
        for r in side["metrics"]:
            w.writerow([mode, f"{r['structure']} {r['metric']} (Gy)", _cell(r["fluence_gy"]),
                        _cell(r["deliverable_gy"]), _cell(r["change_gy"])])
        f = side.get("gtv_cord_falloff") or {}
        w.writerow([mode, "GTV D98% to cord PRV D0.03cc fall-off (Gy/mm)", _cell(f.get("fluence_gy_per_mm")),
                    _cell(f.get("deliverable_gy_per_mm")), _cell(f.get("change_gy_per_mm"))])
        w.writerow([mode, "limits met", side["fluence_feasible"], side["deliverable_feasible"], ""])
        for key, label in (("mu_per_fraction", "MU per fraction"), ("delivery_time_s_per_fraction", "beam-on s per fraction"),
                           ("mcs", "MCS"), ("max_leaf_speed_mm_per_s", "fastest leaf mm/s")):
            w.writerow([mode, label, "", _cell(side[key]), ""])
    return buf.getvalue()


def _cell(value) -> str:
    return "" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))


def format_deliverable(document: dict) -> str:
    lines = [f"deliverable plans on {document['machine']} (fluence -> deliverable):"]
    for mode, s in document["plans"].items():
        m = {(r["structure"], r["metric"]): r for r in s["metrics"]}

        def pair(structure, metric):
            r = m[(structure, metric)]
            if r["fluence_gy"] is None or r["deliverable_gy"] is None:
                return f"{structure} {metric} -"
            return f"{structure} {metric} {r['fluence_gy']:.2f} -> {r['deliverable_gy']:.2f} Gy"

        verdict = "limits met" if s["deliverable_feasible"] else "NOT feasible: " + "; ".join(s["deliverable_violated"])
        f = s.get("gtv_cord_falloff") or {}
        falloff = ("" if f.get("fluence_gy_per_mm") is None or f.get("deliverable_gy_per_mm") is None else
                   f", GTV-cord fall-off {f['fluence_gy_per_mm']:.2f} -> {f['deliverable_gy_per_mm']:.2f} Gy/mm")
        lines.append(f"  {mode}: {pair('GTV', 'D50%')}, {pair('GTV', 'D98%')}, "
                     f"{pair('SpinalCord_PRV02', 'D0.03cc')}{falloff}; {s['mu_per_fraction']:.0f} MU/fx, "
                     f"{s['delivery_time_s_per_fraction']:.0f} s/fx, MCS {s['mcs']:.3f}; {verdict}")
    lines.append(f"  calibration: {next(iter(document['plans'].values()))['calibration']}")
    return "\n".join(lines)


def deliverable_plan(inputs, result, plan_settings, out_h5, args, progress) -> dict:
    """``simsbrt plan --deliverable``: OUT_deliverable.h5 and OUT_deliverable_RP.dcm next to OUT.h5."""
    from simsbrt.delivery.plan import fluence_vs_deliverable

    out_h5 = Path(out_h5)
    path = out_h5.with_name(out_h5.stem + "_deliverable.h5")
    deliverable, rp = _write_deliverable(path, result, inputs, plan_settings, _settings(args), progress)
    side = fluence_vs_deliverable(result, deliverable)
    side["files"] = {"plan": str(path), "rtplan": str(rp)}
    return {"machine": args.machine, "plans": {result.mode: side}}
