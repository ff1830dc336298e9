#!/usr/bin/env python
"""GPU acceptance: every GPU path against the CPU on the same inputs, one table, non-zero exit on a failed check.

    python benchmarks/gpu_acceptance.py            # on a CUDA machine (pip install -e .[gpu]); < 8 min on an H100/H200
    python benchmarks/gpu_acceptance.py --tiny     # the same stages, tiny inputs, in the Numba CUDA simulator (CI)
    python benchmarks/gpu_acceptance.py --tiny --backend cuda   # tiny inputs on the GPU (tests marked gpu)

Stages (GPU = --backend: cuda by default, cudasim with --tiny):
  1. compile: the backend's self-test (every kernel compiled, tiny influence case and products vs the CPU);
     its time is the compile time (kernels are cached on disk: a second run shows the cache).
  2. 6 MV depth dose in water (10 x 10 cm, SSD 100 cm) on the GPU vs the CPU beam model: max |dPDD| (%)
     and the dose at dmax.
  3. t10_body influence matrix at 2 mm (two full arcs, 4 degrees, 2.5 mm beamlets; the rows a plan uses):
     time after compile, compile time, non-zeros on both, max |D_gpu w - D_cpu w| / max for random w.
  4. uniform and SIB plans (PlanSettings defaults) on the GPU vs the CPU plan: every reported metric,
     feasibility, boost goal, time.
  5. the optimiser's products D @ w and D^T @ g: GB/s of matrix traffic against the device's copy
     bandwidth measured in the same run (target >= 50 %).
  6. host <-> device crossings inside optimiser iterations (copies: none; scalars: a handful).
  7. peak device memory.
Checks (correctness) decide the exit code; targets (speed) are reported as met / missed.
--tiny: the tiny phantom of simsbrt.tiny_case, a 1 x 1 cm field, a short search; the
simulator's times mean nothing (it runs each CUDA thread as a Python thread).
--details FILE: also write the raw results (JSON) there.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import git_commit, machine_line, print_table  # noqa: E402

PDD_TOL_PERCENT = 0.1          # PDD points, GPU vs CPU
PRODUCT_RTOL = 1e-3            # max |D_gpu w - D_cpu w| / max |D_cpu w|
NNZ_RTOL = 1e-3                # sampled tails: a float32 rounding may flip a roulette draw
METRIC_TOL_GY = 0.5            # every reported plan metric, GPU plan vs CPU plan
TINY_METRIC_TOL_GY = 0.1       # in the simulator the two run the same arithmetic
BANDWIDTH_TARGET = 0.5         # products at >= 50 % of the device copy bandwidth (a target, not a check)
INFLUENCE_TARGET_S = 1.0
SIB_TARGET_S = 5.0


class Table:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, stage: str, quantity: str, value, reference="", limit="", ok: bool | None = None,
            target: bool | None = None):
        status = "" if ok is None else ("pass" if ok else "FAIL")
        if target is not None:
            status = "target met" if target else "target missed"
        self.rows.append({"stage": stage, "quantity": quantity, "gpu": _fmt(value), "cpu": _fmt(reference),
                          "limit": limit, "status": status})

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "FAIL"]


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _sync(kernels) -> None:
    getattr(kernels, "synchronize", lambda: None)()


def _device_memory() -> dict:
    """Used device memory (bytes) now, or {} in the simulator / without cupy."""
    try:
        import cupy

        free, total = cupy.cuda.runtime.memGetInfo()
        return {"used": int(total - free), "total": int(total)}
    except Exception:  # noqa: BLE001
        return {}


class MemoryWatch:
    def __init__(self):
        self.peak = 0
        self.total = 0

    def sample(self):
        m = _device_memory()
        if m:
            self.peak = max(self.peak, m["used"])
            self.total = m["total"]


# ------------------------------------------------------------------ stages
def stage_compile(table: Table, backend_name: str, device: str) -> float:
    from simsbrt.backend import cuda_self_test

    test = cuda_self_test(device, backend_name)
    table.add("compile", "self-test (compile + tiny case vs CPU)", test.detail, ok=test.passed)
    table.add("compile", "compile + self-test time (s)", test.seconds)
    return test.seconds


def stage_pdd(table: Table, backend, tiny: bool) -> None:
    from simsbrt.dose.water import WaterSetup, pdd_and_profile

    setup = (WaterSetup(field_mm=10.0, depth_max_mm=20.0, depth_step_mm=2.0, lateral_step_mm=2.0) if tiny
             else WaterSetup())
    depth_mm = 10.0 if tiny else 100.0
    t0 = time.perf_counter()
    gpu = pdd_and_profile(setup, depth_mm, backend=backend)
    t_gpu = time.perf_counter() - t0
    cpu = pdd_and_profile(setup, depth_mm, backend="cpu")
    diff = float(np.max(np.abs(gpu.pdd_percent - cpu.pdd_percent)))
    table.add("6 MV PDD", f"max |dPDD| (%), {setup.field_mm / 10:g} cm field, {len(cpu.depth_mm)} depths", diff,
              0.0, f"<= {PDD_TOL_PERCENT}", diff <= PDD_TOL_PERCENT)
    rel = abs(gpu.dose_at_dmax_gy_per_mu / cpu.dose_at_dmax_gy_per_mu - 1.0)
    table.add("6 MV PDD", "dose at dmax (Gy/MU)", gpu.dose_at_dmax_gy_per_mu, cpu.dose_at_dmax_gy_per_mu,
              "rel <= 1e-4", rel <= 1e-4)
    table.add("6 MV PDD", "time (s)", t_gpu)


def _inputs(backend, tiny: bool):
    if tiny:
        from simsbrt.tiny_case import tiny_inputs

        return tiny_inputs(backend)
    from simsbrt.geometry.arcs import default_arc_set
    from simsbrt.optimize.plans import prepare_plan_inputs
    from simsbrt.phantom import build_phantom, load_spec

    return prepare_plan_inputs(build_phantom(load_spec("t10_body").with_spacing(2.0)), default_arc_set(), backend)


def stage_influence(table: Table, backend, tiny: bool, memory: MemoryWatch):
    from simsbrt.kernels.sparse import csr_matvec
    from simsbrt.optimize.device import dose_rows, target_of

    label = "tiny t10" if tiny else "t10_body 2 mm"
    t0 = time.perf_counter()
    gpu = _inputs(backend, tiny)
    target = target_of(gpu.backend)
    _sync(target.kernels)
    wall = time.perf_counter() - t0
    memory.sample()
    cpu = _inputs("cpu", tiny)
    im_g, im_c = gpu.influence, cpu.influence
    t_inf = float(im_g.timings_s.get("total_s", wall)) - float(im_g.timings_s.get("compile_s", 0.0))
    table.add("influence", f"{label}: time after compile (s)", t_inf, float(im_c.timings_s.get("total_s", 0.0)),
              "" if tiny else f"target <= {INFLUENCE_TARGET_S:g} s",
              target=None if tiny else t_inf <= INFLUENCE_TARGET_S)
    table.add("influence", f"{label}: compile time in this process (s)", float(im_g.timings_s.get("compile_s", 0.0)))
    nnz_rel = abs(im_g.nnz - im_c.nnz) / max(im_c.nnz, 1)
    table.add("influence", f"{label}: non-zeros", im_g.nnz, im_c.nnz, f"rel <= {NNZ_RTOL:g}", nnz_rel <= NNZ_RTOL)
    w = np.random.default_rng(0).uniform(0.0, 2.0, im_c.n_beamlets)
    k = target.kernels
    d_gpu = k.to_host(dose_rows(im_g, k.to_device(w), target))
    d_cpu = np.empty(im_c.n_voxels)
    csr_matvec(im_c.matrix.indptr, im_c.matrix.indices, im_c.matrix.data, w, d_cpu)
    err = float(np.max(np.abs(d_gpu - d_cpu)) / np.max(np.abs(d_cpu)))
    table.add("influence", f"{label}: max |D_gpu w - D_cpu w| / max", err, 0.0, f"<= {PRODUCT_RTOL:g}",
              err <= PRODUCT_RTOL)
    return gpu, cpu


def _plan_summary(inputs, mode: str, settings) -> dict:
    from simsbrt.optimize.plans import make_plan

    t0 = time.perf_counter()
    plan = make_plan(inputs, mode, settings)
    return {"metrics": plan.metrics, "feasible": bool(plan.feasible), "boost_goal_gy": plan.boost_goal_gy,
            "time_s": time.perf_counter() - t0, "backend": plan.backend, "n_iterations": plan.n_iterations,
            "statuses": [r.status for r in plan.evaluation.rows], "search": [s.acceptable for s in plan.search],
            "weights_sum_mu": float(np.sum(plan.weights))}


def stage_plans(table: Table, gpu_inputs, cpu_inputs, tiny: bool, memory: MemoryWatch) -> dict:
    from simsbrt.optimize.plans import PlanSettings

    settings = PlanSettings()
    tol = METRIC_TOL_GY
    if tiny:
        from simsbrt.tiny_case import tiny_settings

        settings, tol = tiny_settings(), TINY_METRIC_TOL_GY
    details = {}
    for mode in ("uniform", "sib"):
        g = _plan_summary(gpu_inputs, mode, settings)
        memory.sample()
        c = _plan_summary(cpu_inputs, mode, settings)
        details[mode] = {"gpu": g, "cpu": c}
        worst, where = 0.0, "every metric"
        for structure, metrics in c["metrics"].items():
            for metric, value in metrics.items():
                other = g["metrics"][structure][metric]
                if (value is None) != (other is None):
                    worst, where = float("inf"), f"{structure} {metric}"
                elif value is not None and abs(other - value) > worst:
                    worst, where = abs(other - value), f"{structure} {metric}"
        table.add(f"{mode} plan", f"max |d metric| (Gy), at {where}", worst, 0.0, f"<= {tol:g}", worst <= tol)
        same = g["feasible"] == c["feasible"] and g["boost_goal_gy"] == c["boost_goal_gy"]
        table.add(f"{mode} plan", "feasible / boost goal (Gy)", f"{g['feasible']} / {g['boost_goal_gy']}",
                  f"{c['feasible']} / {c['boost_goal_gy']}", "equal", same)
        table.add(f"{mode} plan", "time (s)", g["time_s"], c["time_s"],
                  f"target <= {SIB_TARGET_S:g} s" if mode == "sib" and not tiny else "",
                  target=(g["time_s"] <= SIB_TARGET_S) if mode == "sib" and not tiny else None)
    return details


def stage_crossings(table: Table, gpu_inputs) -> dict:
    """Host <-> device copies and device scalars read on the host during optimiser iterations."""
    from simsbrt.tiny_case import count_iteration_crossings

    c = count_iteration_crossings(gpu_inputs)
    per_iter = c["host_scalar"] / max(c["iterations"], 1)
    table.add("crossings", f"copies in {c['iterations']} optimiser iterations (to device / to host)",
              f"{c['to_device']} / {c['to_host']}", "", "0 / 0", c["to_device"] == 0 and c["to_host"] == 0)
    table.add("crossings", "device scalars read on the host per iteration", per_iter, "", "<= 8", per_iter <= 8)
    return c


def _copy_bandwidth(target, n_bytes: int, repeats: int) -> float:
    """Device copy bandwidth (bytes read + written per second)."""
    xp, k = target.xp, target.kernels
    src = xp.ones(n_bytes // 4, dtype=xp.float32)
    dst = xp.empty_like(src)
    times = []
    for _ in range(repeats + 1):
        _sync(k)
        t0 = time.perf_counter()
        dst[...] = src
        _sync(k)
        times.append(time.perf_counter() - t0)
    return 2 * src.nbytes / statistics.median(times[1:])


def stage_products(table: Table, gpu_inputs, tiny: bool, memory: MemoryWatch) -> None:
    from simsbrt.optimize.problem import FluenceProblem

    problem = FluenceProblem.build(gpu_inputs.influence, gpu_inputs.phantom.structures, target=gpu_inputs.backend)
    op, target = problem.operator, problem.target
    xp, k = target.xp, target.kernels
    repeats = 3 if tiny else 20
    copy = _copy_bandwidth(target, (1 << 20) if tiny else (1 << 30), repeats)
    memory.sample()
    for direction, m, apply in (("D @ w", op._m, lambda v: op @ v), ("D^T @ g", op._mt, lambda v: op.T @ v)):
        v = xp.ones(m.shape[1], dtype=xp.float64)
        times = []
        for _ in range(repeats + 1):
            _sync(k)
            t0 = time.perf_counter()
            apply(v)
            _sync(k)
            times.append(time.perf_counter() - t0)
        t = statistics.median(times[1:])
        traffic = m.nnz * (m.data.dtype.itemsize + m.indices.dtype.itemsize) + (m.shape[0] + 1) * 4 \
            + m.shape[1] * 8 + m.shape[0] * 8
        frac = traffic / t / copy
        table.add("products", f"{direction} {m.shape[0]}x{m.shape[1]}, nnz {m.nnz}: GB/s (of copy {copy / 1e9:.1f})",
                  traffic / t / 1e9, "", "" if tiny else f"target >= {BANDWIDTH_TARGET:.0%} of copy",
                  target=None if tiny else frac >= BANDWIDTH_TARGET)


# ------------------------------------------------------------------ main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=("cuda", "cudasim"), help="default: cuda, or cudasim with --tiny")
    ap.add_argument("--tiny", action="store_true", help="tiny inputs (in the Numba CUDA simulator unless --backend cuda)")
    ap.add_argument("--details", help="write the raw results (JSON) to this file")
    args = ap.parse_args(argv)
    backend_name = args.backend or ("cudasim" if args.tiny else "cuda")
    from simsbrt.backend import resolve_backend
    from simsbrt.errors import SimsbrtError

    t_start = time.perf_counter()
    try:
        backend = resolve_backend(backend_name)
    except SimsbrtError as exc:
        print(f"gpu_acceptance: {exc}", file=sys.stderr)
        return 2
    print(f"# simsbrt GPU acceptance: backend {backend.name} on {backend.device}"
          f"{' (tiny inputs)' if args.tiny else ''}{' (simulator: times mean nothing)' if backend.name == 'cudasim' else ''}")
    print(f"# command: python benchmarks/gpu_acceptance.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"# {machine_line()}; load average at start {os.getloadavg()[0]:.1f}; commit {git_commit()}")
    table, memory = Table(), MemoryWatch()
    memory.sample()
    stage_compile(table, backend.name, backend.device)
    stage_pdd(table, backend, args.tiny)
    gpu_inputs, cpu_inputs = stage_influence(table, backend, args.tiny, memory)
    details = {"plans": stage_plans(table, gpu_inputs, cpu_inputs, args.tiny, memory),
               "crossings": stage_crossings(table, gpu_inputs)}
    stage_products(table, gpu_inputs, args.tiny, memory)
    memory.sample()
    table.add("memory", "peak device memory used (GiB, sampled after each stage)",
              memory.peak / 2**30 if memory.total else "n/a (simulator)",
              f"of {memory.total / 2**30:.0f}" if memory.total else "")
    print_table(table.rows, ["stage", "quantity", "gpu", "cpu", "limit", "status"])
    failed = table.failed
    print(f"# {len(table.rows)} rows, {len(failed)} failed check(s); total {time.perf_counter() - t_start:.0f} s; "
          f"load average at end {os.getloadavg()[0]:.1f}")
    if args.details:
        Path(args.details).write_text(json.dumps({"backend": backend.name, "device": backend.device,
                                                  "rows": table.rows, **details}, default=float))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
