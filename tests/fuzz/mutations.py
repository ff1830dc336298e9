"""Seeded mutations of every input format, each a harness.Case.

Families: phantom spec TOML, arcs TOML, sweep TOML, protocol TOML, DICOM name map TOML, numeric
command-line options, phantom / plan HDF5 files, DICOM folders, and output paths that resolve to
inputs. A mutation from a hostile-value pool (out of the documented range, non-finite, wrong type)
is ``impossible``: exit 0 counts as a silently accepted input. Random byte damage may leave a file
valid, so it only needs a clean error or a validated output.
"""
from __future__ import annotations

import copy
import math
import random
import shutil
import tomllib
import zlib
from pathlib import Path

import numpy as np

from tests.fuzz.harness import Case

# -------------------------------------------------------------------------- TOML writing
def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _toml_value(str(k))


def dumps_toml(doc: dict) -> str:
    """A TOML document of plain data (tables and arrays of tables at any depth)."""
    lines, tables = [], []
    for k, v in doc.items():
        if isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            tables.append((k, v))
        else:
            lines.append(f"{_key(k)} = {_toml_value(v)}")
    for k, v in tables:
        if isinstance(v, dict):
            lines.append(f"\n[{_key(k)}]")
            lines.extend(f"{_key(kk)} = {_toml_value(vv)}" for kk, vv in v.items())
        else:
            for item in v:
                lines.append(f"\n[[{_key(k)}]]")
                lines.extend(f"{_key(kk)} = {_toml_value(vv)}" for kk, vv in item.items())
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------- value pools
NON_FINITE = [float("nan"), float("inf"), float("-inf")]
HUGE = [1e300, -1e300, 1e9, -1e9, 2**62, -(2**62)]
TINY = [1e-300, 1e-120, -1e-300]
WRONG_TYPE = ["x", "", [], {}, [1, 2], {"a": 1}, True, [[1.0]], "1e300"]
BAD_NUMBERS = NON_FINITE + HUGE + TINY + WRONG_TYPE
NOT_NUMBERS = NON_FINITE + HUGE + WRONG_TYPE     # for quantities where a tiny value is legitimate


def _nested_array(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def encoding_damage(rng: random.Random, text: str) -> tuple[str, bytes | None]:
    """(what, bytes) of a text file damaged at the encoding level; bytes None = make a directory."""
    kind = rng.choice(["utf16", "latin1", "binary", "truncated", "empty", "nested", "nul", "directory",
                       "bom", "hdf5"])
    if kind == "utf16":
        return kind, text.encode("utf-16")
    if kind == "latin1":
        return kind, ("# caf\xe9 \xff\n" + text).encode("latin-1", errors="replace")
    if kind == "binary":
        return kind, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 2048)))
    if kind == "truncated":
        data = text.encode()
        return kind, data[: rng.randrange(1, max(2, len(data) - 1))]
    if kind == "empty":
        return kind, b""
    if kind == "nested":
        return kind, (text + f"\nzz_nested = {_nested_array(rng.choice([200, 2000, 20000]))}\n").encode()
    if kind == "nul":
        data = bytearray(text.encode())
        data[rng.randrange(len(data))] = 0
        return kind, bytes(data)
    if kind == "bom":
        return kind, b"\xef\xbb\xbf" + text.encode()
    if kind == "hdf5":
        return kind, b"\x89HDF\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(512))
    return kind, None


def _write(path: Path, data: bytes | None) -> None:
    if data is None:
        path.mkdir(parents=True, exist_ok=True)
    else:
        path.write_bytes(data)


def _set_path(doc: dict, dotted: list, value) -> None:
    node = doc
    for k in dotted[:-1]:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    node[dotted[-1]] = value


def _byte_flips(rng: random.Random, data: bytes, n: int) -> bytes:
    b = bytearray(data)
    for _ in range(n):
        b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


# -------------------------------------------------------------------------- validators
def _valid_phantom(path: Path) -> None:
    from simsbrt.io.phantom_h5 import read_phantom

    phantom = read_phantom(path)
    d = np.asarray(phantom.density)
    assert np.all(np.isfinite(d)) and d.min() >= 0 and d.max() > 0, "density not finite / positive"
    for name in ("Body", "GTV", "PTV", "PTV_Eval"):
        assert phantom.structures.get(name) is not None and phantom.structures[name].any(), f"{name} empty"


def validate_phantom_out(name: str):
    return lambda wd, out: _valid_phantom(wd / name)


def validate_plan_out(name: str):
    def check(wd: Path, out: str) -> None:
        from simsbrt.io.plan_h5 import read_plan

        plan = read_plan(wd / name)
        assert np.all(np.isfinite(plan.dose_gy)) and plan.dose_gy.min() >= 0, "dose not finite / >= 0"
        assert np.all(np.isfinite(plan.weights_mu)) and plan.weights_mu.min() >= 0, "weights not finite / >= 0"
    return check


def validate_influence_out(name: str):
    def check(wd: Path, out: str) -> None:
        from simsbrt.io.influence_h5 import read_influence

        im = read_influence(wd / name)
        assert im.nnz > 0 and np.all(np.isfinite(im.matrix.data)), "empty or non-finite influence matrix"
    return check


def validate_sweep_out(folder: str):
    def check(wd: Path, out: str) -> None:
        from simsbrt.sweep import read_table

        _, rows = read_table(wd / folder)
        assert rows, "no row in results.csv"
    return check


def validate_text(wd: Path, out: str) -> None:
    low = out.lower()
    for bad in (" nan", " inf", "nan gy", "inf gy"):
        assert bad not in low, f"output prints {bad.strip()!r}"


