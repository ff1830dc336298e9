"""Running a sweep: resume, group by influence key, execute (in-process, local processes or Dask), commit.

Flow of ``run_sweep``:
  1. expand the sweep into points (simsbrt.sweep.points); ids are hashes of the resolved inputs;
  2. skip points whose run file exists with the same inputs (done or failed; --retry-failed reruns
     failed ones);
  3. realise derived parameters (GTV-to-cord gap) in the parent; a point that cannot be realised is
     committed at once as a failed run with the message;
  4. group the remaining runs by influence key (simsbrt.sweep.cache) and give each group to one
     worker, which computes (or reads) the matrix once and plans its runs one after another;
  5. commit each finished run to DIR/runs/<run_id>.json atomically as it completes and rebuild the
     results table (simsbrt.sweep.results).

Executors:
  - workers == 1: in this process (simplest for debugging); each run is committed as it finishes.
  - local processes (default: one per core on the CPU, one per GPU with the cuda backend): a spawn-
    context ProcessPoolExecutor. Workers share DIR with the parent, so each worker commits its own
    run files as they finish; the parent watches DIR/runs, updates the progress bar and rebuilds
    the table. With more than one worker NUMBA_NUM_THREADS=1 in the workers (one core each);
    with the cuda backend each worker sees one GPU (CUDA_VISIBLE_DEVICES).
  - Dask (``dask_address``): the same group tasks on an existing distributed cluster. Workers may not
    share DIR, so the client commits: the runs of a group are committed when the group's task
    returns (a group is one influence key; a killed client loses at most the runs of the groups in
    flight). The disk influence cache is not used by Dask workers (no shared folder assumed).
An interrupted sweep (Ctrl-C, SIGKILL) keeps every committed run; temporary files are named
'.<name>.part' and ignored; re-running the same command skips the finished runs.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from simsbrt.errors import SimsbrtError, SpecError
from simsbrt.geometry.arcs import arc_set_from_doc
from simsbrt.sweep import results as res
from simsbrt.sweep.cache import CACHE_DIR, DEFAULT_CACHE_MAX_BYTES, DiskCache, influence_key, plan_inputs_for
from simsbrt.sweep.points import (
    RunPoint,
    canonical_json,
    expand_points,
    organ_limits_for_fractions,
    plan_settings,
)
from simsbrt.sweep.spec import SweepSpec

log = logging.getLogger(__name__)

POLL_S = 0.5
TABLE_REBUILD_S = 5.0     # the results table is rewritten at most this often while runs finish (and at the end)
DASK_HINT = "the --dask option needs Dask: pip install simsbrt[dask]"


@dataclass(frozen=True, eq=False)
class GroupTask:
    """Runs that share one influence matrix (same resolved phantom, arcs and influence options)."""

    key: str
    phantom_doc: dict                 # resolved, gap offset applied
    arcs_doc: dict
    influence_doc: dict
    runs: tuple                       # ((RunPoint, derived dict), ...)
    backend: str | None
    out_dir: str | None               # commit run files here (None: the caller commits)
    cache_dir: str
    cache_enabled: bool
    cache_max_bytes: int


@dataclass(frozen=True)
class SweepSummary:
    n_points: int
    n_done: int              # finished in this call
    n_failed: int            # of n_done, failed
    n_skipped: int           # finished before (run file with the same inputs)
    n_other_files: int       # run files of other sweep versions, kept but not in the table
    wall_s: float
    table_csv: str
    table_h5: str
    executor: str

    def text(self) -> str:
        lines = [f"sweep: {self.n_points} runs: {self.n_done} done now ({self.n_failed} failed), "
                 f"skipped {self.n_skipped} finished before; wall {self.wall_s:.1f} s ({self.executor})",
                 f"table: {self.table_csv} and {self.table_h5}"]
        if self.n_other_files:
            lines.append(f"note: {self.n_other_files} run file(s) of other sweep versions kept in runs/, "
                         "not in the table")
        return "\n".join(lines)


# ------------------------------------------------------------------ one run (in a worker)
def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _mode_rows(inputs, point: RunPoint, settings) -> list[dict]:
    """Plan every mode on shared inputs; one dict per mode with every comparison metric."""
    from simsbrt.optimize.plans import make_plans, protocol_for
    from simsbrt.optimize.protocol_numbers import as_protocol, is_boost_protocol
    from simsbrt.report import compare

    masks, voxel_cc = inputs.phantom.structures, inputs.phantom.grid.voxel_volume_cc
    trial = protocol_for("sib" if is_boost_protocol(as_protocol(settings.protocol)) else "uniform", settings)
    per_plan, plan_s = {}, {}
    results = make_plans(inputs, point.modes, settings)        # the exact final doses of the modes in one pass
    for mode, result in results.items():
        per_plan[mode] = compare.plan_metrics_for(result.dose_gy, masks, voxel_cc, result.evaluation, trial,
                                                  point.n_fractions)
        plan_s[mode] = result.timings_s["plan_s"]
    table = compare.build_table(per_plan, point.n_fractions)
    rows = []
    for mode in point.modes:
        r = results[mode]
        row = {"mode": mode, "protocol_name": r.protocol.name}
        for metric in table.rows:
            column = res.metric_column(metric.key)
            row[column] = _finite(metric.values.get(mode))
            if metric.status.get(mode) is not None:
                row[f"{column}.status"] = metric.status[mode]
        row.update({"feasible": bool(r.feasible), "binding_limits": "; ".join(r.binding_limits),
                    "violated_limits": "; ".join(r.evaluation.violated_limits), "search_stop": r.search_stop,
                    "boost_goal_gy": _finite(r.boost_goal_gy), "plan_goal_gy": _finite(r.plan_goal_gy),
                    "prescription_gy": _finite(r.prescription_gy), "cord_prv_limit_gy": _finite(r.cord_prv_limit_gy),
                    "thecal_sac_limit_gy": settings.thecal_sac_limit_gy, "n_iterations": int(r.n_iterations),
                    "plan_source": "planned", "plan_s": plan_s[mode]})
        rows.append(row)
    return rows


def _plan_identity(point: RunPoint) -> str:
    """What, besides the group's shared phantom and arcs, decides a run's plans. Two runs of a group with
    the same identity (e.g. requested gaps that realise as the same geometry) get the same plans."""
    return canonical_json([point.plan_overrides, point.n_fractions, point.isoeffective_organ_limits, point.modes])


def _reused_rows(rows: list[dict], run_id: str) -> list[dict]:
    return [{**row, "plan_source": f"same as {run_id}", "plan_s": 0.0} for row in rows]


def _failed_rows(point: RunPoint) -> list[dict]:
    return [{"mode": mode} for mode in point.modes]


def _record(point: RunPoint, derived: dict, status: str, error, rows, backend=None, device=None,
            source=None, influence_s=None, total_s=None, key=None) -> dict:
    return {"run_id": point.run_id, "point": point.index, "inputs": point.inputs, "modes": list(point.modes),
            "derived": derived, "status": status, "error": error, "rows": rows, "backend": backend,
            "device": device, "influence_key": key, "influence_source": source, "influence_s": influence_s,
            "total_s": total_s}


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, SimsbrtError):
        return str(exc)
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def run_group(task: GroupTask, on_record=None) -> list[dict]:
    """Plan every run of a group on one influence matrix; on_record(record) after each run
    (default: commit to task.out_dir when set). Returns the records."""
    from simsbrt.backend import resolve_backend
    from simsbrt.phantom import build_phantom, parse_spec

    if on_record is None and task.out_dir is not None:
        def on_record(record):
            res.commit_run(task.out_dir, record)
    records = []
    memory: dict = {}
    planned: dict = {}                # plan identity -> (run_id, rows): deterministic plans are not repeated
    disk = DiskCache(Path(task.cache_dir), task.cache_enabled, task.cache_max_bytes)
    try:
        backend = resolve_backend(task.backend)
        phantom = build_phantom(parse_spec(task.phantom_doc))
        arc_set = arc_set_from_doc(task.arcs_doc)
        setup_error = None
    except Exception as exc:  # noqa: BLE001 -- recorded as failed runs, the sweep goes on
        setup_error = _error_text(exc)
    for point, derived in task.runs:
        t0 = time.perf_counter()
        if setup_error is not None:
            record = _record(point, derived, "failed", setup_error, _failed_rows(point), key=task.key)
        else:
            try:
                inputs, source, influence_s = plan_inputs_for(phantom, arc_set, task.influence_doc, backend,
                                                              task.key, memory, disk)
                identity = _plan_identity(point)
                if identity in planned:
                    rows = _reused_rows(planned[identity][1], planned[identity][0])
                else:
                    settings = organ_limits_for_fractions(plan_settings(point.plan_overrides), point.n_fractions,
                                                          point.isoeffective_organ_limits)
                    rows = _mode_rows(inputs, point, settings)
                    planned[identity] = (point.run_id, rows)
                record = _record(point, derived, "done", None, rows, backend.name, backend.device, source,
                                 influence_s, time.perf_counter() - t0, task.key)
            except Exception as exc:  # noqa: BLE001 -- one failed run never stops the sweep
                record = _record(point, derived, "failed", _error_text(exc), _failed_rows(point), backend.name,
                                 backend.device, None, None, time.perf_counter() - t0, task.key)
        if on_record is not None:
            on_record(record)
        records.append(record)
    return records


# ------------------------------------------------------------------ planning the groups (parent)
def _derive(point: RunPoint, memo: dict):
    """(resolved phantom doc, derived columns) of a point; GapError for an unrealisable gap."""
    from simsbrt.sweep.derived import realise_gap

    if point.gap_mm is None:
        return point.phantom_doc, {}
    memo_key = canonical_json([point.phantom_doc, point.gap_mm])
    if memo_key not in memo:
        memo[memo_key] = realise_gap(point.phantom_doc, point.gap_mm)
    gap = memo[memo_key]
    doc = json.loads(json.dumps(point.phantom_doc))
    doc["gtv"]["offset_mm"] = list(gap.offset_mm)
    return doc, {"gtv_cord_gap_realised_mm": gap.realised_mm, "gtv_offset_realised_mm": list(gap.offset_mm)}


def build_groups(points, backend_name: str, out_dir: Path, cache_enabled: bool, cache_max_bytes: int,
                 on_failed) -> list[GroupTask]:
    """Group points by influence key (derivations done here; failures go to on_failed(record)). The tasks
    leave committing to the caller (out_dir None); local worker processes get out_dir set later."""
    groups: dict[str, dict] = {}
    memo: dict = {}
    for point in points:
        try:
            phantom_doc, derived = _derive(point, memo)
        except SimsbrtError as exc:
            on_failed(_record(point, {}, "failed", str(exc), _failed_rows(point)))
            continue
        key = influence_key(phantom_doc, point.arcs_doc, point.influence_doc, backend_name)
        group = groups.setdefault(key, {"phantom_doc": phantom_doc, "arcs_doc": point.arcs_doc,
                                        "influence_doc": point.influence_doc, "runs": []})
        group["runs"].append((point, derived))
    return [GroupTask(key, g["phantom_doc"], g["arcs_doc"], g["influence_doc"], tuple(g["runs"]), backend_name,
                      None, str(out_dir / CACHE_DIR), cache_enabled,
                      cache_max_bytes)
            for key, g in groups.items()]


def default_workers(backend) -> int:
    if backend.name == "cuda":
        from simsbrt.backend import probe_cuda

        return max(1, len(probe_cuda().devices))
    return max(1, os.cpu_count() or 1)


# ------------------------------------------------------------------ the sweep
class _Progress:
    """Commits (when asked), keeps the records, rebuilds the table and moves the bar."""

    def __init__(self, out_dir: Path, points, records: dict, total: int, initial: int, quiet: bool):
        from tqdm import tqdm

        self.out_dir = out_dir
        self.points = points
        self.pending_ids = set()
        self.records = records
        self.n_done = 0
        self.n_failed = 0
        self.bar = tqdm(total=total, initial=initial, desc="sweep", unit="run", file=sys.stderr,
                        disable=quiet, dynamic_ncols=True)
        self.interrupted = False
        self.last_rebuild = -math.inf

    def finished(self, record: dict, commit: bool) -> None:
        if commit:
            res.commit_run(self.out_dir, record)
        self.records[record["run_id"]] = record
        self.pending_ids.discard(record["run_id"])
        self.n_done += 1
        self.n_failed += record["status"] == "failed"
        if time.monotonic() - self.last_rebuild >= TABLE_REBUILD_S:   # the run files are the record; the
            self.rebuild()                                            # table follows at most this late
        self.bar.update(1)
        self.stop_if_interrupted()

    def stop_if_interrupted(self) -> None:
        """A Ctrl-C that Python swallowed (it can land inside a finaliser, where exceptions are only
        printed) still stops the sweep at the next commit or poll."""
        if self.interrupted:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def catching_interrupts(self):
        """SIGINT sets self.interrupted, then raises KeyboardInterrupt as Python's own handler does. A
        KeyboardInterrupt swallowed by a finaliser is not printed as a traceback: the flag handles it."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def on_sigint(signum, frame):
            self.interrupted = True
            raise KeyboardInterrupt

        def on_unraisable(unraisable):
            if not isinstance(unraisable.exc_value, KeyboardInterrupt):
                previous_hook(unraisable)

        previous, previous_hook = signal.signal(signal.SIGINT, on_sigint), sys.unraisablehook
        sys.unraisablehook = on_unraisable
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
            sys.unraisablehook = previous_hook

    def scan(self) -> None:
        """Pick up run files that workers committed."""
        self.stop_if_interrupted()
        runs = self.out_dir / res.RUNS_DIR
        for run_id in list(self.pending_ids):
            path = runs / f"{run_id}.json"
            if path.is_file():
                record = res.read_run_file(path)
                if record is not None:
                    self.finished(record, commit=False)

    def rebuild(self) -> dict:
        self.last_rebuild = time.monotonic()
        return res.write_table(self.out_dir, res.table_rows(self.points, self.records))

    def close(self) -> None:
        self.bar.close()


