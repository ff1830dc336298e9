"""PLAN.h5: one optimised plan, written atomically (h5py, no pickle).

Layout (schema_version 1):
  root attributes: schema_version (int), simsbrt_version, kind = "plan", mode, backend, device,
                   feasible (bool), protocol_name, protocol_json (the full protocol), metrics_json,
                   summary_json (the CLI's JSON document), arcs_json (the arc set), settings_json (the
                   plan settings), final_dose_json (how /dose was made: exact, time_s, backend, device,
                   region, ...; simsbrt.dose.final) and final_minus_optimiser_json (exact minus the
                   optimiser's dose of the final weights, Gy, per reported DVH metric); files written
                   before these existed read back as {}
  /phantom                 the phantom file layout (simsbrt.io.phantom_h5.write_phantom_group)
  /dose                    float32 Gy on the phantom grid, gzip: the exact final dose (attribute
                           exact = True; absent in older files, whose dose was the optimiser's)
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
    final_dose: dict = dataclasses.field(default_factory=dict)
    final_minus_optimiser_gy: dict = dataclasses.field(default_factory=dict)
    delivery: dict | None = None      # deliverable plans: MLC apertures and segment MU (simsbrt.delivery.store)

    @property
    def dose_is_exact(self) -> bool:
        return bool(self.final_dose.get("exact", False))


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
        f.attrs["protocol_json"] = json.dumps(result.protocol.to_dict())   # the full protocol the plan was judged by
        f.attrs["metrics_json"] = json.dumps(result.metrics)
        f.attrs["summary_json"] = json.dumps(summary)
        f.attrs["arcs_json"] = json.dumps(arc_set_to_doc(inputs.arc_set))
        f.attrs["settings_json"] = json.dumps(_settings_doc(settings))
        f.attrs["final_dose_json"] = json.dumps(getattr(result, "final_dose", {}) or {})
        f.attrs["final_minus_optimiser_json"] = json.dumps(getattr(result, "final_minus_optimiser_gy", {}) or {})
        write_phantom_group(f.create_group("phantom"), phantom)
        chunks = tuple(min(n, c) for n, c in zip(phantom.grid.shape, (64, 64, 16)))
        f.create_dataset("dose", data=np.asarray(result.dose_gy, dtype=np.float32), compression="gzip",
                         compression_opts=GZIP_LEVEL, chunks=chunks, shuffle=True)
        f["dose"].attrs["exact"] = bool((getattr(result, "final_dose", {}) or {}).get("exact", False))
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


MAX_DOSE_GY = 1000.0   # far above any fractionated or single-fraction dose; more is a damaged file


def read_plan(path) -> PlanFile:
    """Read PLAN.h5; every member is checked (type, rank, shape, finite, physical range) and a
    damaged member is a SchemaError naming the file and the member."""
    from simsbrt.io.h5file import attr_json, attr_str, dataset, group_of
    from simsbrt.optimize.plans import MODES

    p = Path(path)
    src = str(p)
    with open_h5(p, KIND, SCHEMA_VERSION) as f:
        phantom = read_phantom_group(group_of(f, "phantom", src), f"{p}:/phantom")
        dose = dataset(f, "dose", src, "f", shape=phantom.grid.shape, finite=True, low=0.0, high=MAX_DOSE_GY)
        plan = group_of(f, "plan", src)
        weights = dataset(plan, "weights_mu", src, "f", ndim=1, finite=True, low=0.0)
        columns = {k: dataset(plan, f"beamlet_{k}", src, "iu", shape=weights.shape)
                   for k in ("control_point", "k", "l") if f"beamlet_{k}" in plan}
        ev = group_of(f, "evaluation", src)
        attr_json(ev, "protocol_json", src)            # written with the table; checked, not used here
        values = dataset(ev, "value", src, "f", ndim=1)
        texts = {k: dataset(ev, k, src, "OSU", shape=values.shape) for k in ("structure", "metric", "status")}
        decode = (lambda v: v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v))
        table = [{"structure": decode(s), "metric": decode(m), "value": None if np.isnan(v) else float(v),
                  "status": decode(st)}
                 for s, m, v, st in zip(texts["structure"], texts["metric"], values, texts["status"])]
        delivery = None
        if "delivery" in f:
            from simsbrt.delivery.store import read_delivery_group

            delivery = read_delivery_group(group_of(f, "delivery", src), f"{p}:/delivery")
        a = f.attrs
        feasible = a.get("feasible")
        if not isinstance(feasible, (bool, np.bool_)):
            raise SchemaError(f"{p}: @feasible: must be a boolean, got {feasible!r}")
        optional_json = {key: (attr_json(f, key, src) if key in a else {})
                         for key in ("final_dose_json", "final_minus_optimiser_json")}
        return PlanFile(phantom, dose, weights, attr_str(f, "mode", src, MODES), attr_str(f, "backend", src),
                        attr_str(f, "device", src), bool(feasible), attr_str(f, "protocol_name", src),
                        attr_json(f, "metrics_json", src), attr_json(f, "summary_json", src),
                        attr_json(f, "arcs_json", src), attr_json(f, "settings_json", src), table, columns,
                        optional_json["final_dose_json"], optional_json["final_minus_optimiser_json"],
                        delivery)