def validate_dicom_out(folder: str):
    def check(wd: Path, out: str) -> None:
        import pydicom

        files = sorted((wd / folder).glob("*.dcm"))
        assert files, "no DICOM files written"
        for f in files:
            ds = pydicom.dcmread(str(f))
            if ds.Modality in ("CT", "RTDOSE"):
                px = ds.pixel_array
                assert px.size and px.max() > px.min() or ds.Modality == "CT", f"{f.name}: flat image"
    return check


# -------------------------------------------------------------------------- families
SPEC_FIELDS = {
    "name": [[], {}, 5],
    "seed": [-1, 2**40, 1.5, "x", float("nan")],
    "anatomy.level": ["T99", ["T10"], {"a": 1}, 10, "", [["T10"]]],
    "anatomy.levels_above": [-1, 0, 100, 1.5, "x", 2**62],
    "grid.spacing_mm": BAD_NUMBERS + [0.0, 0.1, 50.0],
    "gtv.sectors": [[], "bogus", [["vertebral_body"]], [{}], 1, ["vertebral_body", "vertebral_body"]],
    "gtv.volume_cc": BAD_NUMBERS + [0.0, 1e6, 2e4],
    "gtv.aspect": [[1e300] * 3, [1e-120] * 3, [0, 1, 1], [-1, 1, 1], [1, 1], "x", [float("nan")] * 3,
                   [1e300, 1e300, 1e299]],
    "gtv.offset_mm": [[1e300, 0, 0], [0, 1e9, 0], [0, 0, -1e300], [1, 2], [float("inf"), 0, 0], [500.0, 0, 0]],
    "gtv.levels": [["T99"], [["T10"]], [{}], "T1", ["T10", "T10"], 5],
    "gtv.extraosseous_mm": NOT_NUMBERS + [100.0],
    "gtv.bilsky": ["4", ["1a"], {"x": 1}, 5, ""],
    "gtv.lesion_type": ["x", ["lytic"], 3],
    "gtv.shape": ["cube", ["ellipsoid"], 1],
    "ctv.method": ["x", ["margin"], {}],
    "ctv.margin_mm": NOT_NUMBERS + [100.0],
    "ptv.margin_lr_mm": NOT_NUMBERS + [-1.0],
    "ptv.margin_si_mm": NOT_NUMBERS,
}


def gen_phantom_spec(rng: random.Random, assets: Path) -> Case:
    text = (assets / "spec.toml").read_text()
    doc = tomllib.loads(text)
    mode = rng.random()
    impossible = True
    if mode < 0.6:
        key = rng.choice(sorted(SPEC_FIELDS))
        value = copy.deepcopy(rng.choice(SPEC_FIELDS[key]))
        _set_path(doc, key.split("."), value)
        what, data = f"{key}={value!r}"[:80], dumps_toml(doc).encode()
    elif mode < 0.85:
        what, data = encoding_damage(rng, text)
        what = f"encoding:{what}"
        impossible = what not in ("encoding:bom", "encoding:truncated")
    else:
        data = _byte_flips(rng, text.encode(), rng.randrange(1, 6))
        what, impossible = "byte flips", False

    def setup(wd: Path) -> None:
        _write(wd / "case.toml", data)
    return Case("phantom spec TOML", what, ["phantom", "build", "case.toml", "--out", "out.h5"], setup,
                impossible=impossible, validate=validate_phantom_out("out.h5"), timeout_s=60)


def _copy_phantom(assets: Path, wd: Path) -> None:
    shutil.copy(assets / "phantom.h5", wd / "phantom.h5")


ARC_MUTATIONS = [
    ("isocentre_mm", [[0.0, 1000.0, 0.0], [0.0, 1e6, 0.0], [1e6, 0, 0], [0.0, -990.0, 0.0], [1e300, 0, 0],
                      [0, 0], "x", [float("nan"), 0, 0]]),
    ("beamlet_size_mm", BAD_NUMBERS + [0.0, 0.01, 100.0]),
    ("beamlet_margin_mm", NOT_NUMBERS + [-1.0, 500.0]),
    ("arc.gantry_start_deg", NOT_NUMBERS),
    ("arc.gantry_stop_deg", NOT_NUMBERS),
    ("arc.collimator_deg", NOT_NUMBERS),
    ("arc.couch_deg", NOT_NUMBERS + [180.0]),
    ("arc.spacing_deg", BAD_NUMBERS + [0.0, 0.001, 400.0]),
    ("arc.direction", ["up", 1, ["cw"]]),
    ("arc", [[], "x", 1, [1, 2]]),
]


def _plan_argv(arcs: str = "arcs.toml", phantom: str = "phantom.h5", out: str = "plan.h5") -> list:
    return ["plan", phantom, "--mode", "uniform", "--arcs", arcs, "--out", out, "--search-steps", "0"]


def gen_arcs(rng: random.Random, assets: Path) -> Case:
    text = (assets / "arcs.toml").read_text()
    doc = tomllib.loads(text)
    mode = rng.random()
    impossible = True
    if mode < 0.65:
        key, pool = rng.choice(ARC_MUTATIONS)
        value = copy.deepcopy(rng.choice(pool))
        if key.startswith("arc."):
            doc["arc"][0][key[4:]] = value
        else:
            doc[key] = value
        what = f"{key}={value!r}"[:80]
        try:
            data = dumps_toml(doc).encode()
        except TypeError:
            data = text.encode()
    else:
        what, data = encoding_damage(rng, text)
        what = f"encoding:{what}"
        impossible = what not in ("encoding:bom", "encoding:truncated")

    def setup(wd: Path) -> None:
        _copy_phantom(assets, wd)
        _write(wd / "case_arcs.toml", data)
    return Case("arcs TOML", what, _plan_argv("case_arcs.toml"), setup, impossible=impossible,
                validate=validate_plan_out("plan.h5"), protect=("phantom.h5",), timeout_s=90)


