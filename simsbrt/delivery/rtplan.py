"""Read the MLC apertures and MU back from an RTPLAN (the deliverable plans simsbrt writes, or any
arc plan with ASYMX / ASYMY jaws and MLCX leaves on a known machine), to recompute its dose with
simsbrt's aperture engine (simsbrt.delivery.apertures) and to check it against the machine."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simsbrt.delivery.apertures import Apertures
from simsbrt.delivery.machine import MachineModel, load_machine
from simsbrt.errors import SpecError
from simsbrt.geometry.arcs import ControlPoint


@dataclass(frozen=True, eq=False)
class RtplanDelivery:
    apertures: Apertures
    segment_mu_per_fraction: np.ndarray
    n_fractions: int
    beam_meterset_mu: np.ndarray          # per beam, per fraction
    dose_rate_mu_per_min: np.ndarray      # per segment (DoseRateSet)


def _positions(item, device: str):
    for p in item.BeamLimitingDevicePositionSequence:
        if p.RTBeamLimitingDeviceType == device:
            return np.array([float(x) for x in p.LeafJawPositions])
    return None


def read_rtplan_apertures(source, machine: MachineModel | None = None) -> RtplanDelivery:
    """Apertures, segment MU and dose rates of an RTPLAN (path or pydicom dataset)."""
    import pydicom

    ds = pydicom.dcmread(str(source)) if not hasattr(source, "BeamSequence") else source
    machine = machine or load_machine(str(ds.BeamSequence[0].TreatmentMachineName))
    group = ds.FractionGroupSequence[0]
    n_fractions = int(group.NumberOfFractionsPlanned)
    meterset = {int(r.ReferencedBeamNumber): float(r.BeamMeterset) for r in group.ReferencedBeamSequence}
    cps, arcs, leaves, jaws, segments, rates, beam_mu = [], [], [], [], [], [], []
    for a, beam in enumerate(ds.BeamSequence):
        devices = {d.RTBeamLimitingDeviceType: d for d in beam.BeamLimitingDeviceSequence}
        if "MLCX" not in devices:
            raise SpecError("RTPLAN", f"beam {beam.BeamNumber} has no MLCX leaves")
        bounds = np.array([float(x) for x in devices["MLCX"].LeafPositionBoundaries])
        if bounds.shape != machine.leaf_boundaries_mm.shape or np.abs(bounds - machine.leaf_boundaries_mm).max() > 1e-3:
            raise SpecError("RTPLAN", f"beam {beam.BeamNumber}: leaf boundaries differ from machine {machine.name}")
        items = list(beam.ControlPointSequence)
        first = items[0]
        iso = tuple(float(x) for x in first.IsocenterPosition)
        couch, coll = float(first.PatientSupportAngle), float(first.BeamLimitingDeviceAngle)
        x_jaw, y_jaw = _positions(first, "ASYMX"), _positions(first, "ASYMY")
        mu = meterset[int(beam.BeamNumber)]
        cumulative = np.array([float(i.CumulativeMetersetWeight) for i in items])
        segments.append(np.diff(cumulative) / float(beam.FinalCumulativeMetersetWeight) * mu)
        rates.append([float(i.DoseRateSet) for i in items[:-1]])
        beam_mu.append(mu)
        last_mlc = None
        for j, item in enumerate(items):
            mlc = _positions(item, "MLCX")
            mlc = last_mlc if mlc is None else mlc
            if mlc is None or len(mlc) != 2 * machine.n_leaf_pairs:
                raise SpecError("RTPLAN", f"beam {beam.BeamNumber} control point {j}: needs "
                                          f"{2 * machine.n_leaf_pairs} MLCX positions")
            last_mlc = mlc
            gantry = float(item.GantryAngle)
            cps.append(ControlPoint(a, j, gantry, couch, coll, iso))
            arcs.append(a)
            leaves.append(np.stack([mlc[:machine.n_leaf_pairs], mlc[machine.n_leaf_pairs:]], axis=1))
            jaws.append([x_jaw[0], x_jaw[1], y_jaw[0], y_jaw[1]])
    aps = Apertures(machine, tuple(cps), np.array(arcs), np.array(leaves), np.array(jaws, dtype=float))
    return RtplanDelivery(aps, np.concatenate(segments), n_fractions, np.array(beam_mu),
                          np.concatenate([np.asarray(r, float) for r in rates]))
