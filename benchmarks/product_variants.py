"""The optimiser's CSR product D x against variants of its inner loop, on a matrix of the main job's size.

D x is the optimiser's cost (two products per L-BFGS iteration, simsbrt.optimize.problem.SparseOperator). The
kernel (kernels/sparse.csr_matvec) sums each row in storage order with one float64 accumulator, float32 values
and 16-bit column indices. This script times it against: four and eight interleaved accumulators (shorter add
chains), fastmath (lets LLVM vectorise the gather and reorder the sum) and 32-bit indices, on a random CSR with
the main job's shape (48,994 rows x 31,332 distinct beamlets, 686 entries per row: 33.6 M non-zeros, the
truncated optimisation matrix of t10_body at 2 mm), sorted column indices per row. Median of --repeats
calls after one untimed call (compile); one and all threads. Prints the effective traffic (6 bytes per non-zero
for 16-bit indices, 8 for 32-bit) and each variant's largest relative difference from the kernel's result.

    python benchmarks/product_variants.py
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numba
import numpy as np
from numba import njit, prange

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import git_commit, load_average, machine_line, print_table  # noqa: E402


@njit(parallel=True, cache=True)
def accumulators4(indptr, indices, data, x, out):
    for i in prange(indptr.shape[0] - 1):
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        e = indptr[i]
        stop = indptr[i + 1]
        while e + 4 <= stop:
            a0 += data[e] * x[indices[e]]
            a1 += data[e + 1] * x[indices[e + 1]]
            a2 += data[e + 2] * x[indices[e + 2]]
            a3 += data[e + 3] * x[indices[e + 3]]
            e += 4
        while e < stop:
            a0 += data[e] * x[indices[e]]
            e += 1
        out[i] = (a0 + a1) + (a2 + a3)


@njit(parallel=True, cache=True)
def accumulators8(indptr, indices, data, x, out):
    for i in prange(indptr.shape[0] - 1):
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        a4 = 0.0
        a5 = 0.0
        a6 = 0.0
        a7 = 0.0
        e = indptr[i]
        stop = indptr[i + 1]
        while e + 8 <= stop:
            a0 += data[e] * x[indices[e]]
            a1 += data[e + 1] * x[indices[e + 1]]
            a2 += data[e + 2] * x[indices[e + 2]]
            a3 += data[e + 3] * x[indices[e + 3]]
            a4 += data[e + 4] * x[indices[e + 4]]
            a5 += data[e + 5] * x[indices[e + 5]]
            a6 += data[e + 6] * x[indices[e + 6]]
            a7 += data[e + 7] * x[indices[e + 7]]
            e += 8
        while e < stop:
            a0 += data[e] * x[indices[e]]
            e += 1
        out[i] = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))


@njit(parallel=True, fastmath=True, cache=True)
def fastmath_loop(indptr, indices, data, x, out):
    for i in prange(indptr.shape[0] - 1):
        acc = 0.0
        for e in range(indptr[i], indptr[i + 1]):
            acc += data[e] * x[indices[e]]
        out[i] = acc


def random_csr(n_rows: int, n_cols: int, per_row: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    indptr = np.arange(n_rows + 1, dtype=np.int64) * per_row
    indices = np.sort(rng.integers(0, n_cols, (n_rows, per_row)), axis=1).astype(np.uint16).ravel()
    return indptr, indices, rng.random(n_rows * per_row, dtype=np.float32), rng.random(n_cols)


def main(argv=None) -> int:
    from simsbrt.kernels.sparse import csr_matvec

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=48994)
    ap.add_argument("--cols", type=int, default=31332)
    ap.add_argument("--per-row", type=int, default=686)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    print(f"# command: python benchmarks/product_variants.py {' '.join(argv if argv is not None else sys.argv[1:])}"
          .rstrip())
    print(f"# commit {git_commit()}; {machine_line()}; load average (1/5/15 min) at start {load_average()}")
    indptr, indices, data, x = random_csr(args.rows, args.cols, args.per_row)
    wide = indices.astype(np.int32)
    print(f"# random CSR {args.rows} x {args.cols}, {data.size:,} non-zeros (float32 values); backend cpu (numba)")
    variants = [("kernel (one accumulator), uint16", csr_matvec, indices, 6),
                ("four accumulators, uint16", accumulators4, indices, 6),
                ("eight accumulators, uint16", accumulators8, indices, 6),
                ("fastmath (vectorised), uint16", fastmath_loop, indices, 6),
                ("kernel, int32 indices", csr_matvec, wide, 8)]
    reference = np.empty(args.rows)
    csr_matvec(indptr, indices, data, x, reference)
    rows = []
    all_threads = numba.get_num_threads()
    for threads in sorted({all_threads, 1}, reverse=True):
        numba.set_num_threads(threads)
        for label, kernel, idx, bytes_per_nz in variants:
            out = np.empty(args.rows)
            kernel(indptr, idx, data, x, out)   # untimed: compile or load from the cache
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                kernel(indptr, idx, data, x, out)
                times.append(time.perf_counter() - t0)
            median = statistics.median(times)
            rows.append({"threads": threads, "variant": label, "median_ms": f"{1e3 * median:.1f}",
                         "GB/s": f"{data.size * bytes_per_nz / median / 1e9:.1f}",
                         "max_rel_diff": f"{np.max(np.abs(out - reference) / np.abs(reference)):.1e}"})
    numba.set_num_threads(all_threads)
    print_table(rows, list(rows[0].keys()))
    print(f"# load average at end {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
