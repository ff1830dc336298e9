"""The CI subset of the fuzz suite: a fixed seed, every family, through benchmarks/fuzz.py (the same
harness as the long run). Passes only with 0 tracebacks, hangs, accepted impossible inputs, damaged
inputs and unclean errors."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES, SEED = 120, 20261203


def test_fuzz_subset_has_no_failure(tmp_path, tmp_path_factory):
    from tests.fuzz.assets import session_assets

    assets = session_assets(tmp_path_factory)
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fuzz.py"), "--cases", str(CASES),
                           "--seed", str(SEED), "--workdir", str(tmp_path), "--assets", str(assets)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "failures 0" in proc.stdout, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert f"{CASES} cases" in proc.stdout
