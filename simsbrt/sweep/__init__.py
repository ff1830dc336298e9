"""Scripted parameter sweeps (issue 6): sweep files, resumable runner, influence cache, results table.

    from simsbrt.sweep import load_sweep, run_sweep, read_table
    summary = run_sweep(load_sweep("sweeps/gtv_cord_gap.toml"), "out/gap")
    columns, rows = read_table("out/gap")
"""
from simsbrt.sweep.plot import plot_sweep
from simsbrt.sweep.points import RunPoint, expand_points
from simsbrt.sweep.results import read_table, read_table_h5
from simsbrt.sweep.runner import SweepSummary, run_sweep
from simsbrt.sweep.spec import SweepSpec, load_sweep, parse_sweep

__all__ = ["RunPoint", "SweepSpec", "SweepSummary", "expand_points", "load_sweep", "parse_sweep", "plot_sweep",
           "read_table", "read_table_h5", "run_sweep"]
