"""``simsbrt view PLAN.h5 [PLAN2.h5 ...] --out view.html``: the plan viewer page."""
from __future__ import annotations

from pathlib import Path

from simsbrt.errors import SpecError


def parse_levels(text: str | None):
    if text is None:
        return None
    try:
        levels = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise SpecError("isodose-gy", f"expected comma-separated doses in Gy, got {text!r}") from None
    if not levels or any(not (v > 0) for v in levels):
        raise SpecError("isodose-gy", f"needs one or more doses > 0 Gy, got {text!r}")
    return levels


def run_view(args) -> int:
    from simsbrt.view.page import write_view

    path, doc = write_view(args.files, args.out, parse_levels(args.isodose_gy))
    size_mb = path.stat().st_size / 1e6
    print(f"wrote {path} ({size_mb:.1f} MB, {len(doc['plans'])} file(s), grid {' x '.join(map(str, doc['shape']))}); "
          "open it in a browser (works offline)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("view", help="browse plans' 3-D dose in one offline HTML page (slices, isodoses, DVH, differences)",
                       description="Write one self-contained HTML page (no network needed) to browse the dose of one or "
                                   "more plans: axial, coronal and sagittal slices, isodose lines, structure outlines, "
                                   "cursor read-out, DVHs, two plans side by side or their difference.")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE.h5",
                   help="PLAN.h5 files (from `simsbrt plan` or `simsbrt compare`, also on imported DICOM anatomy) "
                        "or PHANTOM.h5 files, all on one grid")
    p.add_argument("--out", required=True, type=Path, help="the HTML page to write (replaced atomically)")
    p.add_argument("--isodose-gy", default=None,
                   help="initial isodose levels, comma-separated (default 15,25,30,36,42,45; adjustable on the page)")
    p.set_defaults(func=run_view)
