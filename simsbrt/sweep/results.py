"""Per-run records and the sweep's results table (CSV and HDF5), every file written atomically.

Layout of the output folder DIR:
  runs/<run_id>.json   one finished run (done or failed): its resolved inputs, one row per mode with
                       every metric of ``simsbrt compare``, backend, device and timings. Written with
                       simsbrt.io.atomic (a temporary '.<name>.<random>.json.part' renamed over the
                       target), so a file under its final name is always complete ("complete": true).
  results.csv          the table: one row per (run, mode) of the current sweep file, in point order
  results.h5           the same table: /table/<column> datasets (float64 with NaN for numbers, UTF-8
                       strings otherwise), root attribute columns_json (the order and the original names)
  sweep.json           the sweep file as parsed and its run ids (informational)
  cache/<key>.h5       influence matrices (simsbrt.sweep.cache)
Temporary files start with '.' and end with '.part'; every reader here ignores them. The table is
rebuilt from the run files of the current sweep after each committed run and at the end; run files
of other sweep versions (a changed sweep file gives its changed runs new ids) stay on disk and are
left out of the table.

Columns: run_id, point, every resolved input path (phantom.*, arcs.*, plan.*, protocol.*,
influence.*), the realised gap and GTV offset, mode, status (done / failed), error, every metric of
the comparison table (simsbrt.report.compare; named "<structure>.<metric>", e.g. GTV.D50%,
SpinalCord_PRV02.D0.03cc, GTV.EQD2_6_D50%, PTV_Eval.Paddick_CI_@30Gy) with its protocol status
("<column>.status"), the plan summary (feasible, binding_limits, violated_limits, search_stop,
boost_goal_gy, plan_goal_gy, prescription_gy, cord_prv_limit_gy, n_iterations), backend, device,
influence_source (computed / memory / disk), influence_s (0 unless computed or read for this run),
plan_source ("planned", or "same as <run_id>" when an earlier run of the worker had the same realised
phantom, arcs and plan inputs and its plans are reused; plan_s is then 0), plan_s (this mode), total_s
(the whole run).
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

from simsbrt.errors import SchemaError
from simsbrt.io.atomic import write_text_atomic
from simsbrt.sweep.points import json_default

RUN_SCHEMA = "simsbrt.sweep.run/1"
TABLE_KIND = "sweep_results"
TABLE_SCHEMA = 1
RUNS_DIR = "runs"
CSV_NAME = "results.csv"
H5_NAME = "results.h5"
LEAD_COLUMNS = ("run_id", "point")
RUN_COLUMNS = ("mode", "status", "error")
TAIL_COLUMNS = ("backend", "device", "influence_source", "influence_s", "plan_source", "plan_s", "total_s")


def metric_column(key: str) -> str:
    """A comparison-table key as a column name: 'GTV D50%' -> 'GTV.D50%', 'GTV EQD2_6 D50%' -> 'GTV.EQD2_6_D50%'."""
    structure, _, rest = key.partition(" ")
    return f"{structure}.{rest.replace(' ', '_')}"


# ------------------------------------------------------------------ run files
def is_temporary(path: Path) -> bool:
    return path.name.startswith(".") or path.name.endswith(".part")


def run_path(out_dir, run_id: str) -> Path:
    return Path(out_dir) / RUNS_DIR / f"{run_id}.json"


def commit_run(out_dir, record: dict) -> Path:
    """Write one finished run atomically (the record must carry run_id)."""
    path = run_path(out_dir, record["run_id"])
    write_text_atomic(path, json.dumps({**record, "schema": RUN_SCHEMA, "complete": True}, indent=1,
                                       allow_nan=False, default=json_default) + "\n")
    return path


def read_run_file(path) -> dict | None:
    """A complete run record, or None for a file that is not one (never raises on bad content)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("schema") != RUN_SCHEMA or record.get("complete") is not True:
        return None
    return record


def load_run_records(out_dir) -> dict:
    """{run_id: record} of every complete run file in DIR/runs (temporary files ignored)."""
    runs = Path(out_dir) / RUNS_DIR
    out = {}
    if runs.is_dir():
        for path in sorted(runs.glob("*.json")):
            if is_temporary(path):
                continue
            record = read_run_file(path)
            if record is not None and record.get("run_id") == path.stem:
                out[path.stem] = record
    return out


