"""examples/compare_benchmark.py and examples/teach_gradients.py run as scripts with their --quick settings
(t10_body at 3 mm, 15 degree arcs, 5 mm beamlets): the benchmark plans and prints the table, the teaching
example draws its page from the benchmark's stored plans (its planning path is the one tests/test_teach_cli.py
runs through simsbrt.teach.lesson.teach_from_inputs)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from simsbrt.io.plan_h5 import read_plan

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def benchmark_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmark")
    return run_script("compare_benchmark.py", "--quick", "--out", str(out)), out


def test_compare_benchmark_prints_the_table_of_the_plans_it_wrote(benchmark_run):
    done, out = benchmark_run
    text = done.stdout
    assert "grid 3 mm" in text and "(quick settings)" in text
    header = next(line for line in text.splitlines() if line.startswith("metric"))
    assert header.split() == ["metric", "unit", "uniform", "sib"]
    plans = {m: read_plan(out / f"{m}.h5") for m in ("uniform", "sib")}
    d50 = {m: p.summary["metrics"]["GTV"]["D50%"] for m, p in plans.items()}
    row = next(line for line in text.splitlines() if line.startswith("GTV D50%"))
    assert f"{d50['uniform']:.2f}" in row and f"{d50['sib']:.2f}" in row
    assert f"SIB gain in GTV D50%: {d50['sib'] - d50['uniform']:+.2f} Gy" in text
    assert d50["sib"] > d50["uniform"] + 3.0                    # the boost is what the benchmark shows
    assert (out / "comparison.csv").is_file() and (out / "dvh.png").is_file()


def test_teach_gradients_draws_the_page_from_the_stored_plans(benchmark_run, tmp_path):
    _, plans = benchmark_run
    done = run_script("teach_gradients.py", "--plans", str(plans), "--out", str(tmp_path))
    doc = json.loads((tmp_path / "figure_data.json").read_text())
    for mode in ("uniform", "sib"):
        f = doc["profiles"][mode]["falloff"]
        assert f"{mode}: GTV D50% {f['reference_dose_gy']:.1f} Gy" in done.stdout
        assert f"{f['steepest_gy_per_mm']:.2f} Gy/mm" in done.stdout
    assert f"open {tmp_path / 'teach.html'}" in done.stdout
    page = (tmp_path / "teach.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == 5
