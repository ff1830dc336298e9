"""Phantom specs matched to the trial cohort (sib-protocol.md, Table 2; 28 vertebral segments).

Table 2: levels cervical 1 / thoracic 11 / lumbar 10 / sacrum 6; GTV median 9.5 cm3 (1.1-183.4);
lytic 5 / mixed 16 / blastic 7; Bilsky (n = 22): 0: 7, 1a: 12, 1b: 0, 1c: 3.
Choices made here (documented assumptions):
  * The 6 cases without a Bilsky score are taken to be the 6 sacral ones (22 + 6 = 28; there is
    no cord at the sacrum) and get Bilsky 0, said so in their description.
  * GTV volumes: log-normal with median 9.5 cm3 and sigma 1.2 (ln units; with 28 cases the
    extremes then fall near the reported 1.1 and ~80-180 cm3), sampled by stratified (Latin
    hypercube) quantiles so the cohort median stays near 9.5 for every seed, clipped to 1.1-183 cm3.
  * Larger GTVs tend to go to larger bones: volumes are matched to regions by a noisy ranking on
    log region capacity (cervical < thoracic < lumbar < sacral).
  * Each case starts as a vertebral-body GTV and escalates (body + pedicle, all sectors, adjacent
    levels, paraspinal extension) only as far as its volume needs; every spec is checked by
    building it, so every written spec builds.
  * For n != 28 the counts are scaled by largest remainder.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.special import ndtri   # the standard normal quantile (scipy.stats.norm.ppf, without importing scipy.stats)

from simsbrt.errors import SpecError
from simsbrt.io.atomic import write_text_atomic
from simsbrt.phantom.levels import LEVEL_NAMES, LEVELS, level_index
from simsbrt.phantom.spec import PhantomSpec, parse_spec

TRIAL_N = 28
REGION_COUNTS = {"cervical": 1, "thoracic": 11, "lumbar": 10, "sacral": 6}
LESION_COUNTS = {"lytic": 5, "mixed": 16, "blastic": 7}
BILSKY_COUNTS = {"0": 7, "1a": 12, "1b": 0, "1c": 3}      # of the 22 scored (non-sacral) cases
GTV_MEDIAN_CC = 9.5
GTV_SIGMA_LN = 1.2
GTV_CLIP_CC = (1.1, 183.0)
REGION_LEVELS = {
    "cervical": ("C3", "C4", "C5", "C6", "C7"),
    "thoracic": tuple(f"T{i}" for i in range(1, 13)),
    "lumbar": ("L1", "L2", "L3", "L4", "L5"),
    "sacral": ("S1", "S2", "S3"),
}
REGION_CAPACITY_CC = {"cervical": 3.0, "thoracic": 15.0, "lumbar": 30.0, "sacral": 60.0}
EXTRAOSSEOUS_STEPS_MM = (10.0, 20.0, 30.0)


def scaled_counts(counts: dict, n: int) -> dict:
    """Scale integer counts to a total of n by largest remainder (exact for n = sum(counts))."""
    total = sum(counts.values())
    if total == 0 or n == 0:
        return {k: 0 for k in counts}
    raw = {k: v * n / total for k, v in counts.items()}
    out = {k: int(np.floor(v)) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: (-(raw[k] - out[k]), list(counts).index(k)))[: n - sum(out.values())]:
        out[k] += 1
    return out


def _expand(counts: dict) -> list:
    return [k for k, v in counts.items() for _ in range(v)]


def _gtv_volumes(rng, n: int) -> np.ndarray:
    u = (np.arange(n) + rng.uniform(size=n)) / n
    vols = GTV_MEDIAN_CC * np.exp(GTV_SIGMA_LN * ndtri(u))
    return np.round(np.clip(vols, *GTV_CLIP_CC), 2)


def _escalation(region: str, level: str, side: str):
    """GTV plans from the simplest (vertebral body only) to the largest (adjacent levels + soft tissue).
    Every listed sector must be reached by the GTV, so plans add sectors one group at a time."""
    other = "right" if side == "left" else "left"
    if region == "sacral":
        sectors = (["sacral_body"], ["sacral_body", f"{side}_ala"], ["sacral_body", "left_ala", "right_ala"],
                   ["sacral_body", "left_ala", "right_ala", "sacral_lamina"])
        multi = (["sacral_body"], ["sacral_body", "left_ala", "right_ala"])
        allowed = ("S1", "S2", "S3", "S4", "S5")
    else:
        sectors = (["vertebral_body"], ["vertebral_body", f"{side}_pedicle"],
                   ["vertebral_body", f"{side}_pedicle", f"{side}_lamina"],
                   ["vertebral_body", f"{side}_pedicle", f"{other}_pedicle"],
                   ["vertebral_body", "left_pedicle", "right_pedicle", "left_lamina", "right_lamina"],
                   ["vertebral_body", "left_pedicle", "left_lamina", "spinous_process", "right_lamina",
                    "right_pedicle"])
        multi = (["vertebral_body"], ["vertebral_body", "left_pedicle", "right_pedicle"])
        allowed = tuple(n for n in LEVEL_NAMES if LEVELS[n].region != "sacral")
    for s in sectors:
        yield {"sectors": s}
    i = level_index(level)
    adjacent = [n for n in LEVEL_NAMES[max(0, i - 1): i + 2] if n in allowed]
    for s in multi:
        yield {"sectors": s, "levels": adjacent}
    for mm in EXTRAOSSEOUS_STEPS_MM:
        for s in multi:
            yield {"sectors": s, "levels": adjacent, "extraosseous_mm": mm}


def _feasible(spec_dict: dict, errors: list) -> PhantomSpec | None:
    from simsbrt.phantom.model import build_phantom
    spec = parse_spec(spec_dict)
    try:
        build_phantom(spec)
    except SpecError as exc:
        if exc.field.startswith(("gtv", "anatomy")):
            errors.append(str(exc))
            return None
        raise
    return spec


def generate_cohort(n: int = TRIAL_N, seed: int = 0, spacing_mm: float = 2.0) -> list[PhantomSpec]:
    """n phantom specs matched to the trial's Table 2; deterministic for a given (n, seed, spacing)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n > 500:
        raise SpecError("cohort.n", f"must be an integer from 1 to 500, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SpecError("cohort.seed", f"must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(seed)
    regions = _expand(scaled_counts(REGION_COUNTS, n))
    volumes = np.sort(_gtv_volumes(rng, n))
    # noisy ranking: bigger GTVs tend to go to bigger bones
    keys = np.array([np.log(REGION_CAPACITY_CC[r]) for r in regions]) + rng.normal(0.0, 0.8, size=n)
    regions = [regions[i] for i in np.argsort(keys, kind="stable")]
    lesions = _expand(scaled_counts(LESION_COUNTS, n))
    rng.shuffle(lesions)
    n_scored = sum(r != "sacral" for r in regions)
    bilsky = _expand(scaled_counts(BILSKY_COUNTS, n_scored))
    rng.shuffle(bilsky)
    order = rng.permutation(n)            # case numbering independent of the volume ranking
    specs: list[PhantomSpec | None] = [None] * n
    scored = iter(bilsky)
    for rank in range(n):
        case = int(order[rank])
        region = regions[rank]
        level = str(rng.choice(REGION_LEVELS[region]))
        side = str(rng.choice(["left", "right"]))
        grade = next(scored) if region != "sacral" else "0"
        note = "Bilsky not scored in the trial (sacral case); set to 0" if region == "sacral" else f"Bilsky {grade}"
        base = {
            "name": f"cohort_s{seed}_{case + 1:02d}_{level.lower()}",
            "description": f"cohort case {case + 1} of {n} (seed {seed}), {region}; {note}",
            "seed": int(rng.integers(0, 2**31 - 1)),
            "anatomy": {"level": level},
            "grid": {"spacing_mm": float(spacing_mm)},
            "gtv": {"volume_cc": float(volumes[rank]), "shape": str(rng.choice(["ellipsoid", "lobulated"])),
                    "bilsky": grade, "lesion_type": lesions[case]},
        }
        errors: list[str] = []
        shapes = (base["gtv"]["shape"], "ellipsoid") if base["gtv"]["shape"] != "ellipsoid" else ("ellipsoid",)
        candidates = ({**base, "gtv": {**base["gtv"], **plan, "shape": shape}}
                      for plan in _escalation(region, level, side) for shape in shapes)
        for candidate in candidates:
            spec = _feasible(candidate, errors)
            if spec is not None:
                specs[case] = spec
                break
        else:
            raise SpecError("cohort", f"case {case + 1}: no GTV plan fits {volumes[rank]:g} cm3 at {level} "
                                      f"(last: {errors[-1] if errors else '-'})")
    return specs  # type: ignore[return-value]


# ---------------------------------------------------------------- TOML output
def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def spec_to_toml(spec: PhantomSpec) -> str:
    data = spec.to_dict()
    lines = []
    tables = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, table in tables:
        lines.append(f"\n[{key}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


def write_cohort(specs, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in specs:
        path = out_dir / f"{spec.name}.toml"
        write_text_atomic(path, spec_to_toml(spec))
        paths.append(path)
    return paths