def run_sweep(spec: SweepSpec, out_dir, workers: int | None = None, dask_address: str | None = None,
              backend: str | None = None, cache: bool = True, cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES,
              retry_failed: bool = False, quiet: bool = False) -> SweepSummary:
    """Run every point of the sweep not finished yet; write DIR/runs/*.json, results.csv, results.h5."""
    from simsbrt.backend import resolve_backend
    from simsbrt.cli_compare import check_out_dir

    t_start = time.perf_counter()
    if workers is not None and workers < 1:
        raise SpecError("workers", f"must be >= 1, got {workers}")
    resolved_backend = resolve_backend(backend)
    points = expand_points(spec)          # every value checked before the output folder is made
    if dask_address is not None:
        check_scheduler_reachable(dask_address)
    out = check_out_dir(out_dir)
    (out / res.RUNS_DIR).mkdir(exist_ok=True)
    res.write_text_atomic(out / "sweep.json", json.dumps(
        {"sweep": dataclasses.asdict(spec), "run_ids": [p.run_id for p in points]}, indent=1,
        default=lambda v: list(v) if isinstance(v, tuple) else str(v)) + "\n")
    existing = res.load_run_records(out)
    ids = {p.run_id for p in points}
    n_other = sum(1 for run_id in existing if run_id not in ids)
    records = {p.run_id: existing[p.run_id] for p in points if res.record_matches(existing.get(p.run_id), p)}
    pending = [p for p in points if p.run_id not in records
               or (retry_failed and records[p.run_id]["status"] == "failed")]
    for p in pending:
        records.pop(p.run_id, None)
    n_skipped = len(points) - len(pending)
    progress = _Progress(out, points, records, len(points), n_skipped, quiet)
    executor = "nothing to run"
    try:
        with progress.catching_interrupts():
            progress.rebuild()
            if pending:
                executor = _execute(pending, progress, out, workers, dask_address, resolved_backend, cache,
                                    cache_max_bytes)
            paths = progress.rebuild()
    except KeyboardInterrupt:
        progress.close()
        with contextlib.suppress(BaseException):      # the table of what was committed (best effort)
            progress.rebuild()
        print(f"\nsimsbrt sweep: interrupted; {progress.n_done + n_skipped} of {len(points)} runs are committed "
              f"in {out / res.RUNS_DIR}; run the same command again to resume", file=sys.stderr, flush=True)
        raise
    progress.close()
    return SweepSummary(len(points), progress.n_done, progress.n_failed, n_skipped, n_other,
                        time.perf_counter() - t_start, str(paths["csv"]), str(paths["h5"]), executor)


