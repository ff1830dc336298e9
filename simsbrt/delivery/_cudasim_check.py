"""Run a tiny MLC-aperture dose case on a chosen backend and save it (for the CPU / CUDA comparison).

    NUMBA_ENABLE_CUDASIM=1 python -m simsbrt.delivery._cudasim_check OUT.npz [--backend cudasim]

NUMBA_ENABLE_CUDASIM must be set before Python starts, so tests run this in a subprocess.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np


def tiny_apertures():
    """The influence check's tiny grid; two control points of an HD120 aperture with a stepped edge."""
    from simsbrt.delivery.apertures import Apertures
    from simsbrt.delivery.machine import load_machine
    from simsbrt.dose._cudasim_check import tiny_case

    grid, density, rows, beamlets = tiny_case()
    m = load_machine("truebeam_hd120")
    leaves = np.zeros((2, m.n_leaf_pairs, 2))
    leaves[:, :, :] = (-0.25, 0.25)
    mid = m.n_leaf_pairs // 2
    leaves[0, mid - 3:mid + 3] = [(-7.5, 5.0), (-5.0, 7.5), (-10.0, 10.0), (-2.5, 12.5), (-5.0, 5.0), (0.0, 2.5)]
    leaves[1, mid - 2:mid + 2] = [(-5.0, 5.0), (-7.5, 2.5), (-5.0, 7.5), (-2.5, 2.5)]
    jaws = np.array([[-10.0, 12.5, -7.5, 7.5], [-7.5, 7.5, -5.0, 5.0]])
    aps = Apertures(m, beamlets.control_points[:2], np.zeros(2, int), leaves, jaws)
    return grid, density, rows, aps


def run_case(backend: str) -> dict:
    from simsbrt.delivery.apertures import ApertureDoseEngine

    grid, density, rows, aps = tiny_apertures()
    engine = ApertureDoseEngine(grid, density, aps, backend=backend)
    return {"columns": engine.columns(rows), "dose": engine.dose(rows, np.array([2.0, 3.0])),
            "backend": np.array(engine.backend.name)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--backend", default="cudasim")
    args = ap.parse_args(argv)
    np.savez(args.out, **run_case(args.backend))
    return 0


if __name__ == "__main__":
    sys.exit(main())
