"""Run one fuzz case through the real ``simsbrt`` entry point in a child process and classify it.

A child is forked from a parent that has already imported simsbrt (and, when warmed, compiled its
kernels): the child calls ``simsbrt.cli.main(argv)`` exactly as the console script does, with its
stdout / stderr in files, in its own process group, under a wall-clock limit. An exception that
escapes ``main`` is printed as the interpreter prints it (a traceback) and exits 1, as the console
script would. ``--subprocess`` mode (benchmarks/fuzz.py) runs ``python -m simsbrt.cli`` instead.

Outcomes (OUTCOMES): a case passes when it is a clean error (exit != 0, exactly one stderr line
starting ``simsbrt: error:``, no traceback) or a validated success (exit 0 and every output reads
back through the checked readers); it fails as a traceback, a hang (killed at the limit), an
impossible input accepted (exit 0 although the case is physically impossible, or an output that
fails validation) or a damaged input (a pre-existing file changed or deleted).
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

CLEAN_ERROR = "clean error"
SUCCESS = "success, validated"
TRACEBACK = "traceback"
HANG = "hang"
ACCEPTED = "impossible input accepted"
DAMAGED = "pre-existing file changed/deleted"
UNCLEAN = "error, not one clean line"
OUTCOMES = (CLEAN_ERROR, SUCCESS, TRACEBACK, HANG, ACCEPTED, DAMAGED, UNCLEAN)
FAILURES = (TRACEBACK, HANG, ACCEPTED, DAMAGED, UNCLEAN)
ERROR_PREFIX = "simsbrt: error:"


@dataclass
class Case:
    """One mutated input and the command that reads it.

    setup(workdir) writes the case's files and returns nothing; argv is the simsbrt command line
    (paths relative to workdir); impossible: exit 0 would be silently accepting an impossible input;
    validate(workdir, stdout) raises when an output of a successful run does not read back cleanly;
    protect: files (relative to workdir) that must be byte-identical afterwards."""

    family: str
    name: str
    argv: list
    setup: Callable[[Path], None]
    impossible: bool = True
    validate: Callable[[Path, str], None] | None = None
    protect: tuple = ()
    timeout_s: float = 60.0
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    case: Case
    kind: str
    returncode: int | None
    stderr: str
    seconds: float
    detail: str = ""


def _digest(path: Path) -> str | None:
    if not path.exists():
        return None
    if path.is_dir():
        return "dir"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _child(argv: list, workdir: Path, out_path: Path, err_path: Path) -> None:
    """In the forked child: run simsbrt.cli.main like the console script; never returns."""
    code = 1
    try:
        os.setpgid(0, 0)
        os.chdir(workdir)
        out_fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err_fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        sys.argv = ["simsbrt", *argv]
        from simsbrt.cli import main

        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # what the interpreter does with an uncaught exception
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(int(code or 0) & 0xFF)


def run_forked(argv: list, workdir: Path, timeout_s: float) -> tuple[int | None, str, str, float]:
    """(returncode or None on timeout, stdout, stderr, seconds) of simsbrt argv in a forked child."""
    out_path, err_path = workdir / ".fuzz_stdout", workdir / ".fuzz_stderr"
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(argv, workdir, out_path, err_path)
    code = None
    while time.monotonic() - t0 < timeout_s:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        time.sleep(0.01)
    if code is None:
        _kill_group(pid)
        os.waitpid(pid, 0)
    seconds = time.monotonic() - t0
    read = lambda p: p.read_text(errors="replace") if p.exists() else ""  # noqa: E731
    out, err = read(out_path), read(err_path)
    for p in (out_path, err_path):
        p.unlink(missing_ok=True)
    return code, out, err, seconds


def run_subprocess(argv: list, workdir: Path, timeout_s: float) -> tuple[int | None, str, str, float]:
    """The same through a fresh interpreter (python -m simsbrt.cli), in its own session."""
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "simsbrt.cli", *argv], cwd=workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = proc.communicate()
        code = None
    return code, out, err, time.monotonic() - t0


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def classify(case: Case, code, out: str, err: str, workdir: Path, before: dict) -> tuple[str, str]:
    changed = [p for p, d in before.items() if _digest(workdir / p) != d]
    if changed:
        return DAMAGED, f"changed or deleted: {', '.join(changed)}"
    if code is None:
        return HANG, "killed at the time limit"
    if "Traceback (most recent call last)" in err:
        return TRACEBACK, err.strip().splitlines()[-1] if err.strip() else ""
    if code != 0:
        lines = [line for line in err.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
        if len(errors) == 1 and code != 0:
            return CLEAN_ERROR, errors[0]
        return UNCLEAN, (" | ".join(lines[-3:]) or f"exit {code}, empty stderr")
    if case.impossible:
        return ACCEPTED, "exit 0 on an impossible input"
    if case.validate is not None:
        try:
            case.validate(workdir, out)
        except Exception as exc:  # noqa: BLE001 - any failure to read the output back counts
            return ACCEPTED, f"output fails validation: {type(exc).__name__}: {exc}"
    return SUCCESS, ""


def run_case(case: Case, workdir: Path, subprocess_mode: bool = False) -> Outcome:
    """Set up the case in an empty workdir, run it, classify it."""
    import warnings

    workdir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():          # pydicom warns while a mutation writes a bad value
        warnings.simplefilter("ignore")
        case.setup(workdir)
    before = {p: _digest(workdir / p) for p in case.protect}
    runner = run_subprocess if subprocess_mode else run_forked
    code, out, err, seconds = runner(case.argv, workdir, case.timeout_s)
    kind, detail = classify(case, code, out, err, workdir, before)
    leftover = case.extra.get("no_leftover")
    if kind == CLEAN_ERROR and leftover and (workdir / leftover).exists():
        kind, detail = UNCLEAN, f"refused, but left {leftover}/ behind"
    return Outcome(case, kind, code, err, seconds, detail)