def _execute(pending, progress: _Progress, out: Path, workers, dask_address, backend, cache: bool,
             cache_max_bytes: int) -> str:
    progress.pending_ids = {p.run_id for p in pending}
    groups = build_groups(pending, backend.name, out, cache, cache_max_bytes, on_failed=lambda record: progress.finished(record, commit=True))
    if not groups:
        return "nothing to run"
    if dask_address is not None:
        _run_dask(groups, progress, dask_address)
        return f"dask at {dask_address}"
    # groups larger than one run can be split between idle workers when the disk cache shares the matrix
    n_tasks = sum(len(g.runs) for g in groups) if cache else len(groups)
    n_workers = min(workers or default_workers(backend), n_tasks)
    if n_workers == 1:
        for task in groups:
            run_group(task, on_record=lambda record: progress.finished(record, commit=True))
        return "in-process (1 worker)"
    groups = [dataclasses.replace(g, out_dir=str(out)) for g in groups]
    _run_processes(groups, progress, n_workers, backend)
    return f"{n_workers} local worker processes"


@contextlib.contextmanager
def _environment(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _worker_init(gpu_counter, use_gpus: bool, parent_pid: int | None = None) -> None:
    """One GPU per worker process (the cupy import comes later, in the worker's first task); the
    worker ends with its parent (simsbrt.sweep.orphans)."""
    if parent_pid is not None:
        from simsbrt.sweep.orphans import stop_with_parent

        stop_with_parent(parent_pid)
    if use_gpus:
        with gpu_counter.get_lock():
            index = gpu_counter.value
            gpu_counter.value += 1
        os.environ["CUDA_VISIBLE_DEVICES"] = worker_gpu(index, os.environ.get("CUDA_VISIBLE_DEVICES"))


def worker_gpu(index: int, visible: str | None) -> str:
    """The CUDA_VISIBLE_DEVICES entry of worker ``index``: the index-th entry of an existing list (ids or
    UUIDs, cycled), else the index itself."""
    entries = [e.strip() for e in (visible or "").split(",") if e.strip()]
    return entries[index % len(entries)] if entries else str(index)


def split_for_workers(groups, n_workers: int) -> tuple[list, set]:
    """With fewer groups than workers, halve the largest groups until every worker has a task.
    Returns (tasks, keys that were split). Only used with the disk cache: a split key's matrix is
    computed once first (precompute_influence) and its chunks read it from DIR/cache."""
    tasks = list(groups)
    split = set()
    while len(tasks) < n_workers:
        largest = max(tasks, key=lambda t: len(t.runs))
        if len(largest.runs) < 2:
            break
        tasks.remove(largest)
        half = (len(largest.runs) + 1) // 2
        tasks += [dataclasses.replace(largest, runs=largest.runs[:half]),
                  dataclasses.replace(largest, runs=largest.runs[half:])]
        split.add(largest.key)
    tasks.sort(key=lambda t: t.runs[0][0].index)
    return tasks, split


def precompute_influence(task: GroupTask) -> bool:
    """Compute a group's matrix into the disk cache (unless there), whatever the size cap: its split
    chunks read it from there (computing it once more per chunk would defeat the split). True if held."""
    from simsbrt.backend import resolve_backend
    from simsbrt.phantom import build_phantom, parse_spec

    disk = DiskCache(Path(task.cache_dir), task.cache_enabled, task.cache_max_bytes)
    if disk.path(task.key).is_file():
        return True
    try:
        plan_inputs_for(build_phantom(parse_spec(task.phantom_doc)), arc_set_from_doc(task.arcs_doc),
                        task.influence_doc, resolve_backend(task.backend), task.key, {}, disk, force_store=True)
    except Exception:  # noqa: BLE001 -- the chunks will meet (and record) the same error
        return False
    return disk.path(task.key).is_file()


def _run_processes(groups, progress: _Progress, n_workers: int, backend) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    tasks, split = split_for_workers(groups, n_workers) if groups[0].cache_enabled else (groups, set())
    held = {key: [t for t in tasks if t.key == key] for key in split}      # chunks wait for their matrix
    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("i", 0)
    # spawned workers read the environment at start: one Numba thread each (one core per worker)
    with _environment(NUMBA_NUM_THREADS="1"):
        pool = ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx, initializer=_worker_init,
                                   initargs=(counter, backend.name == "cuda", os.getpid()))
        try:
            futures = {}
            for key, chunks in held.items():
                futures[pool.submit(precompute_influence, chunks[0])] = ("precompute", key)
            for task in tasks:
                if task.key not in held:
                    futures[pool.submit(run_group, task)] = ("group", task)
            while futures:
                done, _ = wait(futures, timeout=POLL_S, return_when=FIRST_COMPLETED)
                progress.scan()
                for future in done:
                    kind, item = futures.pop(future)
                    if kind == "precompute":
                        chunks = held.pop(item)
                        if not (future.exception() is None and future.result()):
                            # no cached matrix: run the group whole rather than compute it twice
                            chunks = [dataclasses.replace(chunks[0], runs=tuple(r for c in chunks for r in c.runs))]
                        for task in chunks:
                            futures[pool.submit(run_group, task)] = ("group", task)
                        continue
                    try:
                        future.result()
                    except Exception as exc:  # noqa: BLE001 -- a dead worker fails its uncommitted runs
                        progress.scan()
                        for point, derived in item.runs:
                            if point.run_id in progress.pending_ids:
                                progress.finished(_record(point, derived, "failed", f"worker failed: {exc!r}",
                                                          _failed_rows(point), key=item.key), commit=True)
            progress.scan()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            for process in list(getattr(pool, "_processes", {}).values()):
                with contextlib.suppress(Exception):
                    process.terminate()
            raise
        pool.shutdown(wait=True)