SWEEP_MUTATIONS = [
    ("grid", {"plan.cord_prv_limit_gy": [20.0 + i * 1e-3 for i in range(1000)],
              "plan.thecal_sac_limit_gy": [25.0 + i * 1e-3 for i in range(1000)]}),
    ("sample", {"n": 10**9, "plan.thecal_sac_limit_gy": {"uniform": [20.0, 25.0]}}),
    ("sample", {"n": 3, "plan.thecal_sac_limit_gy": {"uniform": [20.0, float("inf")]}}),
    ("sample", {"n": 3, "plan.thecal_sac_limit_gy": {"uniform": [float("nan"), 25.0]}}),
    ("sample", {"n": -1, "plan.thecal_sac_limit_gy": {"uniform": [20.0, 25.0]}}),
    ("grid", {"phantom.gtv_cord_gap_mm": ["x"]}),
    ("grid", {"plan.cord_prv_limit_gy": [1e9]}),
    ("grid", {"plan.cord_prv_limit_gy": [float("nan")]}),
    ("grid", {"plan.search_steps": [1000000]}),
    ("grid", {"phantom.gtv.volume_cc": [1e300]}),
    ("grid", {"phantom.grid.spacing_mm": [50.0]}),
    ("grid", {"influence.body_margin_mm": [-5.0]}),
    ("grid", {"arcs.spacing_deg": [1e300]}),
    ("grid", {"plan.cord_prv_limit_gy": []}),
    ("modes", ["bogus"]),
    ("modes", []),
    ("phantom", "missing.toml"),
    ("arcs", "missing.toml"),
    ("seed", -5),
    ("zip", [{"plan.cord_prv_limit_gy": [20.0, 21.0], "plan.thecal_sac_limit_gy": [25.0]}]),
]


def gen_sweep(rng: random.Random, assets: Path) -> Case:
    text = (assets / "sweep.toml").read_text()
    doc = tomllib.loads(text)
    impossible = True
    if rng.random() < 0.7:
        key, value = copy.deepcopy(rng.choice(SWEEP_MUTATIONS))
        doc[key] = value
        what = f"{key}={str(value)[:60]}"
        data = dumps_toml(doc).encode()
    else:
        what, data = encoding_damage(rng, text)
        what = f"encoding:{what}"
        impossible = what not in ("encoding:bom", "encoding:truncated")

    def setup(wd: Path) -> None:
        shutil.copy(assets / "spec.toml", wd / "spec.toml")
        shutil.copy(assets / "arcs.toml", wd / "arcs.toml")
        _write(wd / "case_sweep.toml", data)
    return Case("sweep TOML", what, ["sweep", "case_sweep.toml", "--out", "sweep_out", "--workers", "1", "--quiet"],
                setup, impossible=impossible, validate=validate_sweep_out("sweep_out"),
                protect=("spec.toml", "arcs.toml"), timeout_s=90,
                extra={"no_leftover": "sweep_out"})


PROTOCOL_FIELDS = [
    ("protocol.n_fractions", [0, -1, 1.5, "x", 10**9]),
    ("prescription.dose_gy", BAD_NUMBERS + [0.0, -30.0]),
    ("prescription.metric", ["D200%", "x", 1, []]),
    ("prescription.structure", ["Nope", 1, []]),
    ("protocol.required_structures", ["x", [1], [[]], ["Nope"]]),
    ("limit0.structure", ["Nope", 1, {}]),
    ("limit0.metric", ["Dx%", "D-5%", "V1e300Gy", 5]),
    ("limit0.optimal", [{"max": float("nan")}, {"max": "x"}, {"min": 40.0, "max": 30.0}, 5, {"bogus": 1}]),
    ("limit0.mandatory", [{"max": float("inf")}, {"max": -1.0}, []]),
    ("limit", [[], "x"]),
]


def gen_protocol(rng: random.Random, assets: Path) -> Case:
    text = (assets / "protocol.toml").read_text()
    doc = tomllib.loads(text)
    impossible = True
    if rng.random() < 0.65:
        key, pool = rng.choice(PROTOCOL_FIELDS)
        value = copy.deepcopy(rng.choice(pool))
        if key.startswith("limit0."):
            doc["limit"][0][key[7:]] = value
        elif "." in key:
            _set_path(doc, key.split("."), value)
        else:
            doc[key] = value
        what = f"{key}={value!r}"[:80]
        data = dumps_toml(doc).encode()
    else:
        what, data = encoding_damage(rng, text)
        what = f"encoding:{what}"
        impossible = what not in ("encoding:bom", "encoding:truncated")

    def setup(wd: Path) -> None:
        _write(wd / "case_protocol.toml", data)
    return Case("protocol TOML", what, ["protocol", "show", "case_protocol.toml"], setup, impossible=impossible,
                validate=validate_text, timeout_s=30)


def gen_names(rng: random.Random, assets: Path) -> Case:
    text = (assets / "names.toml").read_text()
    doc = tomllib.loads(text)
    impossible = True
    r = rng.random()
    if r < 0.5:
        choice = rng.choice([("required", [1]), ("required", ["Nope"]), ("ignore", [[]]),
                             ("structures", {"GTV": [1]}), ("structures", {"Bogus": ["x"]}),
                             ("structures", {"GTV": ["Body"], "Body": ["Body"]}), ("structures", []),
                             ("bogus", 1)])
        key, value = copy.deepcopy(choice)
        doc[key] = value if key != "structures" or not isinstance(value, dict) else {**doc["structures"], **value}
        what, data = f"{key}={value!r}"[:80], dumps_toml(doc).encode()
    else:
        what, data = encoding_damage(rng, text)
        what = f"encoding:{what}"
        impossible = what not in ("encoding:bom", "encoding:truncated")

    def setup(wd: Path) -> None:
        shutil.copytree(assets / "dicom", wd / "dicom")
        _write(wd / "case_names.toml", data)
    return Case("DICOM name map TOML", what, ["import", "dicom", "dicom", "--out", "imported.h5", "--names",
                                              "case_names.toml"], setup, impossible=impossible,
                validate=validate_phantom_out("imported.h5"), timeout_s=60)