def record_matches(record: dict | None, point) -> bool:
    """A run file belongs to this point: same id, same resolved inputs and modes."""
    return (record is not None and record.get("run_id") == point.run_id
            and record.get("inputs") == json.loads(json.dumps(point.inputs))
            and record.get("modes") == list(point.modes))


# ------------------------------------------------------------------ the table
def table_rows(points, records: dict) -> list[dict]:
    """One row per (run, mode) of the points that have a matching record, in point then mode order."""
    rows = []
    for point in sorted(points, key=lambda p: p.index):
        record = records.get(point.run_id)
        if not record_matches(record, point):
            continue
        for mode_row in record["rows"]:
            rows.append({"run_id": point.run_id, "point": point.index, **record["inputs"], **record.get("derived", {}),
                         "status": record["status"], "error": record.get("error"), **mode_row,
                         "backend": record.get("backend"), "device": record.get("device"),
                         "influence_source": record.get("influence_source"),
                         "influence_s": record.get("influence_s"), "total_s": record.get("total_s")})
    return rows


def table_columns(rows: list[dict]) -> list[str]:
    """Lead columns, inputs (first-seen order), mode/status/error, metrics, then the tail columns."""
    seen = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    fixed = set(LEAD_COLUMNS) | set(RUN_COLUMNS) | set(TAIL_COLUMNS)
    inputs = [k for k in seen if k.split(".")[0] in ("phantom", "arcs", "plan", "protocol", "influence")
              and k not in fixed]
    metrics = [k for k in seen if k not in fixed and k not in inputs]
    return [*LEAD_COLUMNS, *inputs, *RUN_COLUMNS, *metrics, *(c for c in TAIL_COLUMNS if c in seen)]


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def table_csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def write_table(out_dir, rows: list[dict]) -> dict:
    """DIR/results.csv and DIR/results.h5, each atomically. Returns {"csv": path, "h5": path}."""
    from simsbrt.io.h5file import create_h5

    out = Path(out_dir)
    columns = table_columns(rows)
    paths = {"csv": out / CSV_NAME, "h5": out / H5_NAME}
    write_text_atomic(paths["csv"], table_csv(rows, columns))
    with create_h5(paths["h5"], TABLE_KIND, TABLE_SCHEMA, columns_json=json.dumps(columns),
                   n_rows=np.int64(len(rows))) as f:
        g = f.create_group("table")
        for n, column in enumerate(columns):
            values = [row.get(column) for row in rows]
            present = [v for v in values if v is not None]
            if present and all(_is_number(v) for v in present):
                data = np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
            else:
                data = np.array([_csv_cell(v) for v in values], dtype=object)
            ds = g.create_dataset(f"c{n:04d}", data=data,
                                  dtype=None if data.dtype != object else _utf8())
            ds.attrs["name"] = column
    return paths


def _utf8():
    import h5py

    return h5py.string_dtype("utf-8")


# ------------------------------------------------------------------ reading the table back
def _parse_csv_cell(text: str):
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    try:
        return float(text)
    except ValueError:
        return text


def read_table(path) -> tuple[list[str], list[dict]]:
    """(columns, rows) of results.csv (or the results.csv in a sweep folder); numbers as float,
    true/false as bool, empty cells as None."""
    path = Path(path)
    if path.is_dir():
        path = path / CSV_NAME
    if not path.is_file():
        raise SchemaError(f"{path}: no sweep results table (run `simsbrt sweep SWEEP.toml --out DIR` first)")
    reader = csv.reader(io.StringIO(path.read_text()))
    try:
        columns = next(reader)
    except StopIteration:
        raise SchemaError(f"{path}: empty results table") from None
    rows = []
    for n, cells in enumerate(reader):
        if len(cells) != len(columns):
            raise SchemaError(f"{path}: row {n + 1} has {len(cells)} cells for {len(columns)} columns")
        rows.append({c: _parse_csv_cell(v) for c, v in zip(columns, cells)})
    return columns, rows


def read_table_h5(path) -> dict:
    """{column: numpy array} of results.h5 in column order."""
    from simsbrt.io.h5file import open_h5

    out = {}
    with open_h5(path, TABLE_KIND, TABLE_SCHEMA) as f:
        columns = json.loads(f.attrs["columns_json"])
        g = f["table"]
        for n, column in enumerate(columns):
            ds = g[f"c{n:04d}"]
            data = ds[...]
            out[column] = data if data.dtype.kind == "f" else np.array(
                [v.decode() if isinstance(v, bytes) else v for v in data], dtype=object)
    return out