DASK_CONNECT_TIMEOUT_S = 5.0


def check_scheduler_reachable(address: str) -> None:
    """SpecError unless ADDRESS is [tcp://]HOST:PORT and a TCP connection to it opens in a few seconds."""
    import socket

    try:
        import distributed  # noqa: F401 - needed for the run; a missing one is named first
    except ImportError:
        raise SimsbrtError(DASK_HINT) from None
    text = str(address).removeprefix("tcp://")
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SpecError("dask", f"needs a scheduler address [tcp://]HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=DASK_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise SpecError("dask", f"cannot reach a scheduler at {address}: {exc.strerror or exc}") from None


def _run_dask(groups, progress: _Progress, address: str) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise SimsbrtError(DASK_HINT) from None
    client = Client(address)
    try:
        tasks = [dataclasses.replace(g, out_dir=None, cache_enabled=False) for g in groups]
        futures = [client.submit(run_group, task, pure=False) for task in tasks]
        task_of = dict(zip(futures, tasks))
        for future in as_completed(futures):
            try:
                records = future.result()
            except Exception as exc:  # noqa: BLE001 -- a lost task fails its runs, the sweep goes on
                task = task_of[future]
                records = [_record(point, derived, "failed", f"dask task failed: {exc!r}", _failed_rows(point),
                                   key=task.key) for point, derived in task.runs]
            for record in records:
                progress.finished(record, commit=True)
    finally:
        client.close()