def _cli_cases():
    """(what, argv, setup files, impossible, timeout) templates of numeric options."""
    plan = ["plan", "phantom.h5", "--mode", "uniform", "--arcs", "arcs.toml", "--out", "p.h5"]
    return [
        ("plan --search-steps", lambda v: plan + ["--search-steps", v], ["1000000", "-1", "1e3", "x", "99"]),
        ("plan --cord-prv-limit-gy", lambda v: plan + ["--search-steps", "0", "--cord-prv-limit-gy", v],
         ["1e9", "1e-300", "nan", "inf", "-5", "0", "x"]),
        ("dose pdd --field-mm", lambda v: ["dose", "pdd", "--field-mm", v], ["1e6", "nan", "inf", "-10", "0", "1e-300"]),
        ("dose pdd --ssd-mm", lambda v: ["dose", "pdd", "--ssd-mm", v], ["0", "-1000", "nan", "1e9", "inf"]),
        ("dose pdd --depth-max-mm", lambda v: ["dose", "pdd", "--depth-max-mm", v], ["0", "-1", "nan", "1e9"]),
        ("dose compute --body-margin-mm",
         lambda v: ["dose", "compute", "phantom.h5", "--arcs", "arcs.toml", "--out", "i.h5", "--body-margin-mm", v],
         ["-5", "nan", "inf", "1e9"]),
        ("dose compute --structure-margin-mm",
         lambda v: ["dose", "compute", "phantom.h5", "--arcs", "arcs.toml", "--out", "i.h5",
                    "--structure-margin-mm", v], ["-5", "nan", "inf", "1e9"]),
        ("dose compute --tail-threshold-frac",
         lambda v: ["dose", "compute", "phantom.h5", "--arcs", "arcs.toml", "--out", "i.h5",
                    "--tail-threshold-frac", v], ["-1", "nan", "2", "inf"]),
        ("dose compute --beam", lambda v: ["dose", "compute", "phantom.h5", "--arcs", "arcs.toml", "--out", "i.h5",
                                           "--beam", v], ["missing.json", "bad_beam.json", ".", "phantom.h5"]),
        ("radiobiology --total-gy", lambda v: ["radiobiology", "--total-gy", v, "--fractions", "5",
                                               "--alpha-beta", "2"], ["nan", "inf", "-1", "1e300", "0"]),
        ("radiobiology --fractions", lambda v: ["radiobiology", "--total-gy", "30", "--fractions", v,
                                                "--alpha-beta", "2"], ["0", "-1", "1000000000"]),
        ("radiobiology --alpha-beta", lambda v: ["radiobiology", "--total-gy", "30", "--fractions", "5",
                                                 "--alpha-beta", v], ["0", "-2", "nan", "inf", "1e-300"]),
        ("radiobiology --to-fractions", lambda v: ["radiobiology", "--total-gy", "30", "--fractions", "5",
                                                   "--alpha-beta", "2", "--to-fractions", v], ["0", "-3"]),
        ("phantom build --spacing-mm", lambda v: ["phantom", "build", "spec.toml", "--out", "o.h5", "--spacing-mm", v],
         ["nan", "inf", "0", "-1", "50", "0.1"]),
        ("phantom cohort --n", lambda v: ["phantom", "cohort", "--n", v, "--seed", "1", "--out", "coh"],
         ["0", "-1", "1000000000"]),
        ("phantom cohort --spacing-mm", lambda v: ["phantom", "cohort", "--n", "2", "--seed", "1", "--out", "coh",
                                                   "--spacing-mm", v], ["nan", "0", "50"]),
        ("sweep --cache-gb", lambda v: ["sweep", "sweep.toml", "--out", "sw", "--cache-gb", v, "--workers", "1"],
         ["nan", "inf", "-1", "1e300"]),
        ("sweep --workers", lambda v: ["sweep", "sweep.toml", "--out", "sw", "--workers", v], ["0", "-1", "100000"]),
        ("sweep --dask", lambda v: ["sweep", "sweep.toml", "--out", "sw", "--dask", v],
         ["tcp://127.0.0.1:9", "nonsense::addr"]),
        ("sweep plot --out", lambda v: ["sweep", "plot", "plans_sweep", "--x", "a", "--y", "b", "--out", v],
         ["x.xyz", "", "."]),
        ("teach --gradient-half-width-mm",
         lambda v: ["teach", "--plans", "plans", "--out", "t", "--gradient-half-width-mm", v],
         ["nan", "-1", "0", "1e9"]),
        ("teach --isodose-gy", lambda v: ["teach", "--plans", "plans", "--out", "t", "--isodose-gy", v],
         ["nan", "-5,10", "1e300", "x", ","]),
        ("import dicom --spacing-mm", lambda v: ["import", "dicom", "dicom", "--out", "i.h5", "--spacing-mm", v],
         ["nan", "inf", "0", "-2", "50", "0.01"]),
    ]


