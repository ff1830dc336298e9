import os
import subprocess
import sys

import pytest

from simsbrt.backend import Backend, resolve_backend
from simsbrt.errors import BackendUnavailableError, SpecError


def test_explicit_cpu_wins_over_environment(monkeypatch):
    monkeypatch.setenv("SIMSBRT_BACKEND", "cuda")
    backend = resolve_backend("cpu")
    assert backend == Backend("cpu", "cpu")
    assert "argument" in backend.reason


def test_environment_variable_is_used_when_no_argument(monkeypatch):
    monkeypatch.setenv("SIMSBRT_BACKEND", "cpu")
    backend = resolve_backend(None)
    assert backend.name == "cpu"
    assert "SIMSBRT_BACKEND" in backend.reason


def test_unknown_backend_names_the_field(monkeypatch):
    monkeypatch.delenv("SIMSBRT_BACKEND", raising=False)
    with pytest.raises(SpecError, match="backend"):
        resolve_backend("tpu")


def test_auto_without_gpu_falls_back_to_cpu_and_says_why(monkeypatch):
    monkeypatch.delenv("SIMSBRT_BACKEND", raising=False)
    import simsbrt.backend as b

    monkeypatch.setattr(b, "probe_cuda", lambda: b.CudaProbe(False, (), "no device in this test"))
    backend = resolve_backend(None)
    assert backend.name == "cpu"
    assert "no device in this test" in backend.reason


def test_explicit_cuda_without_gpu_is_a_clear_error(monkeypatch):
    import simsbrt.backend as b

    monkeypatch.setattr(b, "probe_cuda", lambda: b.CudaProbe(False, (), "no device in this test"))
    with pytest.raises(BackendUnavailableError, match="no device in this test"):
        resolve_backend("cuda")


def test_import_simsbrt_does_not_import_gpu_modules():
    code = "import sys, simsbrt, simsbrt.cli; print(any(m == 'cupy' or m.startswith('numba.cuda') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "SIMSBRT_BACKEND": ""})
    assert out.stdout.strip() == "False"


def test_cli_info_reports_backend_and_devices(capsys, monkeypatch):
    import json

    from simsbrt.cli import main

    monkeypatch.delenv("SIMSBRT_BACKEND", raising=False)
    assert main(["info", "--json", "--backend", "cpu"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backend"] == "cpu"
    assert isinstance(info["gpu_devices"], list)
    assert info["simsbrt_version"]


def test_cli_reports_unmet_cuda_request_without_traceback(capsys, monkeypatch):
    import simsbrt.backend as b
    from simsbrt.cli import main

    monkeypatch.setattr(b, "probe_cuda", lambda: b.CudaProbe(False, (), "no device in this test"))
    assert main(["info", "--backend", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "simsbrt: error:" in err and "Traceback" not in err


def _with_device(monkeypatch, passed: bool):
    import simsbrt.backend as b

    monkeypatch.delenv("SIMSBRT_BACKEND", raising=False)
    monkeypatch.setattr(b, "probe_cuda", lambda: b.CudaProbe(True, ("cuda:0 Test GPU (1 GiB)",), "1 device in this test"))
    monkeypatch.setattr(b, "cuda_self_test", lambda device="cuda:0", backend_name="cuda": b.SelfTest(
        passed, "self-test passed in 0.1 s" if passed else "RuntimeError: D @ w differs from the CPU's by 1e-2"))


def test_auto_picks_cuda_only_after_the_self_test_passes(monkeypatch):
    _with_device(monkeypatch, True)
    backend = resolve_backend(None)
    assert backend.name == "cuda" and "self-test passed" in backend.reason


def test_auto_with_a_failing_self_test_runs_on_the_cpu_and_records_why(monkeypatch):
    _with_device(monkeypatch, False)
    backend = resolve_backend("auto")
    assert backend.name == "cpu"
    assert "self-test failed" in backend.reason and "differs from the CPU" in backend.reason


def test_explicit_cuda_with_a_failing_self_test_is_an_error_with_the_reason(monkeypatch):
    _with_device(monkeypatch, False)
    with pytest.raises(BackendUnavailableError, match="self-test failed: RuntimeError: D @ w differs"):
        resolve_backend("cuda")


def test_self_test_reports_a_failure_instead_of_raising(monkeypatch):
    import simsbrt.backend as b

    def broken(backend):
        raise RuntimeError("kernel launch failed in this test")

    monkeypatch.setattr(b, "_self_test_body", broken)
    monkeypatch.setattr(b, "_SELF_TESTS", {})
    result = b.cuda_self_test("cuda:9")
    assert not result.passed and "kernel launch failed in this test" in result.detail
