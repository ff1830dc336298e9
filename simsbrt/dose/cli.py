"""``simsbrt dose``: water-phantom PDD / penumbra through the engine, and influence matrices."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from simsbrt.errors import SpecError
from simsbrt.ranges import option

BACKENDS = ["auto", "cpu", "cuda", "cudasim"]


def run_pdd(args) -> int:
    from simsbrt.dose.water import WaterSetup, pdd_and_profile

    setup = WaterSetup(field_mm=args.field_mm, ssd_mm=args.ssd_mm, depth_max_mm=args.depth_max_mm)
    result = pdd_and_profile(setup, profile_depth_mm=100.0, backend=args.backend)
    doc = result.as_json()
    if args.json:
        from simsbrt.cli import print_json

        print_json({k: doc[k] for k in ("depth_mm", "pdd_percent", "dmax_mm", "penumbra_80_20_mm_at_100mm")})
        return 0
    print(f"{args.field_mm:g} mm square field, SSD {args.ssd_mm:g} mm, water ({result.backend} on {result.device})")
    print(f"dmax {result.dmax_mm:.1f} mm; 80-20 penumbra at 100 mm depth {result.penumbra_80_20_mm:.2f} mm; "
          f"dose at dmax {100 * result.dose_at_dmax_gy_per_mu:.4f} cGy/MU")
    print("depth_mm  pdd_percent")
    for z, p in zip(result.depth_mm, result.pdd_percent):
        if abs((z - 0.5) % 10.0) < 1e-6 or z < 5:
            print(f"{z:8.1f}  {p:10.2f}")
    return 0


def _load_phantom(source: str):
    path = Path(source)
    if path.suffix in (".h5", ".hdf5"):
        from simsbrt.io.phantom_h5 import read_phantom

        if not path.exists():
            raise SpecError("phantom", f"file not found: {path}")
        phantom = read_phantom(path)
        return phantom, {"phantom_file": str(path)}
    from simsbrt.phantom import build_phantom, load_spec

    spec = load_spec(source)
    return build_phantom(spec), {"phantom_spec": spec.to_dict()}


def run_compute(args) -> int:
    from simsbrt.dose.engine import InfluenceOptions, compute_influence, exact_row_mask, select_rows
    from simsbrt.dose.machine import load_beam_model
    from simsbrt.geometry.arcs import arc_set_to_doc, default_arc_set, load_arc_set
    from simsbrt.geometry.beamlets import build_beamlets
    from simsbrt.io.influence_h5 import write_influence

    from simsbrt.io.outputs import check_output_file

    check_output_file(args.out, [args.phantom, args.arcs, args.beam], suffixes=(".h5", ".hdf5"))
    stages = {}
    t0 = time.perf_counter()
    phantom, spec_doc = _load_phantom(args.phantom)
    stages["phantom_s"] = time.perf_counter() - t0
    arc_set = load_arc_set(args.arcs) if args.arcs else default_arc_set()
    options = InfluenceOptions(tail_threshold_frac=args.tail_threshold_frac, seed=args.seed)
    beam = load_beam_model(args.beam) if args.beam else load_beam_model()

    t0 = time.perf_counter()
    rows = select_rows(phantom.grid, phantom.structures, body_margin_mm=args.body_margin_mm,
                       structure_margin_mm=args.structure_margin_mm)
    beamlets = build_beamlets(arc_set, phantom.grid, phantom.structures["PTV"])
    stages["geometry_s"] = time.perf_counter() - t0
    im = compute_influence(phantom.grid, phantom.density, rows, beamlets, beam, options, args.backend,
                           exact_rows=exact_row_mask(rows, phantom.structures))
    stages.update(im.timings_s)
    t0 = time.perf_counter()
    input_spec = {**spec_doc, "arcs": arc_set_to_doc(arc_set), "options": dataclasses.asdict(options),
                  "rows": {"body_margin_mm": args.body_margin_mm, "structure_margin_mm": args.structure_margin_mm}}
    write_influence(args.out, im, input_spec, beam)
    stages["write_s"] = time.perf_counter() - t0
    summary = {"out": str(args.out), "backend": im.backend, "device": im.device, "n_voxels": im.n_voxels,
               "n_beamlets": im.n_beamlets, "n_control_points": beamlets.n_control_points, "nnz": im.nnz,
               "bytes": im.nbytes, "file_bytes": Path(args.out).stat().st_size,
               "stages_s": {k: round(v, 3) for k, v in stages.items()}}
    if args.json:
        from simsbrt.cli import print_json

        print_json(summary)
        return 0
    print(f"influence matrix: {im.n_voxels} voxels x {im.n_beamlets} beamlets "
          f"({beamlets.n_control_points} control points), {im.nnz} non-zeros, "
          f"{im.nbytes / 2**20:.1f} MiB in memory, {summary['file_bytes'] / 2**20:.1f} MiB on disk")
    print(f"backend: {im.backend} on {im.device}")
    for k, v in stages.items():
        print(f"  {k[:-2]:<10} {v:8.2f} s")
    print(f"wrote {args.out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("dose", help="pencil-beam dose: water PDD / penumbra, influence matrices")
    dsub = p.add_subparsers(dest="dose_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    pdd = dsub.add_parser("pdd", help="open-field PDD and 80-20 penumbra at 100 mm in water, via the engine")
    pdd.add_argument("--field-mm", type=option("field_mm"), default=100.0, help="square field side at the isocentre plane")
    pdd.add_argument("--ssd-mm", type=option("ssd_mm"), default=1000.0)
    pdd.add_argument("--depth-max-mm", type=option("depth_max_mm"), default=300.0)
    pdd.add_argument("--backend", choices=BACKENDS, default=None)
    pdd.add_argument("--json", action="store_true", help="print one JSON object")
    pdd.set_defaults(func=run_pdd)

    c = dsub.add_parser("compute", help="influence matrix of a phantom (spec TOML / built-in name / phantom HDF5)")
    c.add_argument("phantom", help="SPEC.toml, a built-in phantom name, or PHANTOM.h5")
    c.add_argument("--arcs", default=None, help="ARCS.toml (default: two coplanar full arcs, 4 degrees)")
    c.add_argument("--out", required=True, type=Path, help="output HDF5 file")
    c.add_argument("--backend", choices=BACKENDS, default=None)
    c.add_argument("--beam", default=None, help="beam model JSON (default: the fitted 6 MV model)")
    c.add_argument("--tail-threshold-frac", type=option("tail_threshold_frac"), default=0.01,
                   help="unbiased sampling below this fraction of a beamlet's peak; 0 = exact (default 0.01)")
    c.add_argument("--seed", type=option("influence_seed"), default=0)
    c.add_argument("--body-margin-mm", type=option("row_margin_mm"), default=30.0, help="body rows within this distance of the PTV")
    c.add_argument("--structure-margin-mm", type=option("row_margin_mm"), default=30.0,
                   help="other structures' rows within this distance of the PTV (cord, PRV, sac, canal: whole)")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=run_compute)