def gen_cli(rng: random.Random, assets: Path) -> Case:
    what, build, values = rng.choice(_cli_cases())
    value = rng.choice(values)

    def make(v):  # a negative value is written --option=VALUE (argparse reads "-5" as an option)
        argv = build(v)
        for i in range(len(argv) - 1):
            if argv[i].startswith("--") and argv[i + 1] == v and v.startswith("-"):
                return argv[:i] + [f"{argv[i]}={v}"] + argv[i + 2:]
        return argv

    def setup(wd: Path) -> None:
        _copy_phantom(assets, wd)
        for name in ("arcs.toml", "spec.toml", "sweep.toml"):
            shutil.copy(assets / name, wd / name)
        (wd / "bad_beam.json").write_text('{"name": 1, "mu_per_mm": "x"')
        if "plans" in " ".join(make(value)):
            shutil.copytree(assets / "plans", wd / "plans")
        if "dicom" in make(value)[:2]:
            shutil.copytree(assets / "dicom", wd / "dicom")
    return Case("CLI numeric options", f"{what} {value}", make(value), setup, impossible=True,
                protect=("phantom.h5", "arcs.toml", "spec.toml"), timeout_s=60)


# ---------------------------------------------------------------- HDF5 damage
def _h5_mutations():
    """name -> function(h5py.File) damaging an open phantom-layout group (root of a phantom file,
    /phantom of a plan file)."""
    def replace(f, name, data):
        attrs = dict(f[name].attrs) if name in f else {}
        if name in f:
            del f[name]
        ds = f.create_dataset(name, data=data)
        for k, v in attrs.items():
            ds.attrs[k] = v

    def density(f):
        return f["density"][...]
    return {
        "density of strings": lambda f: replace(f, "density", np.full(density(f).shape, "x", dtype="S1")),
        "density int8": lambda f: replace(f, "density", density(f).astype(np.int8)),
        "density all zero": lambda f: replace(f, "density", np.zeros_like(density(f))),
        "density NaN": lambda f: replace(f, "density", np.where(density(f) > 0.5, np.nan, density(f))),
        "density inf": lambda f: replace(f, "density", np.where(density(f) > 0.5, np.inf, density(f))),
        "density negative": lambda f: replace(f, "density", -density(f)),
        "density 1e30": lambda f: replace(f, "density", density(f) * np.float32(1e30)),
        "density rank 2": lambda f: replace(f, "density", density(f)[:, :, 0]),
        "density rank 4": lambda f: replace(f, "density", density(f)[..., None]),
        "density scalar": lambda f: replace(f, "density", 1.0),
        "density missing": lambda f: f.__delitem__("density"),
        "structures not a group": lambda f: (f.__delitem__("structures"), f.create_dataset("structures", data=1)),
        "structures missing": lambda f: f.__delitem__("structures"),
        "GTV missing": lambda f: f["structures"].__delitem__("GTV"),
        "GTV empty": lambda f: replace(f["structures"], "GTV", np.zeros(f["structures/GTV"].shape, bool)),
        "PTV empty": lambda f: replace(f["structures"], "PTV", np.zeros(f["structures/PTV"].shape, bool)),
        "Body empty": lambda f: replace(f["structures"], "Body", np.zeros(f["structures/Body"].shape, bool)),
        "GTV wrong shape": lambda f: replace(f["structures"], "GTV", np.ones((3, 3, 3), bool)),
        "GTV of floats": lambda f: replace(f["structures"], "GTV", f["structures/GTV"][...].astype(np.float64) * 0.5),
        "GTV order string": lambda f: f["structures/GTV"].attrs.__setitem__("order", "x"),
        "spacing string": lambda f: f.attrs.__setitem__("spacing_mm", "x"),
        "spacing scalar": lambda f: f.attrs.__setitem__("spacing_mm", 3.0),
        "spacing 50 mm": lambda f: f.attrs.__setitem__("spacing_mm", np.array([50.0, 50.0, 50.0])),
        "spacing 0.1 mm": lambda f: f.attrs.__setitem__("spacing_mm", np.array([0.1, 0.1, 0.1])),
        "spacing NaN": lambda f: f.attrs.__setitem__("spacing_mm", np.array([np.nan, 3.0, 3.0])),
        "spacing negative": lambda f: f.attrs.__setitem__("spacing_mm", np.array([-3.0, 3.0, 3.0])),
        "origin 1e300": lambda f: f.attrs.__setitem__("origin_mm", np.array([1e300, 0.0, 0.0])),
        "origin length 2": lambda f: f.attrs.__setitem__("origin_mm", np.array([0.0, 0.0])),
        "spacing missing": lambda f: f.attrs.__delitem__("spacing_mm"),
        "spec_json invalid": lambda f: f.attrs.__setitem__("spec_json", "{not json"),
        "spec_json a number": lambda f: f.attrs.__setitem__("spec_json", "5"),
        "spec_json not a string": lambda f: f.attrs.__setitem__("spec_json", np.arange(3)),
        "spec_json wrong fields": lambda f: f.attrs.__setitem__("spec_json", '{"name": 1}'),
        "spec_json deep": lambda f: f.attrs.__setitem__("spec_json", "[" * 100000 + "]" * 100000),
        "spec_json missing": lambda f: f.attrs.__delitem__("spec_json"),
    }


def _root_mutations():
    return {
        "schema_version string": lambda f: f.attrs.__setitem__("schema_version", "one"),
        "schema_version float": lambda f: f.attrs.__setitem__("schema_version", 1.5),
        "schema_version array": lambda f: f.attrs.__setitem__("schema_version", np.array([1, 2])),
        "schema_version 99": lambda f: f.attrs.__setitem__("schema_version", 99),
        "schema_version 0": lambda f: f.attrs.__setitem__("schema_version", 0),
        "schema_version missing": lambda f: f.attrs.__delitem__("schema_version"),
        "kind array": lambda f: f.attrs.__setitem__("kind", np.array([1, 2])),
        "kind wrong": lambda f: f.attrs.__setitem__("kind", "influence"),
    }


