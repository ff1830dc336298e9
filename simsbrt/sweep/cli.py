"""``simsbrt sweep SWEEP.toml --out DIR`` and ``simsbrt sweep plot DIR --x ... --y ... --by ... --out FILE.png``.

One ``sweep`` parser whose first positional is either ``plot`` or a sweep file; the rest of the
command line is parsed by the parser of that job (so both commands work exactly as written).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simsbrt.errors import SpecError
from simsbrt.ranges import option
from simsbrt.sweep.spec import MAX_RUNS_WITHOUT_YES

BACKENDS = ["cpu", "cuda", "auto"]
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def run_parser() -> argparse.ArgumentParser:
    from simsbrt.cli import Parser

    p = Parser(prog="simsbrt sweep", description="Run every point of a sweep file; resumable.")
    p.add_argument("sweep", type=Path, help="SWEEP.toml")
    p.add_argument("--out", required=True, type=Path, help="output folder (runs/, results.csv, results.h5, cache/)")
    p.add_argument("--workers", type=option("workers"), default=None,
                   help="parallel workers (default: one per core on the CPU, one per GPU with --backend cuda; "
                        "1 = in this process)")
    p.add_argument("--dask", default=None, metavar="ADDRESS",
                   help="run on an existing Dask distributed cluster (scheduler address; pip install simsbrt[dask])")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="cpu | cuda | auto (default: $SIMSBRT_BACKEND, else auto)")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", dest="assignments",
                   help="replace or add a [fixed] value (repeatable; TOML syntax), e.g. --set phantom.grid.spacing_mm=3")
    p.add_argument("--no-cache", action="store_true", help="do not keep influence matrices in DIR/cache")
    p.add_argument("--cache-gb", type=option("cache_gb"), default=8.0, help="size cap of DIR/cache in GiB (default 8)")
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again (default: keep them)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--yes", action="store_true",
                   help=f"run a sweep of more than {MAX_RUNS_WITHOUT_YES} runs (refused without it)")
    return p


def plot_parser() -> argparse.ArgumentParser:
    from simsbrt.cli import Parser

    p = Parser(prog="simsbrt sweep plot", description="Plot a metric of a finished sweep.")
    p.add_argument("dir", type=Path, help="sweep output folder (or its results.csv)")
    p.add_argument("--x", required=True, help="x column, e.g. gtv_cord_gap_mm")
    p.add_argument("--y", required=True, help="y column, e.g. GTV.D50%%")
    p.add_argument("--by", default=None, help="one line per value of this column, e.g. mode")
    p.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                   help="keep only rows with this value (repeatable), e.g. --where plan.cord_prv_limit_gy=25")
    p.add_argument("--out", required=True, type=Path, help="figure file (.png, .pdf, .svg)")
    return p


def _where(items) -> dict:
    out = {}
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column:
            raise SpecError("where", f"expected COLUMN=VALUE, got {item!r}")
        out[column] = value
    return out


def parse_job(args) -> argparse.Namespace:
    """The options of the job that ``simsbrt sweep`` names (a sweep run, or ``plot``), parsed by its own parser."""
    if args.target == "plot":
        return plot_parser().parse_args(args.rest)
    return run_parser().parse_args([args.target, *args.rest])


def sweep_help() -> str:
    """``simsbrt sweep -h``: every option of both jobs."""
    return (run_parser().format_help() + "\n" + plot_parser().format_help())


class _SweepHelp(argparse.Action):
    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(sweep_help())
        parser.exit()


def run_sweep_command(args) -> int:
    if args.target == "plot":
        opts = parse_job(args)
        from simsbrt.io.outputs import check_output_file
        from simsbrt.sweep.plot import plot_sweep

        table = opts.dir / "results.csv" if opts.dir.is_dir() else opts.dir
        check_output_file(opts.out, [opts.dir, table], suffixes=PLOT_SUFFIXES)

        data = plot_sweep(opts.dir, opts.x, opts.y, opts.out, opts.by, where=_where(opts.where))
        print(f"wrote {data.path}: {data.y} vs {data.x}, {len(data.lines)} line(s)")
        return 0
    opts = parse_job(args)
    from simsbrt.sweep.runner import run_sweep
    from simsbrt.sweep.spec import count_runs, load_sweep, parse_assignment

    from simsbrt.io.outputs import check_output_dir

    spec = load_sweep(opts.sweep, dict(parse_assignment(a) for a in opts.assignments))
    check_output_dir(opts.out, [opts.sweep, spec.phantom, spec.arcs])
    n_runs = count_runs(spec)
    if n_runs > MAX_RUNS_WITHOUT_YES and not opts.yes:
        raise SpecError("yes", f"{opts.sweep} makes {n_runs:,} runs (more than {MAX_RUNS_WITHOUT_YES}); "
                               f"pass --yes to run them all")
    summary = run_sweep(spec, opts.out, workers=opts.workers, dask_address=opts.dask, backend=opts.backend,
                        cache=not opts.no_cache, cache_max_bytes=int(opts.cache_gb * 2**30),
                        retry_failed=opts.retry_failed, quiet=opts.quiet)
    print(summary.text())
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "sweep", help="run a parameter sweep (SWEEP.toml) or plot one ('sweep plot DIR ...')",
        description="simsbrt sweep SWEEP.toml --out DIR [--workers N] [--dask ADDRESS] [--backend B] [--no-cache]\n"
                    "simsbrt sweep plot DIR --x COLUMN --y COLUMN [--by COLUMN] --out FILE.png\n"
                    "(`simsbrt sweep -h` lists the options of both)",
        formatter_class=argparse.RawDescriptionHelpFormatter, add_help=False)
    p.add_argument("-h", "--help", action=_SweepHelp, help="show every option of a sweep run and of sweep plot")
    p.add_argument("target", help="SWEEP.toml, or 'plot'")
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=run_sweep_command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_sweep_command(argparse.Namespace(target=sys.argv[1], rest=sys.argv[2:])))
