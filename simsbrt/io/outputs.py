"""Output paths checked before any work: never an input, never a folder that cannot be written.

check_output_file: an output FILE must not resolve to one of the command's inputs (a phantom, spec,
arcs or plan file, or a file inside an input folder), must not be an existing folder, must carry
one of the expected suffixes, and its folder (or the nearest existing parent, which the atomic
writer will extend) must be writable.
check_output_dir: an output FOLDER must not be a file, must not be an input folder, must not hold an
input under a name the command writes, and must be writable (or creatable). Nothing is created.
"""
from __future__ import annotations

import os
from pathlib import Path

from simsbrt.errors import SpecError


def _resolved(path) -> Path:
    return Path(os.path.abspath(os.path.realpath(path)))


def _existing_inputs(inputs) -> list[Path]:
    return [_resolved(p) for p in inputs if p is not None and str(p) != "" and Path(p).exists()]


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists():
        if p.parent == p:
            break
        p = p.parent
    return p


def _check_writable(folder: Path, field: str, what: Path) -> None:
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise SpecError(field, f"cannot create {what}: {base} is not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise SpecError(field, f"cannot write {what}: {base} is not writable")
    if base != folder and not _creatable(base):
        raise SpecError(field, f"cannot create {what}: {base} does not allow new folders")


def _creatable(base: Path) -> bool:
    """Whether a folder can be made in base (some file systems, e.g. /proc, refuse though writable)."""
    try:
        probe = base / f".simsbrt-probe-{os.getpid()}"
        probe.mkdir()
        probe.rmdir()
        return True
    except OSError:
        return False


def check_output_file(out, inputs=(), field: str = "out", suffixes: tuple = (), input_dirs=()) -> Path:
    """The output file as a Path, or a SpecError before any work (see module doc)."""
    if out is None or str(out).strip() == "":
        raise SpecError(field, "is empty; give an output file")
    out = Path(out)
    if suffixes and out.suffix.lower() not in suffixes:
        raise SpecError(field, f"needs one of the suffixes {', '.join(suffixes)}, got {out}")
    if out.is_dir():
        raise SpecError(field, f"{out} is an existing folder; give a file name")
    target = _resolved(out)
    for inp in _existing_inputs(inputs):
        if target == inp:
            raise SpecError(field, f"{out} would overwrite the input {inp}; choose another output file")
    for folder in _existing_inputs(input_dirs):
        if folder == target or folder in target.parents:
            raise SpecError(field, f"{out} lies in the input folder {folder}; choose another output file")
    _check_writable(target.parent, field, out)
    return out


def check_output_dir(out, inputs=(), field: str = "out", writes: tuple = (), input_dirs=()) -> Path:
    """The output folder as a Path, or a SpecError before any work (see module doc).
    writes: the file names the command writes into it; input_dirs: folders the command reads."""
    if out is None or str(out).strip() == "":
        raise SpecError(field, "is empty; give an output folder")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpecError(field, f"{out} exists and is not a folder")
    target = _resolved(out)
    for folder in input_dirs:
        if folder is not None and Path(folder).exists() and _resolved(folder) == target:
            raise SpecError(field, f"{out} is also the input folder; its files would be overwritten: "
                                   f"choose another output folder")
    for inp in _existing_inputs(inputs):
        if inp == target or (inp.parent == target and inp.name in writes):
            raise SpecError(field, f"{out} would overwrite the input {inp}; choose another output folder")
    _check_writable(target, field, out)
    return out
