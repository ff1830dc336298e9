"""``simsbrt export dicom PLAN.h5 --out DIR`` and ``simsbrt import dicom DIR --out PHANTOM.h5``."""
from __future__ import annotations

from pathlib import Path

from simsbrt.errors import SpecError
from simsbrt.ranges import option


def _file_kind(path: Path) -> str:
    import h5py

    if not path.is_file():
        raise SpecError("input", f"file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs.get("kind", ""))
    except (OSError, RuntimeError, KeyError):
        raise SpecError("input", f"not an HDF5 file (or not readable): {path}") from None


def run_export_dicom(args) -> int:
    from simsbrt.dicom.export import export_phantom, export_plan

    from simsbrt.io.outputs import check_output_dir

    source = Path(args.input)
    check_output_dir(args.out, [source])
    kind = _file_kind(source)
    if kind not in ("plan", "phantom"):
        raise SpecError("input", f"{source} is a {kind or 'non-simsbrt'} file; export needs PLAN.h5 or PHANTOM.h5")
    made_here = not Path(args.out).exists()
    try:
        if kind == "plan":
            result = export_plan(source, args.out, overwrite=args.overwrite)
        else:
            from simsbrt.io.phantom_h5 import read_phantom

            result = export_phantom(read_phantom(source), args.out, overwrite=args.overwrite)
    except OSError:
        if made_here:             # a failed write (a full disk): no partial series left behind
            import shutil

            shutil.rmtree(args.out, ignore_errors=True)
        raise
    summary = result.summary()
    if args.json:
        from simsbrt.cli import print_json

        print_json(summary)
        return 0
    n = {k: len(v) for k, v in result.files.items()}
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v} file{'s' if v > 1 else ''}" for k, v in n.items()))
    print(f"  structures: {', '.join(result.structures)}")
    if result.empty_structures:
        print(f"  left out (empty at this level): {', '.join(result.empty_structures)}")
    if result.dose_max_gy is not None:
        print(f"  RTDOSE: max {result.dose_max_gy:.3f} Gy, DoseGridScaling {result.dose_grid_scaling:.6g} Gy")
        print("  RTPLAN: meterset per fraction (beamlet MU, not machine MU): "
              + ", ".join(f"{m:.1f}" for m in result.beam_meterset_mu))
    return 0


def run_import_dicom(args) -> int:
    from simsbrt.dicom.importer import import_dicom
    from simsbrt.io.phantom_h5 import write_phantom

    if Path(args.out).suffix not in (".h5", ".hdf5"):
        raise SpecError("out", f"the phantom file needs a .h5 suffix, got {args.out}")
    from simsbrt.io.outputs import check_output_file

    check_output_file(args.out, [args.names], input_dirs=[args.folder])
    phantom = import_dicom(args.folder, names=args.names, spacing_mm=args.spacing_mm, name=args.name)
    write_phantom(args.out, phantom)
    summary = phantom.summary()
    summary.update({"out": str(args.out), "source": phantom.spec.source, "description": phantom.spec.description})
    if args.json:
        from simsbrt.cli import print_json

        print_json(summary)
        return 0
    from simsbrt.phantom.cli import print_summary

    print_summary(phantom, header=f"wrote {args.out} from {args.folder}")
    return 0


def register(sub) -> None:
    e = sub.add_parser("export", help="export a plan or phantom to other formats (DICOM RT)")
    esub = e.add_subparsers(dest="export_format", metavar="FORMAT", required=True)
    d = esub.add_parser("dicom", help="CT series, RTSTRUCT, RTDOSE and RTPLAN of PLAN.h5 (CT + RTSTRUCT of PHANTOM.h5)")
    d.add_argument("input", help="PLAN.h5 (simsbrt plan) or PHANTOM.h5")
    d.add_argument("--out", required=True, type=Path, help="output folder (empty, or use --overwrite)")
    d.add_argument("--overwrite", action="store_true", help="replace an earlier simsbrt export in the folder")
    d.add_argument("--json", action="store_true", help="print one JSON object")
    d.set_defaults(func=run_export_dicom)

    i = sub.add_parser("import", help="import anatomy from other formats (DICOM CT + RTSTRUCT)")
    isub = i.add_subparsers(dest="import_format", metavar="FORMAT", required=True)
    d = isub.add_parser("dicom", help="a phantom from a folder with one CT series and one RTSTRUCT")
    d.add_argument("folder", help="folder with the CT slices and the RTSTRUCT (searched recursively)")
    d.add_argument("--out", required=True, type=Path, help="output PHANTOM.h5")
    d.add_argument("--names", default=None,
                   help="ROI name mapping file (TOML; default: simsbrt/dicom/data/names.toml)")
    d.add_argument("--spacing-mm", type=option("spacing_mm"), default=None,
                   help="dose-grid spacing 1-3 mm (default: the CT grid if its spacing is 1-3 mm, else 2 mm)")
    d.add_argument("--name", default=None, help="phantom name (default: the PatientID)")
    d.add_argument("--json", action="store_true", help="print one JSON object")
    d.set_defaults(func=run_import_dicom)
