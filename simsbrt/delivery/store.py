"""The /delivery group of a deliverable PLAN.h5: machine, control points, MLC apertures and segment MU.

Layout: attributes machine_json (the machine model), metrics_json (MU, time, MCS, ...);
datasets gantry_deg, couch_deg, collimator_deg, arc_of_cp (per control point), isocentre_mm (3),
leaves_mm (n_cp, n_pairs, 2), jaws_mm (n_cp, 4), segment_mu (whole course), mu_per_cp.
"""
from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np

from simsbrt.delivery.apertures import Apertures
from simsbrt.delivery.machine import MachineModel
from simsbrt.errors import SchemaError
from simsbrt.geometry.arcs import ControlPoint

JSON_KEYS = ("mu_per_fraction", "delivery_time_s_per_fraction", "mcs", "max_leaf_speed_mm_per_s", "machine",
             "calibration", "dose_voxels", "n_apertures", "n_segments", "boost_goal_gy", "gtv_cord_falloff",
             "boost_search")


def delivery_summary(delivery: dict) -> dict:
    return {k: delivery[k] for k in JSON_KEYS if k in delivery}


def write_delivery_group(group, delivery: dict) -> None:
    aps: Apertures = delivery["apertures"]
    machine = asdict(aps.machine)
    group.attrs["machine_json"] = json.dumps(machine)
    group.attrs["metrics_json"] = json.dumps(delivery_summary(delivery))
    cps = aps.control_points
    group.create_dataset("gantry_deg", data=np.array([c.gantry_deg for c in cps]))
    group.create_dataset("couch_deg", data=np.array([c.couch_deg for c in cps]))
    group.create_dataset("collimator_deg", data=np.array([c.collimator_deg for c in cps]))
    group.create_dataset("arc_of_cp", data=np.asarray(aps.arc_of_cp, dtype=np.int32))
    group.create_dataset("isocentre_mm", data=np.asarray(cps[0].isocentre_mm, dtype=np.float64))
    group.create_dataset("leaves_mm", data=np.asarray(aps.leaves_mm, dtype=np.float64))
    group.create_dataset("jaws_mm", data=np.asarray(aps.jaws_mm, dtype=np.float64))
    group.create_dataset("segment_mu", data=np.asarray(delivery["segment_mu"], dtype=np.float64))
    group.create_dataset("mu_per_cp", data=np.asarray(delivery["mu_per_cp"], dtype=np.float64))


def read_delivery_group(group, where: str = "/delivery") -> dict:
    try:
        m = json.loads(group.attrs["machine_json"])
        m["leaf_widths_mm"] = tuple(m["leaf_widths_mm"])
        m["jaw_x_mm"], m["jaw_y_mm"] = tuple(m["jaw_x_mm"]), tuple(m["jaw_y_mm"])
        machine = MachineModel(**m)
        iso = tuple(float(x) for x in group["isocentre_mm"][...])
        arcs = group["arc_of_cp"][...].astype(np.int64)
        cps = tuple(ControlPoint(int(a), 0, float(g), float(c), float(k), iso)
                    for a, g, c, k in zip(arcs, group["gantry_deg"][...], group["couch_deg"][...],
                                          group["collimator_deg"][...]))
        aps = Apertures(machine, cps, arcs, group["leaves_mm"][...], group["jaws_mm"][...])
        out = json.loads(group.attrs["metrics_json"])
        out.update(apertures=aps, segment_mu=group["segment_mu"][...], mu_per_cp=group["mu_per_cp"][...])
        return out
    except (KeyError, TypeError, ValueError) as exc:
        raise SchemaError(f"{where}: incomplete or invalid delivery group ({exc})") from None
