#!/usr/bin/env python
"""Derive the measured profile metrics in beam_reference.toml from the PTW MEPHYSTO scans.

The scans are public: pymedphys/pymedphys (Apache-2.0), at commit ce8f485188c2943466a7378c2379cc963264e188,
lib/pymedphys/tests/experimental/mephysto/data/measurements/06MV_05x05.mcc and 06MV_10x10.mcc
(6 MV, linac "M2619", SSD 90 cm, PTW 60008 diode profiles, symmetrised by the export software).
Positions in the files are physical distances at the scan depth.

    python benchmarks/data/extract_mcc_profiles.py PATH/06MV_05x05.mcc PATH/06MV_10x10.mcc

prints one TOML [[profile_measured]] entry per (field, depth, axis) with the metrics of
simsbrt.dose.beam_check (the same functions the benchmark applies to the model).
"""
from __future__ import annotations

import sys

import numpy as np

from simsbrt.dose.beam_check import SHOULDER_FRACTION, profile_metrics, projected_half_width_mm


def read_mcc(path: str) -> list[dict]:
    scans, cur, data = [], None, None
    for raw in open(path, encoding="latin-1"):
        line = raw.strip()
        if line.startswith("BEGIN_SCAN") and not line.startswith("BEGIN_SCAN_DATA"):
            cur, data = {}, []
        elif line.startswith("END_SCAN") and not line.startswith("END_SCAN_DATA"):
            cur["data"] = np.array(data, dtype=float)
            scans.append(cur)
            cur = None
        elif cur is not None and line == "BEGIN_DATA":
            cur["_in_data"] = True
        elif cur is not None and line == "END_DATA":
            cur["_in_data"] = False
        elif cur is not None and cur.get("_in_data"):
            data.append([float(v) for v in line.split()[:2]])
        elif cur is not None and "=" in line:
            key, value = line.split("=", 1)
            cur[key] = value
    return scans


def main(paths):
    for path in paths:
        for scan in read_mcc(path):
            kind = scan.get("SCAN_CURVETYPE", "")
            if not kind.endswith("_PROFILE"):
                continue
            field = float(scan["FIELD_INPLANE"]) if kind.startswith("INPLANE") else float(scan["FIELD_CROSSPLANE"])
            ssd, depth = float(scan["SSD"]), float(scan["SCAN_DEPTH"])
            x, d = scan["data"][:, 0], scan["data"][:, 1]
            at = SHOULDER_FRACTION * projected_half_width_mm(field, ssd, depth)
            m = profile_metrics(x, d, at)
            print("[[profile_measured]]")
            axis = kind.split("_")[0].lower()
            print(f'field_mm = {field:.0f}\nssd_mm = {ssd:.0f}\ndepth_mm = {depth:.0f}\naxis = "{axis}"')
            print(f"width_50_mm = {m.width_50_mm:.2f}\npenumbra_80_20_mm = {m.penumbra_80_20_mm:.2f}\n"
                  f"shoulder = {m.shoulder:.4f}")
            print(f'detector = "{scan.get("DETECTOR_NAME", "")}"\nsource = "pymedphys_mcc"\n')


if __name__ == "__main__":
    main(sys.argv[1:])
