"""The valid inputs every fuzz case starts from: one tiny phantom (t10_body at 3 mm), its spec,
arcs, a comparison folder (uniform.h5, sib.h5, dvh.png), a DICOM export, a sweep and a protocol file.
Built once into a folder (``build_assets``); cases copy what they mutate."""
from __future__ import annotations

import contextlib
import importlib.resources
import io
from pathlib import Path

TINY_ARCS = """beamlet_size_mm = 5.0
beamlet_margin_mm = 3.0

[[arc]]
name = "arc1"
gantry_start_deg = 181.0
gantry_stop_deg = 179.0
direction = "cw"
spacing_deg = 30.0
"""

TINY_SWEEP = """name = "tiny"
phantom = "spec.toml"
arcs = "arcs.toml"
modes = ["uniform"]

[fixed]
"plan.search_steps" = 0
"influence.body_margin_mm" = 10.0
"influence.structure_margin_mm" = 10.0
"plan.solver_options.max_iter" = 5

[grid]
"plan.cord_prv_limit_gy" = [24.0]
"""


def tiny_spec_text() -> str:
    text = importlib.resources.files("simsbrt.builtin_phantoms").joinpath("t10_body.toml").read_text()
    return text.replace("spacing_mm = 2.0", "spacing_mm = 3.0")


def session_assets(tmp_path_factory) -> Path:
    """The assets of one pytest session (built once, shared by every test module that uses them)."""
    return build_assets(tmp_path_factory.getbasetemp() / "fuzz_assets")


def builtin_text(package: str, name: str) -> str:
    return importlib.resources.files(package).joinpath(name).read_text()


def build_assets(folder: Path) -> Path:
    """Write every valid input into folder (skipped when already complete); returns folder."""
    from simsbrt.cli import main

    folder = Path(folder)
    done = folder / ".complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.toml").write_text(tiny_spec_text())
    (folder / "arcs.toml").write_text(TINY_ARCS)
    (folder / "sweep.toml").write_text(TINY_SWEEP)
    (folder / "protocol.toml").write_text(builtin_text("simsbrt.protocols", "uniform.toml"))
    (folder / "names.toml").write_text(builtin_text("simsbrt.dicom", "data/names.toml"))
    quiet = contextlib.redirect_stdout(io.StringIO())
    with quiet:
        assert main(["phantom", "build", str(folder / "spec.toml"), "--out", str(folder / "phantom.h5")]) == 0
    _write_plans(folder)
    with quiet:
        assert main(["export", "dicom", str(folder / "plans" / "sib.h5"), "--out", str(folder / "dicom")]) == 0
    done.write_text("ok\n")
    return folder


def _write_plans(folder: Path) -> None:
    """uniform.h5, sib.h5 and the DVH figure of a tiny comparison (as `simsbrt compare` writes them)."""
    from simsbrt.cli_compare import run_comparison
    from simsbrt.geometry.arcs import load_arc_set
    from simsbrt.io.phantom_h5 import read_phantom
    from simsbrt.optimize.plans import PlanSettings, prepare_plan_inputs
    from simsbrt.optimize.solvers import SolverOptions

    phantom = read_phantom(folder / "phantom.h5")
    inputs = prepare_plan_inputs(phantom, load_arc_set(folder / "arcs.toml"), "cpu", body_margin_mm=10.0,
                                 structure_margin_mm=10.0)
    settings = PlanSettings(n_bisections=1, solver_options=SolverOptions(max_iter=20),
                            search_solver_options=SolverOptions(max_iter=20))
    run_comparison(inputs, settings, folder / "plans", modes=("uniform", "sib"))
