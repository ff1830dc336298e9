"""examples/sweep_gap.py runs a tiny sweep and prints its table."""
import runpy
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "sweep_gap.py"


def test_sweep_gap_example_prints_the_table(tmp_path, capsys):
    module = runpy.run_path(str(EXAMPLE))          # not as __main__: main() is called below
    assert module["main"](["--out", str(tmp_path / "gap")]) == 0
    text = capsys.readouterr().out
    assert "2 runs: 2 done now (0 failed)" in text
    lines = [line.split() for line in text.splitlines() if line.split() and line.split()[-1] == "done"]
    assert len(lines) == 4                                      # 2 gaps x 2 modes
    assert {line[2] for line in lines} == {"uniform", "sib"}
    sib = {float(line[0]): float(line[3]) for line in lines if line[2] == "sib"}
    uniform = {float(line[0]): float(line[3]) for line in lines if line[2] == "uniform"}
    assert all(sib[g] > uniform[g] + 5.0 for g in sib)            # the boost raises GTV D50% (protocol: >= 36 Gy)
    assert (tmp_path / "gap" / "results.csv").is_file()
