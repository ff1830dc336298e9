"""Run a tiny influence-matrix case on a chosen backend and save the results (for the CPU/CUDA check).

    NUMBA_ENABLE_CUDASIM=1 python -m simsbrt.dose._cudasim_check OUT.npz [--backend cudasim]

NUMBA_ENABLE_CUDASIM must be set in the environment before Python starts (numba reads it on
first import), so tests run this module in a subprocess and compare its arrays with the CPU's.
The case is small on purpose: the simulator runs each CUDA thread in Python.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from simsbrt.grid import Grid

TINY_OPTIONS = {"exact": 0.0, "sampled": 0.05}


def tiny_case():
    """A 5 mm grid with a water cube, a dense slab and a low-density column; three control points
    (the third repeats the first, exercising the copy of identical control points), a few beamlets each."""
    from simsbrt.geometry.arcs import ControlPoint
    from simsbrt.geometry.beamlets import BeamletGrid, BeamletSet

    grid = Grid((7, 7, 4), (5.0, 5.0, 5.0), (-15.0, -15.0, -7.5))
    density = np.ones(grid.shape, np.float32)
    density[:, 4:, :] = 1.6  # a bone-like slab posterior
    density[0, :, :] = 0.3  # lung-like column on the right
    rows = np.arange(0, grid.n_voxels, 6, dtype=np.int64)
    cps = (ControlPoint(0, 0, 0.0, 0.0, 0.0, (0.0, 0.0, 0.0)), ControlPoint(0, 1, 100.0, 0.0, 20.0, (0.0, 0.0, 0.0)),
           ControlPoint(1, 0, 0.0, 0.0, 0.0, (0.0, 0.0, 0.0)))  # same as the first: computed once, copied
    active = np.ones((4, 3), bool)
    active[0, 0] = False
    grids = (BeamletGrid(-2, -1, active), BeamletGrid(-2, -2, np.ones((4, 4), bool)), BeamletGrid(-2, -1, active))
    return grid, density, rows, BeamletSet(2.5, cps, grids)


def run_case(backend: str) -> dict[str, np.ndarray]:
    from simsbrt.dose.engine import InfluenceOptions, compute_influence

    grid, density, rows, beamlets = tiny_case()
    out = {}
    for name, frac in TINY_OPTIONS.items():
        im = compute_influence(grid, density, rows, beamlets, None, InfluenceOptions(tail_threshold_frac=frac, seed=7),
                               backend)
        out[f"{name}_dense"] = im.matrix.toarray()
        out[f"{name}_nnz"] = np.array(im.nnz)
    # the exact final dose of non-uniform weights through the fluence kernel (the third control point aliases
    # the first: its weights are summed into the first's map)
    from types import SimpleNamespace

    from simsbrt.dose.final import final_dose

    weights = 1.0 + np.arange(beamlets.n_beamlets) % 5
    fd = final_dose(SimpleNamespace(grid=grid, density=density, structures={}), beamlets, weights, backend,
                    region="grid")
    out["final_dose"] = fd.dose_gy
    out["final_weights"] = weights
    out["backend"] = np.array(im.backend)
    out["device"] = np.array(im.device)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--backend", default="cudasim")
    args = ap.parse_args(argv)
    np.savez(args.out, **run_case(args.backend))
    return 0


if __name__ == "__main__":
    sys.exit(main())
