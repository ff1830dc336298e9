#!/usr/bin/env python
"""Performance tables for t10_body (issue 5): influence matrix, sparse products, plans; CPU, and GPU when present.

One run prints three tables:
  1. influence matrix: time and size at 3.0 / 2.0 / 1.5 / 1.0 mm grids (4 degree control points) and at
     2 / 4 / 8 degree control-point spacing (2.0 mm grid); two full arcs, 2.5 mm beamlets, the rows a
     plan uses (simsbrt.optimize.plans.prepare_plan_inputs). A grid whose matrix cannot be built here
     (int32 indexing, memory) is reported as such with the count the engine found.
  2. sparse products D @ w and D^T @ g (2.0 mm grid): GB/s of matrix traffic next to this machine's copy
     bandwidth measured in the same run, for the raw influence matrix and the optimiser's matrix.
  3. plans: one uniform optimisation and the full SIB search (3.0 and 2.0 mm grids).
Then how cost grows with voxels and beamlets (log-log fits over table 1).

Each configuration runs in its own process, so its peak memory is its own. Every timed run comes after
an untimed warm-up that loads / compiles the kernels; the warm-up time is printed too. Times are medians
of --repeats runs (the 1.0 mm attempt and the 2.0 mm plans run once: say so in the table).

    python benchmarks/performance.py [--backend cpu|cuda] [--repeats 3] [--quick]
--quick: 3.0 mm and 8 degrees only (a smoke run of the script, minutes less).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine_line, peak_rss_mib, print_table, timed_runs  # noqa: E402

PHANTOM = "t10_body"
GRIDS_MM = (3.0, 2.0, 1.5, 1.0)
CP_SPACINGS_DEG = (2.0, 4.0, 8.0)
REFERENCE_GRID_MM = 2.0
REFERENCE_CP_DEG = 4.0
SINGLE_RUN_GRIDS_MM = (1.0,)          # too slow / too big to repeat on the 2-core machine
PLAN_GRIDS_MM = (3.0, 2.0)
SINGLE_PLAN_RUN_GRIDS_MM = (2.0,)


# ------------------------------------------------------------------ shared pieces (run inside the children)
def _arcs(cp_deg: float):
    from simsbrt.geometry.arcs import default_arc_set

    return default_arc_set(spacing_deg=cp_deg)


def _phantom(grid_mm: float):
    from simsbrt.phantom import build_phantom, load_spec

    return build_phantom(load_spec(PHANTOM).with_spacing(grid_mm))


def _warm_up(backend: str) -> float:
    """Load / compile every kernel on a small case; returns its wall time (reported, never hidden)."""
    from simsbrt.optimize.plans import prepare_plan_inputs

    t0 = time.perf_counter()
    prepare_plan_inputs(_phantom(3.0), _arcs(20.0), backend)
    return time.perf_counter() - t0


def _loadavg() -> float:
    return os.getloadavg()[0]


# ------------------------------------------------------------------ 1. influence matrix
def influence_case(grid_mm: float, cp_deg: float, repeats: int, backend: str) -> dict:
    from simsbrt.errors import SimsbrtError
    from simsbrt.optimize.plans import prepare_plan_inputs

    warmup_s = _warm_up(backend)
    phantom = _phantom(grid_mm)
    arcs = _arcs(cp_deg)
    out = {"grid_mm": grid_mm, "cp_deg": cp_deg, "grid_voxels": phantom.grid.n_voxels, "warmup_s": warmup_s,
           "load_start": _loadavg()}
    walls = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        try:
            inputs = prepare_plan_inputs(phantom, arcs, backend)
        except (SimsbrtError, MemoryError) as exc:
            out.update(status=f"not built: {exc}", fail_s=time.perf_counter() - t0)
            break
        walls.append(time.perf_counter() - t0)
        im = inputs.influence
        out.update(n_rows=im.n_voxels, n_beamlets=im.n_beamlets, nnz=im.nnz, bytes=im.nbytes,
                   backend=im.backend, device=im.device, status="built")
        del inputs, im
    out.update(walls_s=walls, peak_rss_mib=peak_rss_mib(), load_end=_loadavg())
    return out


# ------------------------------------------------------------------ 2. sparse products
def _median_time(fn, repeats: int) -> float:
    return timed_runs(fn, repeats, warmup=1)[0]


def _copy_bandwidth(n_bytes: int, repeats: int) -> dict:
    """Copy bandwidth (bytes read + bytes written per second): numpy (one thread) and a numba prange copy."""
    from numba import njit, prange

    @njit(parallel=True, cache=False)
    def parallel_copy(src, dst):
        for i in prange(src.shape[0]):
            dst[i] = src[i]

    src = np.ones(n_bytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    t_np = _median_time(lambda: np.copyto(dst, src), repeats)
    t_nb = _median_time(lambda: parallel_copy(src, dst), repeats)
    return {"numpy_copy_gbs": 2 * src.nbytes / t_np / 1e9, "numba_parallel_copy_gbs": 2 * src.nbytes / t_nb / 1e9,
            "copy_bytes": int(src.nbytes)}


def _csr_traffic_bytes(n_rows: int, n_cols: int, nnz: int, value_bytes: int, index_bytes: int) -> int:
    """Lower bound of the bytes a CSR product moves: values + column indices + row pointers, the input
    vector once (float64) and the output (float64)."""
    return nnz * (value_bytes + index_bytes) + (n_rows + 1) * 4 + n_cols * 8 + n_rows * 8


def _product_rows(label: str, matrix_t_pairs, repeats: int, kernel) -> list[dict]:
    rows = []
    for direction, m in matrix_t_pairs:
        n_rows, n_cols = m.shape
        x = np.linspace(0.5, 1.5, n_cols)
        out = np.empty(n_rows)
        t = _median_time(lambda: kernel(m.indptr, m.indices, m.data, x, out), repeats)
        traffic = _csr_traffic_bytes(n_rows, n_cols, int(m.data.size), m.data.itemsize, m.indices.itemsize)
        rows.append({"matrix": label, "product": direction, "shape": f"{n_rows}x{n_cols}", "nnz": int(m.data.size),
                     "traffic_mib": traffic / 2**20, "time_s": t, "gbs": traffic / t / 1e9})
    return rows


def products_case(grid_mm: float, repeats: int, backend: str) -> dict:
    from simsbrt.kernels.sparse import csr_matvec
    from simsbrt.optimize.plans import prepare_plan_inputs
    from simsbrt.optimize.problem import FluenceProblem

    copy = _copy_bandwidth(1 << 30, repeats)
    inputs = prepare_plan_inputs(_phantom(grid_mm), _arcs(REFERENCE_CP_DEG), backend)
    m = inputs.influence.matrix
    rows = _product_rows("influence (float32, int32 idx)", (("D @ w", m), ("D^T @ g", m.T.tocsr())),
                         repeats, csr_matvec)
    problem = FluenceProblem.build(inputs.influence, inputs.phantom.structures)
    op = problem.operator
    rows += _product_rows("optimiser (merged cols, 16-bit idx)", (("D @ w", op._m), ("D^T @ g", op._mt)),
                          repeats, csr_matvec)
    return {"grid_mm": grid_mm, "copy": copy, "rows": rows, "threads": _numba_threads(),
            "peak_rss_mib": peak_rss_mib(), "load": _loadavg()}


def _numba_threads() -> int:
    import numba

    return int(numba.get_num_threads())


# ------------------------------------------------------------------ 3. plans
def plans_case(grid_mm: float, repeats: int, backend: str) -> dict:
    from simsbrt.optimize.plans import PlanSettings, make_plan, prepare_plan_inputs

    warmup_s = _warm_up(backend)
    inputs = prepare_plan_inputs(_phantom(grid_mm), _arcs(REFERENCE_CP_DEG), backend)
    settings = PlanSettings()
    out = {"grid_mm": grid_mm, "warmup_s": warmup_s, "influence_s": inputs.timings_s["dose_s"],
           "n_rows": inputs.influence.n_voxels, "n_beamlets": inputs.influence.n_beamlets,
           "nnz": inputs.influence.nnz, "load_start": _loadavg(), "plans": {}}
    for mode in ("uniform", "sib"):
        _, walls, result = timed_runs(lambda: make_plan(inputs, mode, settings), repeats, warmup=0)
        out["plans"][mode] = {"walls_s": walls, "n_optimisations": max(1, len(result.search)),
                              "iterations": result.n_iterations, "optimise_s": result.timings_s.get("optimise_s"),
                              "gtv_d50_gy": result.metrics["GTV"]["D50%"], "feasible": bool(result.feasible),
                              "backend": result.backend, "device": result.device}
    out.update(peak_rss_mib=peak_rss_mib(), load_end=_loadavg())
    return out


CASES = {"influence": influence_case, "products": products_case, "plans": plans_case}


# ------------------------------------------------------------------ the parent: run children, print tables
def run_child(kind: str, args: list, timeout_s: float) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, *map(str, args)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    if proc.returncode != 0:
        tail = (proc.stderr or "").strip().splitlines()[-3:]
        killed = proc.returncode < 0 or proc.returncode == 137
        return {"error": ("killed (out of memory?) " if killed else "") + f"rc {proc.returncode}: " + " | ".join(tail),
                "elapsed_s": time.perf_counter() - t0}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt_walls(walls) -> str:
    return "/".join(f"{w:.1f}" for w in walls)


def influence_table(results: list[dict], backend: str) -> list[dict]:
    rows = []
    for r in results:
        if "error" in r or r.get("status") != "built":
            why = r.get("error") or r.get("status")
            rows.append({"grid_mm": r.get("grid_mm"), "cp_deg": r.get("cp_deg"), "voxels": r.get("grid_voxels", ""),
                         "rows": "-", "beamlets": "-", "nnz": "-", "MiB": "-",
                         "time_s": f"{r['fail_s']:.0f} to fail" if "fail_s" in r else "-", "runs_s": "-",
                         "peak_GiB": f"{r['peak_rss_mib'] / 1024:.1f}" if "peak_rss_mib" in r else "-",
                         "backend": backend, "load": "-", "note": why})
            continue
        rows.append({"grid_mm": r["grid_mm"], "cp_deg": r["cp_deg"], "voxels": r["grid_voxels"], "rows": r["n_rows"],
                     "beamlets": r["n_beamlets"], "nnz": r["nnz"], "MiB": f"{r['bytes'] / 2**20:.0f}",
                     "time_s": f"{statistics.median(r['walls_s']):.1f}", "runs_s": _fmt_walls(r["walls_s"]),
                     "peak_GiB": f"{r['peak_rss_mib'] / 1024:.1f}", "backend": r["backend"],
                     "load": f"{r['load_start']:.1f}-{r['load_end']:.1f}", "note": f"warm-up {r['warmup_s']:.1f} s"})
    return rows


def _fit_exponent(x, y) -> float | None:
    if len(x) < 2:
        return None
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def scaling_lines(results: list[dict]) -> list[str]:
    built = [r for r in results if r.get("status") == "built"]
    by_grid = [r for r in built if r["cp_deg"] == REFERENCE_CP_DEG]
    by_cp = [r for r in built if r["grid_mm"] == REFERENCE_GRID_MM]
    lines = []
    for label, group, key in (("rows (voxels)", by_grid, "n_rows"), ("beamlets x control points", by_cp, "n_beamlets")):
        xs = [r[key] for r in group]
        e_nnz = _fit_exponent(xs, [r["nnz"] for r in group])
        e_t = _fit_exponent(xs, [statistics.median(r["walls_s"]) for r in group])
        if e_nnz is not None:
            lines.append(f"# with {label} ({min(xs)}-{max(xs)}, other held fixed): nnz ~ n^{e_nnz:.2f}, "
                         f"time ~ n^{e_t:.2f} (log-log fit over {len(group)} points)")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="3.0 mm / 8 degrees only")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        values = [float(v) for v in rest[:-2]] + [int(rest[-2]), rest[-1]]
        print(json.dumps(CASES[kind](*values)))
        return 0

    from simsbrt.backend import probe_cuda

    t_start = time.perf_counter()
    grids = (3.0,) if args.quick else GRIDS_MM
    cps = (8.0,) if args.quick else CP_SPACINGS_DEG
    ref_grid = 3.0 if args.quick else REFERENCE_GRID_MM
    print(f"# simsbrt performance tables: {PHANTOM}, two full arcs, 2.5 mm beamlets; backend {args.backend}")
    print(f"# {machine_line()}; load average at start {_loadavg():.1f}")
    configs = [(g, REFERENCE_CP_DEG if not args.quick else 8.0) for g in grids]
    configs += [(ref_grid, c) for c in cps if (ref_grid, c) not in configs]
    influence = []
    for grid_mm, cp_deg in configs:
        repeats = 1 if grid_mm in SINGLE_RUN_GRIDS_MM else args.repeats
        print(f"... influence {grid_mm} mm, {cp_deg} deg ({repeats} run(s))", file=sys.stderr, flush=True)
        r = run_child("influence", [grid_mm, cp_deg, repeats, args.backend], timeout_s=1800)
        r.setdefault("grid_mm", grid_mm)
        r.setdefault("cp_deg", cp_deg)
        influence.append(r)
    print("\n## 1. influence matrix (rows a plan uses; time = median of the runs listed, after a warm-up)")
    print_table(influence_table(influence, args.backend),
                ["grid_mm", "cp_deg", "voxels", "rows", "beamlets", "nnz", "MiB", "time_s", "runs_s", "peak_GiB",
                 "backend", "load", "note"])
    for line in scaling_lines(influence):
        print(line)

    print(f"\n## 2. sparse products on the {ref_grid} mm matrix (median of {max(args.repeats, 5)} after one warm-up)",
          flush=True)
    prod = run_child("products", [ref_grid, max(args.repeats, 5), args.backend], timeout_s=1800)
    if "error" in prod:
        print(f"products: {prod['error']}")
    else:
        c = prod["copy"]
        print(f"# copy bandwidth of this machine, {c['copy_bytes'] / 2**30:.0f} GiB float32 array (read + write): "
              f"numpy {c['numpy_copy_gbs']:.1f} GB/s, numba parallel ({prod['threads']} threads) "
              f"{c['numba_parallel_copy_gbs']:.1f} GB/s; load average {prod['load']:.1f}")
        best = max(c["numpy_copy_gbs"], c["numba_parallel_copy_gbs"])
        table = [{**r, "traffic_mib": f"{r['traffic_mib']:.0f}", "time_s": f"{r['time_s']:.3f}",
                  "gbs": f"{r['gbs']:.1f}", "of_copy": f"{100 * r['gbs'] / best:.0f}%", "backend": args.backend}
                 for r in prod["rows"]]
        print_table(table, ["matrix", "product", "shape", "nnz", "traffic_mib", "time_s", "gbs", "of_copy", "backend"])
        print("# traffic = values + column indices + row pointers + input vector once + output (a lower bound: "
              "the gathered input is re-read from cache or memory)")

    print("\n## 3. plans (PlanSettings defaults: 5-step SIB search; 4 degree arcs)", flush=True)
    plan_rows = []
    for grid_mm in ((3.0,) if args.quick else PLAN_GRIDS_MM):
        repeats = 1 if grid_mm in SINGLE_PLAN_RUN_GRIDS_MM else args.repeats
        print(f"... plans {grid_mm} mm ({repeats} run(s))", file=sys.stderr, flush=True)
        r = run_child("plans", [grid_mm, repeats, args.backend], timeout_s=3600)
        if "error" in r:
            plan_rows.append({"grid_mm": grid_mm, "mode": "-", "note": r["error"]})
            continue
        for mode, p in r["plans"].items():
            plan_rows.append({"grid_mm": grid_mm, "mode": mode, "rows": r["n_rows"], "beamlets": r["n_beamlets"],
                              "nnz": r["nnz"], "influence_s": f"{r['influence_s']:.1f}",
                              "plan_s": f"{statistics.median(p['walls_s']):.1f}", "runs_s": _fmt_walls(p["walls_s"]),
                              "n_opt": p["n_optimisations"], "iters": p["iterations"],
                              "GTV_D50": f"{p['gtv_d50_gy']:.1f}", "feasible": "yes" if p["feasible"] else "no",
                              "peak_GiB": f"{r['peak_rss_mib'] / 1024:.1f}", "backend": p["backend"],
                              "load": f"{r['load_start']:.1f}-{r['load_end']:.1f}"})
    print_table(plan_rows, ["grid_mm", "mode", "rows", "beamlets", "nnz", "influence_s", "plan_s", "runs_s", "n_opt",
                            "iters", "GTV_D50", "feasible", "peak_GiB", "backend", "load"])
    print("# plan_s of sib = the whole boost search (n_opt optimisations, evaluations, final polish); uniform = one "
          "optimisation")

    probe = probe_cuda()
    if args.backend == "cpu":
        print(f"\n## GPU rows: {'run again with --backend cuda' if probe.available else 'unmeasured: ' + probe.detail}")
    print(f"# total wall time {time.perf_counter() - t_start:.0f} s; load average at end {_loadavg():.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