def _plan_mutations():
    def replace(group, name, data, **kw):
        del group[name]
        group.create_dataset(name, data=data, **kw)
    return {
        "mode missing": lambda f: f.attrs.__delitem__("mode"),
        "mode bogus": lambda f: f.attrs.__setitem__("mode", "bogus"),
        "metrics_json invalid": lambda f: f.attrs.__setitem__("metrics_json", "{"),
        "metrics_json a list": lambda f: f.attrs.__setitem__("metrics_json", "[1, 2]"),
        "metrics_json not a string": lambda f: f.attrs.__setitem__("metrics_json", np.arange(2)),
        "summary_json invalid": lambda f: f.attrs.__setitem__("summary_json", "nope"),
        "summary_json a number": lambda f: f.attrs.__setitem__("summary_json", "7"),
        "settings_json invalid": lambda f: f.attrs.__setitem__("settings_json", "{"),
        "arcs_json invalid": lambda f: f.attrs.__setitem__("arcs_json", "{]"),
        "arcs_json a list": lambda f: f.attrs.__setitem__("arcs_json", "[]"),
        "feasible missing": lambda f: f.attrs.__delitem__("feasible"),
        "evaluation value missing": lambda f: f["evaluation"].__delitem__("value"),
        "evaluation not a group": lambda f: (f.__delitem__("evaluation"), f.create_dataset("evaluation", data=1)),
        "evaluation value strings": lambda f: replace(f["evaluation"], "value",
                                                      np.array(["x"] * len(f["evaluation/value"]), "S1")),
        "evaluation short": lambda f: replace(f["evaluation"], "value", f["evaluation/value"][:1]),
        "evaluation protocol_json invalid": lambda f: f["evaluation"].attrs.__setitem__("protocol_json", "{"),
        "weights rank 2": lambda f: replace(f["plan"], "weights_mu", f["plan/weights_mu"][...][:, None]),
        "weights strings": lambda f: replace(f["plan"], "weights_mu", np.array(["x"] * 3, "S1")),
        "weights NaN": lambda f: replace(f["plan"], "weights_mu", f["plan/weights_mu"][...] * np.nan),
        "weights negative": lambda f: replace(f["plan"], "weights_mu", -f["plan/weights_mu"][...] - 1),
        "weights missing": lambda f: f["plan"].__delitem__("weights_mu"),
        "beamlet_k wrong length": lambda f: replace(f["plan"], "beamlet_k", f["plan/beamlet_k"][:3]),
        "dose negative": lambda f: replace(f, "dose", -np.abs(f["dose"][...]) - 1.0),
        "dose NaN": lambda f: replace(f, "dose", f["dose"][...] * np.nan),
        "dose inf": lambda f: replace(f, "dose", f["dose"][...] + np.inf),
        "dose wrong shape": lambda f: replace(f, "dose", f["dose"][...][:-1]),
        "dose of strings": lambda f: replace(f, "dose", np.full(f["dose"].shape, "x", "S1")),
        "dose missing": lambda f: f.__delitem__("dose"),
        "dose 1e30": lambda f: replace(f, "dose", f["dose"][...] * np.float32(1e30)),
        "phantom group missing": lambda f: f.__delitem__("phantom"),
        "phantom not a group": lambda f: (f.__delitem__("phantom"), f.create_dataset("phantom", data=1)),
    }


HARMLESS = {"GTV order string"}  # damage the reader may tolerate (a documented default applies)


def _damage_h5(src: Path, dst: Path, fn, group: str | None) -> None:
    import h5py

    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        fn(f[group] if group else f)


def _truncate(rng, src: Path, dst: Path) -> str:
    data = src.read_bytes()
    if rng.random() < 0.5:
        dst.write_bytes(data[: rng.randrange(8, len(data))])
        return "truncated"
    dst.write_bytes(_byte_flips(rng, data, rng.randrange(1, 50)))
    return "byte flips"


PHANTOM_COMMANDS = {
    "phantom info": lambda p: ["phantom", "info", p],
    "phantom info --json": lambda p: ["phantom", "info", p, "--json"],
    "phantom show": lambda p: ["phantom", "show", p, "--out", "show.png"],
    "plan": lambda p: _plan_argv(phantom=p),
    "export dicom": lambda p: ["export", "dicom", p, "--out", "exported"],
    "dose compute": lambda p: ["dose", "compute", p, "--arcs", "arcs.toml", "--out", "inf.h5",
                               "--body-margin-mm", "10", "--structure-margin-mm", "10"],
}
PLAN_COMMANDS = {
    "export dicom": lambda p: ["export", "dicom", p, "--out", "exported"],
    "teach --plans": lambda p: ["teach", "--plans", "plans", "--out", "lesson"],
}


def gen_h5(rng: random.Random, assets: Path) -> Case:
    target = rng.choice(["phantom", "phantom", "plan"])
    r = rng.random()
    if target == "phantom":
        muts = {**_h5_mutations(), **_root_mutations()}
        command = rng.choice(sorted(PHANTOM_COMMANDS))
        argv = PHANTOM_COMMANDS[command]("case.h5")
    else:
        muts = {**{f"/phantom {k}": v for k, v in _h5_mutations().items()}, **_root_mutations(),
                **_plan_mutations()}
        command = rng.choice(sorted(PLAN_COMMANDS))
        argv = PLAN_COMMANDS[command]("plans/sib.h5" if command == "teach --plans" else "case.h5")
    raw = r < 0.15
    name = rng.choice(sorted(muts))
    impossible = not raw and name.removeprefix("/phantom ") not in HARMLESS

    def setup(wd: Path) -> None:
        shutil.copy(assets / "arcs.toml", wd / "arcs.toml")
        if target == "plan":
            shutil.copytree(assets / "plans", wd / "plans")
        src = assets / ("phantom.h5" if target == "phantom" else "plans/sib.h5")
        dst = wd / ("plans/sib.h5" if command == "teach --plans" else "case.h5")
        if raw:
            _truncate(random.Random(zlib.crc32(name.encode()) ^ 12345), src, dst)
            return
        fn = muts[name]
        group = "phantom" if name.startswith("/phantom ") else None
        _damage_h5(src, dst, fn, group)
    what = f"{target} {'damaged bytes' if raw else name} -> {command}"
    validate = {"plan": validate_plan_out("plan.h5"), "export dicom": validate_dicom_out("exported"),
                "dose compute": validate_influence_out("inf.h5")}.get(command, validate_text)
    protect = ("arcs.toml",) + (("plans/uniform.h5", "plans/dvh.png") if target == "plan" else ())
    return Case(f"{target} HDF5", what, argv, setup, impossible=impossible, validate=validate, protect=protect,
                timeout_s=90)


