"""A tiny GTV-to-cord gap sweep through the public Python API (about 10-30 s on 2 CPU cores).

    python examples/sweep_gap.py [--out DIR]        # default out/sweep_gap (kept; rerunning resumes it)

The same sweep as sweeps/gtv_cord_gap.toml, shrunk so it runs in seconds: t10_body on a 3 mm grid,
two full arcs at 20 degrees, 5 mm beamlets, a one-step SIB search, gaps of 3 and 6 mm, uniform and
SIB plans. Prints one line per (run, mode) of the results table.
"""
import argparse
from pathlib import Path

from simsbrt.sweep import parse_sweep, read_table, run_sweep

SWEEP = {
    "name": "gap_tiny",
    "phantom": "t10_body",
    "modes": ["uniform", "sib"],
    "fixed": {
        "phantom.grid.spacing_mm": 3.0,
        "arcs.spacing_deg": 20.0,
        "arcs.beamlet_size_mm": 5.0,
        "arcs.beamlet_margin_mm": 3.0,
        "plan.search_steps": 1,
        "plan.solver_options.max_iter": 40,
        "plan.search_solver_options.max_iter": 30,
        "influence.body_margin_mm": 10.0,
        "influence.structure_margin_mm": 10.0,
    },
    "grid": {"phantom.gtv_cord_gap_mm": [3.0, 6.0]},
}
COLUMNS = ("phantom.gtv_cord_gap_mm", "gtv_cord_gap_realised_mm", "mode", "GTV.D50%", "GTV.D98%",
           "SpinalCord_PRV02.D0.03cc", "feasible", "status")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/sweep_gap"),
                        help="output folder, kept after the run (default: out/sweep_gap)")
    args = parser.parse_args(argv)
    summary = run_sweep(parse_sweep(SWEEP), args.out, workers=1, quiet=True)
    print(summary.text())
    _, rows = read_table(args.out)
    print("  ".join(f"{c:>24}" for c in COLUMNS))
    for row in rows:
        cells = [row[c] for c in COLUMNS]
        print("  ".join(f"{v:>24.2f}" if isinstance(v, float) else f"{str(v):>24}" for v in cells))
    print(f"results: {args.out / 'results.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
