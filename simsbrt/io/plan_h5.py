"""PLAN.h5: one optimised plan, written atomically (h5py, no pickle).

Layout (schema_version 1):
  root attributes: schema_version (int), simsbrt_version, kind = "plan", mode, backend, device,
                   feasible (bool), protocol_name, metrics_json, summary_json (the CLI's JSON
                   document), arcs_json (the arc set), settings_json (the plan settings)
  /phantom                 the phantom file layout (simsbrt.io.phantom_h5.write_phantom_group)
  /dose                    float32 Gy on the phantom grid, gzip
  /plan/weights_mu         float64, one per beamlet (MU), normalised to the prescription
  /plan/beamlet_control_point, /plan/beamlet_k, /plan/beamlet_l   int32 per beamlet (when known)
  /evaluation              attribute protocol_json (ProtocolEvaluation.to_dict()); datasets
                           structure, metric, status, limit (UTF-8 strings) and value (float64,
                           NaN where not evaluated): the protocol table
A reader refuses a newer schema_version or another kind (SchemaError).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simsbrt.errors import SchemaError
from simsbrt.geometry.arcs import arc_set_to_doc
from simsbrt.io.h5file import create_h5, open_h5
from simsbrt.io.phantom_h5 import GZIP_LEVEL, read_phantom_group, write_phantom_group

SCHEMA_VERSION = 1
KIND = "plan"


@dataclass(frozen=True, eq=False)
class PlanFile:
    phantom: object
    dose_gy: np.ndarray
    weights_mu: np.ndarray
    mode: str
    backend: str
    device: str
    feasible: bool
    protocol_name: str
    metrics: dict
    summary: dict
    arcs: dict
    settings: dict
    protocol_table: list
    beamlet_columns: dict
    delivery: dict | None = None      # deliverable plans: MLC apertures and segment MU (simsbrt.delivery.store)


def _settings_doc(settings) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(settings), default=str)) if settings is not None else {}


def write_plan(path, result, inputs, settings=None) -> Path:
    """Write a PlanResult with its phantom and arcs (inputs: simsbrt.optimize.plans.PlanInputs)."""
    import h5py

    target = Path(path)
    phantom = inputs.phantom
    summary = result.summary()
    strings = h5py.string_dtype("utf-8")
    with create_h5(target, KIND, SCHEMA_VERSION, mode=result.mode, backend=result.backend,
                   device=result.device) as f:
        f.attrs["feasible"] = bool(result.feasible)
        f.attrs["protocol_name"] = result.protocol.name
        f.attrs["metrics_json"] = json.dumps(result.metrics)
        f.attrs["summary_json"] = json.dumps(summary)
        f.attrs["arcs_json"] = json.dumps(arc_set_to_doc(inputs.arc_set))
        f.attrs["settings_json"] = json.dumps(_settings_doc(settings))
        write_phantom_group(f.create_group("phantom"), phantom)
        chunks = tuple(min(n, c) for n, c in zip(phantom.grid.shape, (64, 64, 16)))
        f.create_dataset("dose", data=np.asarray(result.dose_gy, dtype=np.float32), compression="gzip",
                         compression_opts=GZIP_LEVEL, chunks=chunks, shuffle=True)
        plan = f.create_group("plan")
        plan.create_dataset("weights_mu", data=np.asarray(result.weights, dtype=np.float64))
        beamlets = getattr(inputs.influence, "beamlets", None)
        delivery = getattr(result, "delivery", None)       # deliverable plans: weights are segment MU
        if delivery:
            from simsbrt.delivery.store import write_delivery_group

            write_delivery_group(f.create_group("delivery"), delivery)
        elif beamlets is not None:
            cols = beamlets.columns()
            for key in ("control_point", "k", "l"):
                plan.create_dataset(f"beamlet_{key}", data=np.asarray(cols[key], dtype=np.int32))
        ev = f.create_group("evaluation")
        ev.attrs["protocol_json"] = json.dumps(result.evaluation.to_dict())
        rows = result.evaluation.rows
        for key in ("structure", "metric", "status"):
            ev.create_dataset(key, data=[getattr(r, key) for r in rows], dtype=strings)
        ev.create_dataset("limit", data=[r.limit_name for r in rows], dtype=strings)
        ev.create_dataset("value", data=np.array([np.nan if r.value is None else r.value for r in rows],
                                                 dtype=np.float64))
    return target


def read_plan(path) -> PlanFile:
    p = Path(path)
    with open_h5(p, KIND, SCHEMA_VERSION) as f:
        for key in ("phantom", "dose", "plan", "evaluation"):
            if key not in f:
                raise SchemaError(f"{p}: missing /{key}")
        phantom = read_phantom_group(f["phantom"], f"{p}:/phantom")
        dose = f["dose"][...]
        if dose.shape != phantom.grid.shape:
            raise SchemaError(f"{p}: /dose has shape {dose.shape}, expected {phantom.grid.shape}")
        plan = f["plan"]
        weights = plan["weights_mu"][...]
        columns = {k: plan[f"beamlet_{k}"][...] for k in ("control_point", "k", "l") if f"beamlet_{k}" in plan}
        ev = f["evaluation"]
        values = ev["value"][...]
        table = [{"structure": s.decode() if isinstance(s, bytes) else s,
                  "metric": m.decode() if isinstance(m, bytes) else m,
                  "value": None if np.isnan(v) else float(v),
                  "status": st.decode() if isinstance(st, bytes) else st}
                 for s, m, v, st in zip(ev["structure"][...], ev["metric"][...], values, ev["status"][...])]
        delivery = None
        if "delivery" in f:
            from simsbrt.delivery.store import read_delivery_group

            delivery = read_delivery_group(f["delivery"], f"{p}:/delivery")
        a = f.attrs
        return PlanFile(phantom, dose, weights, str(a["mode"]), str(a["backend"]), str(a["device"]),
                        bool(a["feasible"]), str(a["protocol_name"]), json.loads(a["metrics_json"]),
                        json.loads(a["summary_json"]), json.loads(a["arcs_json"]), json.loads(a["settings_json"]),
                        table, columns, delivery)
