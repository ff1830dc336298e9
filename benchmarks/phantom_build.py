"""Phantom build time and size for the built-in phantoms across grid spacings.

    python benchmarks/phantom_build.py [--repeats 3]

Prints one row per (phantom, spacing): grid shape, voxels, median build time of several runs after
one warm-up build, peak memory of the process so far, GTV and PTV_Eval volume (cm3).
"""
from __future__ import annotations

import argparse

from common import machine_line, peak_rss_mib, print_table, timed_runs

from simsbrt.phantom import build_phantom, load_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--phantoms", nargs="+", default=["t10_body", "l3_body_epidural", "s2_large"])
    parser.add_argument("--spacings", nargs="+", type=float, default=[3.0, 2.0, 1.5, 1.0])
    args = parser.parse_args()
    print(f"# phantom build benchmark | {machine_line()} | backend cpu (numpy/scipy)")
    rows = []
    for name in args.phantoms:
        for spacing in args.spacings:
            spec = load_spec(name).with_spacing(spacing)
            median_s, times, phantom = timed_runs(lambda: build_phantom(spec), repeats=args.repeats)
            rows.append({
                "phantom": name,
                "spacing_mm": f"{spacing:.1f}",
                "shape": "x".join(map(str, phantom.grid.shape)),
                "n_voxels": f"{phantom.grid.n_voxels:,}",
                "build_s_median": f"{median_s:.2f}",
                "build_s_runs": "/".join(f"{t:.2f}" for t in times),
                "peak_rss_MiB": f"{peak_rss_mib():.0f}",
                "GTV_cc": f"{phantom.volume_cc('GTV'):.2f}",
                "PTV_Eval_cc": f"{phantom.volume_cc('PTV_Eval'):.1f}",
            })
    print_table(rows, list(rows[0]))


if __name__ == "__main__":
    main()
