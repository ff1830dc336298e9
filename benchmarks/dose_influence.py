#!/usr/bin/env python
"""Influence-matrix benchmark on the standard phantom t10_body (two full arcs, 4 degree control
points, 2.5 mm beamlets) at 2.0 and 1.5 mm grids.

Prints one table row per grid and backend: n_voxels (rows), n_beamlets, nnz, bytes, wall time
(median of 3 after a warm-up run that includes the Numba compile), peak resident memory of the
process, backend; then the stage times and a sampling-accuracy check (the default sampled matrix
against an exact, cut-off-free calculation on a random subset of rows, uniform weights).
Targets: 2.0 mm grid <= 60 s on the 2-core CPU; <= 2 s on an H100 GPU.

    python benchmarks/dose_influence.py [--grids 2.0 1.5] [--repeats 3] [--backend cpu]
Each configuration runs in its own process so that the peak memory is its own.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np


def run_single(spacing_mm: float, repeats: int, backend: str, check_rows: int) -> dict:
    from simsbrt.dose.engine import EXACT, InfluenceOptions, compute_influence, exact_row_mask, select_rows
    from simsbrt.geometry.arcs import default_arc_set
    from simsbrt.geometry.beamlets import build_beamlets
    from simsbrt.phantom import build_phantom, load_spec

    ph = build_phantom(load_spec("t10_body").with_spacing(spacing_mm))
    rows = select_rows(ph.grid, ph.structures, body_margin_mm=30.0, structure_margin_mm=30.0)
    beamlets = build_beamlets(default_arc_set(), ph.grid, ph.structures["PTV"])
    exact_rows = exact_row_mask(rows, ph.structures)
    options = InfluenceOptions()

    def once():
        return compute_influence(ph.grid, ph.density, rows, beamlets, None, options, backend, exact_rows=exact_rows)

    t0 = time.perf_counter()
    im = once()  # warm-up (compile)
    warmup_s = time.perf_counter() - t0
    walls, stages = [], []
    for _ in range(repeats):
        del im
        t0 = time.perf_counter()
        im = once()
        walls.append(time.perf_counter() - t0)
        stages.append(im.timings_s)
    result = {
        "grid_mm": spacing_mm, "grid_shape": list(ph.grid.shape), "n_voxels": im.n_voxels,
        "n_exact_rows": int(exact_rows.sum()), "n_beamlets": im.n_beamlets,
        "n_control_points": beamlets.n_control_points, "nnz": im.nnz, "bytes": im.nbytes,
        "wall_s_median": statistics.median(walls), "wall_s_all": walls, "warmup_s": warmup_s,
        "stages_s": {k: statistics.median(s[k] for s in stages) for k in stages[0]},
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "backend": im.backend, "device": im.device,
    }
    if check_rows:
        rng = np.random.default_rng(0)
        pick = np.sort(rng.choice(len(rows), size=min(check_rows, len(rows)), replace=False))
        ref = compute_influence(ph.grid, ph.density, rows[pick], beamlets, None, EXACT, backend)
        w = np.ones(im.n_beamlets)
        d_ref = ref.dose(w)
        d = im.dose(w)[pick]
        scale = d_ref.max()
        result["check"] = {"rows": int(len(pick)), "max_abs_err_frac_of_max": float(np.abs(d - d_ref).max() / scale),
                           "mean_err_frac_of_max": float((d - d_ref).mean() / scale),
                           "rms_err_frac_of_max": float(np.sqrt(np.mean((d - d_ref) ** 2)) / scale)}
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids", type=float, nargs="+", default=[2.0, 1.5])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--check-rows", type=int, default=1000)
    ap.add_argument("--single", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single is not None:
        print(json.dumps(run_single(args.single, args.repeats, args.backend, args.check_rows)))
        return 0

    from simsbrt.backend import probe_cuda

    results = []
    for spacing in args.grids:
        cmd = [sys.executable, __file__, "--single", str(spacing), "--repeats", str(args.repeats),
               "--backend", args.backend, "--check-rows", str(args.check_rows)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    print("# simsbrt influence-matrix benchmark: t10_body, two full arcs (4 deg), 2.5 mm beamlets")
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"python {platform.python_version()}")
    header = (f"{'grid_mm':>7} {'n_voxels':>9} {'n_beamlets':>10} {'nnz':>11} {'bytes':>13} "
              f"{'wall_s':>8} {'peak_mem':>10} {'backend':<8}")
    print(header)
    for r in results:
        print(f"{r['grid_mm']:7.1f} {r['n_voxels']:9d} {r['n_beamlets']:10d} {r['nnz']:11d} {r['bytes']:13d} "
              f"{r['wall_s_median']:8.2f} {r['peak_rss_bytes'] / 2**30:8.2f}Gi {r['backend']:<8}")
    probe = probe_cuda()
    if not probe.available:
        for spacing in args.grids:
            print(f"{spacing:7.1f} {'unmeasured: no GPU':>54} {'':>19} cuda    ")
    print()
    for r in results:
        stages = ", ".join(f"{k[:-2]} {v:.2f} s" for k, v in r["stages_s"].items())
        print(f"# {r['grid_mm']} mm: grid {r['grid_shape']}, {r['n_control_points']} control points, "
              f"{r['n_exact_rows']} exact (cord/PRV/sac) rows; warm-up {r['warmup_s']:.1f} s; "
              f"runs {', '.join(f'{w:.1f}' for w in r['wall_s_all'])} s")
        print(f"#   stages (median): {stages}")
        if "check" in r:
            c = r["check"]
            print(f"#   sampling check on {c['rows']} random rows, uniform weights, against exact: max |err| "
                  f"{100 * c['max_abs_err_frac_of_max']:.3f} %, mean {100 * c['mean_err_frac_of_max']:+.4f} %, "
                  f"rms {100 * c['rms_err_frac_of_max']:.3f} % of the max dose of those rows")
    print(f"# target: 2.0 mm grid <= 60 s on the 2-core CPU "
          f"({'met' if results and results[0]['wall_s_median'] <= 60 else 'NOT met'} here); <= 2 s on an H100 GPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
