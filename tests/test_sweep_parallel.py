"""The same 2-point sweep on a local Dask cluster (two worker processes, started here, so tasks and
results really cross process boundaries) and on two local worker processes."""
import pytest

from simsbrt.cli import main
from simsbrt.sweep import read_table

SWEEP = """
phantom = "t10_body"
modes = ["uniform"]
[fixed]
"phantom.grid.spacing_mm" = 3.0
"arcs.spacing_deg" = 20.0
"arcs.beamlet_size_mm" = 5.0
"arcs.beamlet_margin_mm" = 3.0
"plan.solver_options.max_iter" = 40
"influence.body_margin_mm" = 10.0
"influence.structure_margin_mm" = 10.0
[grid]
"phantom.gtv.volume_cc" = [8.0, 10.0]
"""


def check_table(out, n_rows=2):
    _, rows = read_table(out)
    assert len(rows) == n_rows and all(r["status"] == "done" for r in rows)
    assert sorted(r["phantom.gtv.volume_cc"] for r in rows) == [8.0, 10.0]
    assert all(r["influence_source"] == "computed" for r in rows)      # two geometries: two matrices
    return rows


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("parallel") / "two.toml"
    path.write_text(SWEEP)
    return path


@pytest.fixture(scope="module")
def dask_run(sweep_file, tmp_path_factory):
    distributed = pytest.importorskip("distributed")
    out = tmp_path_factory.mktemp("dask") / "out"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        code = main(["sweep", str(sweep_file), "--out", str(out), "--dask", cluster.scheduler_address, "--quiet"])
    return code, out


def test_dask_cluster_runs_the_sweep(dask_run):
    code, out = dask_run
    assert code == 0
    check_table(out)
    assert len(list((out / "runs").glob("*.json"))) == 2


def test_two_local_worker_processes_give_the_same_table(sweep_file, dask_run, tmp_path, capsys):
    out = tmp_path / "pool"
    assert main(["sweep", str(sweep_file), "--out", str(out), "--workers", "2", "--quiet", "--no-cache"]) == 0
    assert "2 local worker processes" in capsys.readouterr().out
    rows = check_table(out)
    assert not list((out / "cache").glob("*.h5"))                       # --no-cache
    # the same runs planned by the Dask workers give the same numbers (deterministic planning)
    _, dask_rows = read_table(dask_run[1])
    assert [r["run_id"] for r in rows] == [r["run_id"] for r in dask_rows]
    for a, b in zip(rows, dask_rows):
        assert a["GTV.D50%"] == pytest.approx(b["GTV.D50%"], rel=1e-5)


def test_missing_dask_is_a_clear_error(monkeypatch, sweep_file, tmp_path, capsys):
    import builtins

    real_import = builtins.__import__

    def no_distributed(name, *args, **kwargs):
        if name.split(".")[0] == "distributed":
            raise ImportError("no distributed")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    assert main(["sweep", str(sweep_file), "--out", str(tmp_path / "x"), "--dask", "tcp://127.0.0.1:1",
                 "--quiet"]) == 2
    assert "pip install simsbrt[dask]" in capsys.readouterr().err


def test_gpu_workers_respect_an_existing_cuda_visible_devices_list():
    from simsbrt.sweep.runner import worker_gpu

    assert [worker_gpu(i, "3,5") for i in range(3)] == ["3", "5", "3"]
    assert worker_gpu(1, "GPU-aaaa, GPU-bbbb") == "GPU-bbbb"
    assert [worker_gpu(i, None) for i in range(2)] == ["0", "1"] and worker_gpu(2, "") == "2"
