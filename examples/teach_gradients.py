"""Teaching job: figures and a self-contained HTML page on the dose gradient between a spine GTV and the cord.

    python examples/teach_gradients.py                                   # t10_body at 2 mm (minutes)
    python examples/teach_gradients.py --quick --out /tmp/teach          # 3 mm, 15 degree arcs (< 1 min)
    python examples/teach_gradients.py --plans out/compare_benchmark --out /tmp/teach   # draw stored plans only

Open OUT/teach.html in a browser. The numbers behind every figure are in OUT/figure_data.json; this script
prints the fall-off numbers (Gy per mm, 80 % -> 20 % distance, where the cord PRV limit sits).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simsbrt.geometry.arcs import default_arc_set
from simsbrt.optimize.plans import PlanSettings, prepare_plan_inputs
from simsbrt.phantom import build_phantom, load_spec
from simsbrt.teach.lesson import teach_from_inputs, teach_from_plans

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_benchmark import quick_arcs  # noqa: E402  (the benchmark example's coarse arc set)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phantom", default="t10_body", help="built-in name or SPEC.toml")
    ap.add_argument("--out", default="out/teach_gradients", help="output directory (default: out/teach_gradients)")
    ap.add_argument("--plans", default=None, help="folder with uniform.h5 and sib.h5 (draw only, no planning)")
    ap.add_argument("--quick", action="store_true", help="3 mm grid, 15 degree arcs, 5 mm beamlets, 2 search steps")
    ap.add_argument("--backend", default="cpu", help="cpu | cuda | auto")
    return ap.parse_args(argv)


def lesson_for(args):
    if args.plans:
        return teach_from_plans(args.plans, args.out)
    spec = load_spec(args.phantom)
    arcs = default_arc_set()
    margins = {}
    if args.quick:
        spec = spec.with_spacing(3.0)
        arcs = quick_arcs()
        margins = {"body_margin_mm": 10.0, "structure_margin_mm": 10.0}
    inputs = prepare_plan_inputs(build_phantom(spec), arcs, args.backend, **margins)
    return teach_from_inputs(inputs, PlanSettings(n_bisections=2 if args.quick else 5), args.out,
                             lambda m: print(m, file=sys.stderr))


def main(argv=None) -> int:
    args = parse_args(argv)
    lesson = lesson_for(args)
    for plan, profile in lesson.profiles.items():
        f = profile.falloff
        print(f"{plan}: {f.reference_label} {f.reference_dose_gy:.1f} Gy; steepest fall-off toward the cord "
              f"{_v(f.steepest_gy_per_mm, 'Gy/mm', 2)}; 80 % -> 20 % over {_v(f.distance_high_low_mm, 'mm')}; "
              f"{f.limit_gy:g} Gy crossing {_v(f.limit_to_prv_edge_mm, 'mm')} from the cord PRV edge (< 0: inside); "
              f"max |grad D| near the cord {lesson.gradient_maps[plan].stats['max_gy_per_mm']:.2f} Gy/mm")
    print(f"open {lesson.files['html']}")
    return 0


def _v(value, unit: str, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} {unit}"


if __name__ == "__main__":
    sys.exit(main())
