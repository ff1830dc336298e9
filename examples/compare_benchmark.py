"""Benchmark job: SIB versus uniform on one phantom through the public Python API; prints the table.

    python examples/compare_benchmark.py                      # t10_body at 2 mm, default arcs (minutes)
    python examples/compare_benchmark.py --quick --out /tmp/b # 3 mm, 15 degree arcs, 5 mm beamlets (< 1 min)

Steps: build the phantom, compute ONE influence matrix, plan "uniform" and "sib" on it, write both plans,
the DVH figure, comparison.csv and comparison.json into --out, and print the side-by-side table.
"""
from __future__ import annotations

import argparse
import sys

from simsbrt.cli_compare import run_comparison
from simsbrt.geometry.arcs import ArcSet, default_arc_set
from simsbrt.optimize.plans import PlanSettings, prepare_plan_inputs
from simsbrt.phantom import build_phantom, load_spec
from simsbrt.report.compare import format_table


def quick_arcs() -> ArcSet:
    """The default two full arcs with control points every 15 degrees and 5 mm beamlets: coarse and fast."""
    return default_arc_set(spacing_deg=15.0, beamlet_size_mm=5.0, beamlet_margin_mm=3.0)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phantom", default="t10_body", help="built-in name or SPEC.toml")
    ap.add_argument("--out", default="out/compare_benchmark", help="output directory (default: out/compare_benchmark)")
    ap.add_argument("--quick", action="store_true", help="3 mm grid, 15 degree arcs, 5 mm beamlets, 2 search steps")
    ap.add_argument("--backend", default="cpu", help="cpu | cuda | auto")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    spec = load_spec(args.phantom)
    if args.quick:
        spec = spec.with_spacing(3.0)
    phantom = build_phantom(spec)
    margins = {"body_margin_mm": 10.0, "structure_margin_mm": 10.0} if args.quick else {}
    inputs = prepare_plan_inputs(phantom, quick_arcs() if args.quick else default_arc_set(), args.backend, **margins)
    settings = PlanSettings(n_bisections=2 if args.quick else 5)
    run = run_comparison(inputs, settings, args.out, lambda m: print(m, file=sys.stderr), modes=("uniform", "sib"))
    print(f"{spec.name}: grid {phantom.grid.spacing_mm[0]:g} mm, {inputs.influence.n_beamlets} beamlets"
          + (" (quick settings)" if args.quick else ""))
    print(format_table(run.table))
    d50 = run.table.row("GTV D50%").values
    print(f"SIB gain in GTV D50%: {d50['sib'] - d50['uniform']:+.2f} Gy "
          f"({d50['uniform']:.2f} -> {d50['sib']:.2f} Gy)")
    print("feasible: " + ", ".join(f"{m} {'yes' if r.feasible else 'no'}" for m, r in run.results.items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
