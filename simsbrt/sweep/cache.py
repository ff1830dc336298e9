"""Influence-matrix cache of a sweep: runs that share geometry and arcs share one matrix.

Key: SHA-256 of the canonical JSON of everything that determines the matrix: the resolved phantom
spec (every field, after the gap derivation), the arcs and beamlet settings, the influence options
and row margins, the beam model parameters (simsbrt/dose/data/beam_6mv.json as loaded), the dose
backend and the simsbrt version.

In memory: the runner gives all runs of one key to one worker, which computes the matrix once.
On disk (DIR/cache/<key>.h5, simsbrt.io.influence_h5 plus the column map of identical columns):
a resumed or extended sweep reads the matrix instead of recomputing it. Files are written
atomically; the cache stops storing when it would exceed its size cap (default 8 GiB; a 2 mm
t10 matrix is about 1-3 GB on disk) and can be turned off (--no-cache).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path


import simsbrt
from simsbrt.sweep.points import short_hash

log = logging.getLogger(__name__)

DEFAULT_CACHE_MAX_BYTES = 8 * 2**30
CACHE_DIR = "cache"
KEY_LENGTH = 24


def influence_key(phantom_doc: dict, arcs_doc: dict, influence_doc: dict, backend_name: str) -> str:
    from simsbrt.dose.machine import load_beam_model

    return short_hash({"phantom": phantom_doc, "arcs": arcs_doc, "influence": influence_doc,
                       "beam": load_beam_model().to_dict(), "backend": backend_name,
                       "simsbrt_version": simsbrt.__version__}, KEY_LENGTH)


@dataclass(frozen=True)
class DiskCache:
    """DIR/cache/<key>.h5; enabled False = never read or written."""

    directory: Path
    enabled: bool = True
    max_bytes: int = DEFAULT_CACHE_MAX_BYTES

    def path(self, key: str) -> Path:
        return Path(self.directory) / f"{key}.h5"

    def used_bytes(self) -> int:
        d = Path(self.directory)
        return sum(p.stat().st_size for p in d.glob("*.h5")) if d.is_dir() else 0

    def load(self, key: str):
        """The cached InfluenceMatrix (with its column map), or None."""
        from simsbrt.io.influence_h5 import read_influence

        path = self.path(key)
        if not self.enabled or not path.is_file():
            return None
        try:
            return read_influence(path)
        except (OSError, KeyError, simsbrt.SimsbrtError) as exc:
            log.warning("influence cache %s unreadable (%s); recomputing", path, exc)
            return None

    def store(self, key: str, influence, force: bool = False) -> bool:
        """Write the matrix (atomically, simsbrt.io.influence_h5) unless disabled or, without force, over the
        size cap; True if stored. force: split groups need the file now, whatever the cap."""
        from simsbrt.io.influence_h5 import write_influence

        if not self.enabled:
            return False
        if not force and self.used_bytes() + influence.nbytes > self.max_bytes:
            log.info("influence cache full (%d bytes cap); %s not stored", self.max_bytes, key)
            return False
        write_influence(self.path(key), influence, input_spec={"sweep_cache_key": key})
        return True


def plan_inputs_for(phantom, arc_set, influence_doc: dict, backend, key: str, memory: dict, disk: DiskCache,
                    force_store: bool = False):
    """PlanInputs of a phantom and arcs: from the in-memory cache, the disk cache, or computed (and stored).
    Returns (inputs, source in 'memory' | 'disk' | 'computed', seconds spent)."""
    from simsbrt.dose.engine import InfluenceOptions
    from simsbrt.optimize.plans import PlanInputs, prepare_plan_inputs

    if key in memory:
        return memory[key], "memory", 0.0
    t0 = time.perf_counter()
    influence = disk.load(key)
    if influence is not None:
        inputs = PlanInputs(phantom, arc_set, influence, backend, {"geometry_s": 0.0, "dose_s": 0.0})
        source = "disk"
    else:
        options = {k: v for k, v in influence_doc.items() if k not in ("body_margin_mm", "structure_margin_mm")}
        inputs = prepare_plan_inputs(phantom, arc_set, backend, InfluenceOptions(**options),
                                     body_margin_mm=influence_doc["body_margin_mm"],
                                     structure_margin_mm=influence_doc["structure_margin_mm"])
        source = "computed"
        disk.store(key, inputs.influence, force=force_store)
    memory.clear()                      # one matrix in memory per worker (2 mm matrices are GBs)
    memory[key] = inputs
    return inputs, source, time.perf_counter() - t0