# ---------------------------------------------------------------- DICOM damage
def _dicom_mutations():
    import pydicom

    def cts(folder):
        return sorted(folder.glob("CT_*.dcm"))

    def rs(folder):
        return folder / "RS.dcm"

    def edit(path, fn):
        ds = pydicom.dcmread(str(path))
        fn(ds)
        ds.save_as(str(path))

    def each_ct(folder, fn, every=1, start=0):
        for n, p in enumerate(cts(folder)):
            if n >= start and (n - start) % every == 0:
                edit(p, lambda ds: fn(ds, n))

    def set_raw(ds, keyword, value):
        from pydicom.dataelem import DataElement
        tag = pydicom.datadict.tag_for_keyword(keyword)
        ds[tag] = DataElement(tag, "LO", value)

    def roi_seq(ds):
        return ds.StructureSetROISequence

    def contour_nan(ds):
        c = ds.ROIContourSequence[0].ContourSequence[0]
        data = [str(v) for v in c.ContourData]
        data[0] = "NaN"
        c.ContourData = data

    def name_of(ds, target):
        for item in ds.StructureSetROISequence:
            if item.ROIName == target:
                return item
        raise KeyError(target)
    return {
        "first slice deleted": lambda d: cts(d)[0].unlink(),
        "last slice deleted": lambda d: cts(d)[-1].unlink(),
        "middle slice deleted": lambda d: cts(d)[len(cts(d)) // 2].unlink(),
        "half the slices in another series": lambda d: each_ct(
            d, lambda ds, n: setattr(ds, "SeriesInstanceUID", ds.SeriesInstanceUID + ".9"), every=2),
        "another frame of reference on one slice": lambda d: edit(
            cts(d)[3], lambda ds: setattr(ds, "FrameOfReferenceUID", ds.FrameOfReferenceUID + ".9")),
        "slice spacing jittered": lambda d: each_ct(
            d, lambda ds, n: setattr(ds, "ImagePositionPatient",
                                     [*ds.ImagePositionPatient[:2], float(ds.ImagePositionPatient[2]) + 0.3 * (n % 3)])),
        "duplicate slice position": lambda d: edit(
            cts(d)[4], lambda ds: setattr(ds, "ImagePositionPatient", pydicom.dcmread(str(cts(d)[5])).ImagePositionPatient)),
        "RescaleSlope 1000": lambda d: each_ct(d, lambda ds, n: setattr(ds, "RescaleSlope", 1000)),
        "RescaleSlope 0": lambda d: each_ct(d, lambda ds, n: setattr(ds, "RescaleSlope", 0)),
        "RescaleIntercept non-numeric": lambda d: edit(cts(d)[2], lambda ds: set_raw(ds, "RescaleIntercept", "abc")),
        "RescaleIntercept 1e30": lambda d: each_ct(d, lambda ds, n: setattr(ds, "RescaleIntercept", "1e30")),
        "PixelSpacing 0.1": lambda d: each_ct(d, lambda ds, n: setattr(ds, "PixelSpacing", [0.1, 0.1])),
        "PixelSpacing 500": lambda d: each_ct(d, lambda ds, n: setattr(ds, "PixelSpacing", [500, 500])),
        "PixelSpacing non-numeric": lambda d: each_ct(d, lambda ds, n: set_raw(ds, "PixelSpacing", "a\\b")),
        "PixelSpacing negative": lambda d: each_ct(d, lambda ds, n: setattr(ds, "PixelSpacing", [-3, 3])),
        "ImagePositionPatient NaN": lambda d: edit(cts(d)[1], lambda ds: set_raw(ds, "ImagePositionPatient", "nan\\0\\0")),
        "Rows wrong on one slice": lambda d: edit(cts(d)[2], lambda ds: setattr(ds, "Rows", int(ds.Rows) - 1)),
        "two ROIs named GTV": lambda d: edit(rs(d), lambda ds: setattr(name_of(ds, "CTV"), "ROIName", "GTV")),
        "ROI names differing only in case": lambda d: edit(rs(d), lambda ds: setattr(name_of(ds, "CTV"), "ROIName", "gtv")),
        "ROINumber non-numeric": lambda d: edit(rs(d), lambda ds: set_raw(roi_seq(ds)[0], "ROINumber", "x")),
        "ROINumber missing": lambda d: edit(rs(d), lambda ds: delattr(roi_seq(ds)[0], "ROINumber")),
        "ROINumber duplicated": lambda d: edit(rs(d), lambda ds: setattr(roi_seq(ds)[1], "ROINumber", roi_seq(ds)[0].ROINumber)),
        "NaN contour point": lambda d: edit(rs(d), contour_nan),
        "contour 1e30 point": lambda d: edit(rs(d), lambda ds: setattr(
            ds.ROIContourSequence[0].ContourSequence[0], "ContourData",
            ["1e30"] + [str(v) for v in ds.ROIContourSequence[0].ContourSequence[0].ContourData[1:]])),
        "RTSTRUCT truncated": lambda d: rs(d).write_bytes(rs(d).read_bytes()[: len(rs(d).read_bytes()) // 2]),
        "CT slice truncated": lambda d: cts(d)[3].write_bytes(cts(d)[3].read_bytes()[:2000]),
        "CT pixel data truncated": lambda d: cts(d)[3].write_bytes(cts(d)[3].read_bytes()[:-5000]),
        "RTSTRUCT deleted": lambda d: rs(d).unlink(),
        "two RTSTRUCTs": lambda d: shutil.copy(rs(d), d / "RS2.dcm"),
        "RTSTRUCT other frame of reference": lambda d: edit(rs(d), lambda ds: setattr(
            ds.ReferencedFrameOfReferenceSequence[0], "FrameOfReferenceUID", "1.2.3.4")),
        "empty folder": lambda d: [p.unlink() for p in d.iterdir()],
        "CT orientation oblique": lambda d: each_ct(d, lambda ds, n: setattr(ds, "ImageOrientationPatient",
                                                                              [1, 0, 0, 0, 0.9, 0.1])),
    }


def gen_dicom(rng: random.Random, assets: Path) -> Case:
    muts = _dicom_mutations()
    raw = rng.random() < 0.12
    name = rng.choice(sorted(muts))

    def setup(wd: Path) -> None:
        shutil.copytree(assets / "dicom", wd / "dicom")
        for extra in ("RD.dcm", "RP.dcm"):
            (wd / "dicom" / extra).unlink(missing_ok=True)
        if raw:
            files = sorted((wd / "dicom").glob("*.dcm"))
            victim = random.Random(len(name)).choice(files)
            _truncate(random.Random(len(name) * 7), victim, victim)
        else:
            muts[name](wd / "dicom")
    what = "damaged bytes" if raw else name
    return Case("DICOM folder", what, ["import", "dicom", "dicom", "--out", "imported.h5"], setup,
                impossible=not raw, validate=validate_phantom_out("imported.h5"), timeout_s=60)


# ---------------------------------------------------------------- outputs onto inputs
def gen_overwrite(rng: random.Random, assets: Path) -> Case:
    options = [
        ("plan --out = its phantom", _plan_argv(phantom="phantom.h5", out="phantom.h5"), ("phantom.h5",)),
        ("plan --out = the arcs file", ["plan", "phantom.h5", "--mode", "uniform", "--arcs", "arcs.toml", "--out",
                                        "./arcs.toml", "--search-steps", "0"], ("arcs.toml", "phantom.h5")),
        ("phantom build --out = its spec", ["phantom", "build", "spec.toml", "--out", "spec.toml"], ("spec.toml",)),
        ("phantom build --out = its spec (other spelling)", ["phantom", "build", "spec.toml", "--out", "./sub/../spec.toml"],
         ("spec.toml",)),
        ("phantom show --out = the phantom", ["phantom", "show", "phantom.h5", "--out", "phantom.h5"], ("phantom.h5",)),
        ("teach --plans DIR --out DIR", ["teach", "--plans", "plans", "--out", "plans"],
         ("plans/dvh.png", "plans/sib.h5", "plans/uniform.h5", "plans/comparison.csv")),
        ("export dicom --out = the plan file", ["export", "dicom", "plans/sib.h5", "--out", "plans/sib.h5"],
         ("plans/sib.h5",)),
        ("import dicom --out = a DICOM file", ["import", "dicom", "dicom", "--out", "dicom/RS.dcm"], ("dicom/RS.dcm",)),
        ("dose compute --out = its phantom", ["dose", "compute", "phantom.h5", "--arcs", "arcs.toml", "--out",
                                              "phantom.h5"], ("phantom.h5",)),
        ("plan --out an existing directory", _plan_argv(out="plans"), ("plans/sib.h5",)),
        ("plan --out empty", _plan_argv(out=""), ("phantom.h5",)),
        ("plan --out in a folder that cannot be created", _plan_argv(out="/proc/simsbrt_fuzz/plan.h5"), ("phantom.h5",)),
        ("compare --out = a file", ["compare", "phantom.h5", "--arcs", "arcs.toml", "--out", "phantom.h5",
                                    "--search-steps", "0"], ("phantom.h5",)),
        ("sweep plot --out = results.csv", ["sweep", "plot", "plans", "--x", "a", "--y", "b", "--out",
                                            "plans/comparison.csv"], ("plans/comparison.csv",)),
    ]
    what, argv, protect = rng.choice(options)

    def setup(wd: Path) -> None:
        _copy_phantom(assets, wd)
        for name in ("arcs.toml", "spec.toml"):
            shutil.copy(assets / name, wd / name)
        shutil.copytree(assets / "plans", wd / "plans")
        shutil.copytree(assets / "dicom", wd / "dicom")
        (wd / "sub").mkdir()
        ro = wd / "ro"
        ro.mkdir()
        ro.chmod(0o555)
    return Case("outputs onto inputs", what, argv, setup, impossible=True, protect=protect, timeout_s=60)


FAMILIES = {
    "phantom spec TOML": gen_phantom_spec,
    "arcs TOML": gen_arcs,
    "sweep TOML": gen_sweep,
    "protocol TOML": gen_protocol,
    "DICOM name map TOML": gen_names,
    "CLI numeric options": gen_cli,
    "HDF5 files": gen_h5,
    "DICOM folders": gen_dicom,
    "outputs onto inputs": gen_overwrite,
}


def make_cases(n: int, seed: int, assets: Path, families=None) -> list[Case]:
    """n cases drawn round-robin over the families, reproducibly from seed."""
    rng = random.Random(seed)
    names = list(families or FAMILIES)
    return [FAMILIES[names[i % len(names)]](rng, assets) for i in range(n)]
