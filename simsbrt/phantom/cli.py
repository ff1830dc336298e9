"""``simsbrt phantom build | info | show | cohort``."""
from __future__ import annotations

from pathlib import Path


def run_build(args) -> int:
    from simsbrt.io.phantom_h5 import write_phantom
    from simsbrt.phantom import build_phantom, load_spec

    from simsbrt.io.outputs import check_output_file

    check_output_file(args.out, [args.spec], suffixes=(".h5", ".hdf5"))
    spec = load_spec(args.spec)
    if args.spacing_mm is not None:
        spec = spec.with_spacing(args.spacing_mm)
    phantom = build_phantom(spec)
    write_phantom(args.out, phantom)
    print_summary(phantom, header=f"wrote {args.out}")
    return 0


def print_summary(phantom, header: str = "") -> None:
    """The phantom's description, grid and structure volumes (a generated or an imported phantom)."""
    s = phantom.summary()
    if header:
        print(header)
    spacing = " x ".join(f"{v:g}" for v in phantom.grid.spacing_mm)
    print(f"phantom {s['name']}: {phantom.description()}; grid {tuple(s['shape'])} voxels "
          f"({phantom.grid.n_voxels:,}), spacing {spacing} mm, origin {tuple(round(v, 1) for v in s['origin_mm'])} mm")
    print(f"  {'structure':<18}{'volume (cm3)':>14}")
    for name, info in s["structures"].items():
        note = "" if info["volume_cc"] > 0 else "  (absent: empty mask)"
        print(f"  {name:<18}{info['volume_cc']:>14.2f}{note}")


def run_info(args) -> int:
    from simsbrt.io.phantom_h5 import read_phantom

    phantom = read_phantom(args.file)
    if args.json:
        from simsbrt.cli import print_json

        info = phantom.summary()
        info["spec"] = phantom.spec.to_dict()
        print_json(info)
        return 0
    print_summary(phantom, header=str(args.file))
    return 0


def run_show(args) -> int:
    from simsbrt.io.outputs import check_output_file
    from simsbrt.report.phantom_plot import plot_phantom
    from simsbrt.view.data import load_view_file

    check_output_file(args.out, [args.file], suffixes=(".png",))
    shown = load_view_file(args.file)     # a PHANTOM.h5, or a PLAN.h5 (its phantom)
    out = plot_phantom(shown.phantom, args.out)
    print(f"wrote {out}")
    if shown.kind == "plan":
        print(f"(the phantom of plan {args.file}; to browse its dose: simsbrt view {args.file} --out view.html)")
    return 0


def run_cohort(args) -> int:
    from simsbrt.phantom.cohort import generate_cohort, write_cohort

    from simsbrt.io.outputs import check_output_dir

    check_output_dir(args.out)
    specs = generate_cohort(args.n, args.seed, spacing_mm=args.spacing_mm)
    paths = write_cohort(specs, Path(args.out))
    print(f"wrote {len(paths)} phantom specs to {args.out} (seed {args.seed})")
    for spec, path in zip(specs, paths):
        g = spec.gtv
        print(f"  {path.name:<28} {spec.anatomy.level:<4} GTV {g.volume_cc:7.2f} cm3  {g.lesion_type:<8} "
              f"Bilsky {g.bilsky:<3} {', '.join(g.sectors)}")
    return 0


def register(sub) -> None:
    from simsbrt.ranges import option

    p = sub.add_parser("phantom", help="build, inspect, draw and sample voxel spine phantoms")
    psub = p.add_subparsers(dest="phantom_command", metavar="PHANTOM_COMMAND", required=True)

    b = psub.add_parser("build", help="build a phantom from a TOML spec (or a built-in name) into HDF5")
    b.add_argument("spec", help="SPEC.toml or a built-in name such as t10_body")
    b.add_argument("--out", required=True, help="output HDF5 file")
    b.add_argument("--spacing-mm", type=option("spacing_mm"), default=None, help="override grid.spacing_mm (1.0-3.0)")
    b.set_defaults(func=run_build)

    i = psub.add_parser("info", help="grid and structure volumes of a phantom file")
    i.add_argument("file")
    i.add_argument("--json", action="store_true", help="print one JSON object")
    i.set_defaults(func=run_info)

    s = psub.add_parser("show", help="PNG of axial and sagittal slices through the GTV centre")
    s.add_argument("file", help="PHANTOM.h5, or a PLAN.h5 (its phantom)")
    s.add_argument("--out", required=True, help="output PNG")
    s.set_defaults(func=run_show)

    c = psub.add_parser("cohort", help="write phantom specs matched to the trial cohort (Table 2)")
    c.add_argument("--n", type=option("cohort_n"), default=28, help="number of cases (default 28, the trial's)")
    c.add_argument("--seed", type=option("cohort_seed"), required=True)
    c.add_argument("--out", required=True, help="output directory")
    c.add_argument("--spacing-mm", type=option("spacing_mm"), default=2.0)
    c.set_defaults(func=run_cohort)
