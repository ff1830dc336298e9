"""What fresh memory costs on this machine: the first write to newly allocated pages, in a fresh process.

On a virtual machine whose host backs guest memory lazily (and takes freed pages back), the first write to
a page the guest has not used recently faults on the host as well; that shows as kernel ("sys") time of
the writing process. Every gigabyte a planning run holds at its peak pays it once, so the peak memory of
`simsbrt compare` is part of its time. Each run below is a fresh process that allocates SIZE GiB
(numpy, which asks for transparent huge pages), writes every byte once, and reports wall, user and sys
time; --pause s of idleness before each run lets the memory freed by the run before go back to the host
(with --pause 0 the next run usually gets recently used pages and is fast).

    python benchmarks/memory_first_touch.py                     # 2 GiB, 3 runs, 15 s apart
    python benchmarks/memory_first_touch.py --gib 1 --pause 0
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import git_commit, load_average, machine_line, print_table  # noqa: E402

CHILD = """
import json, resource, sys, time
import numpy as np
n = int(float(sys.argv[1]) * 2**30)
r0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
a = np.empty(n, dtype=np.uint8)
a.fill(1)
wall = time.perf_counter() - t0
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall_s": wall, "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=2.0, help="GiB written per run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pause", type=float, default=15.0, help="idle seconds before each run")
    args = ap.parse_args(argv)
    print(f"# command: python benchmarks/memory_first_touch.py {' '.join(argv if argv is not None else sys.argv[1:])}"
          .rstrip())
    print(f"# commit {git_commit()}; {machine_line()}; load average (1/5/15 min) at start {load_average()}")
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    print(f"# transparent huge pages: {thp.read_text().strip() if thp.exists() else 'unknown'}")
    rows = []
    for k in range(args.repeats):
        time.sleep(args.pause)
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.gib)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout)
        rows.append({"run": k + 1, "GiB": f"{args.gib:g}", "pause_s": f"{args.pause:g}", "wall_s": f"{r['wall_s']:.2f}",
                     "user_s": f"{r['user_s']:.2f}", "sys_s": f"{r['sys_s']:.2f}",
                     "s_per_GiB": f"{r['wall_s'] / args.gib:.2f}"})
    print_table(rows, list(rows[0].keys()))
    print(f"median {statistics.median(float(r['s_per_GiB']) for r in rows):.2f} s per GiB written for the first time; "
          f"load average at end {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
