"""The ``simsbrt`` command. Each command family lives in its own module with ``register(subparsers)``."""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

import simsbrt
from simsbrt.errors import SimsbrtError

# Modules that add subcommands; each defines register(subparsers) and sets func on its parsers.
COMMAND_MODULES = (
    "simsbrt.cli_info",
    "simsbrt.phantom.cli",
    "simsbrt.evaluate.cli_evaluate",
    "simsbrt.dose.cli",
    "simsbrt.optimize.cli",
    "simsbrt.cli_compare",
    "simsbrt.sweep.cli",
    "simsbrt.dicom.cli",
    "simsbrt.teach.cli",
    "simsbrt.view.cli",
)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error: ``simsbrt: error: <command>: <problem>``."""

    def error(self, message):
        command = self.prog.removeprefix("simsbrt").strip()
        self.exit(2, f"simsbrt: error: {command + ': ' if command else ''}{message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="simsbrt",
        description="Planning simulator for dose-escalated spine SBRT (simultaneous integrated boost).",
    )
    parser.add_argument("--version", action="version", version=f"simsbrt {simsbrt.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is chosen and why")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def main(argv: list[str] | None = None) -> int:
    """Run one command. A reader that closes the pipe early (``simsbrt dose pdd | head``) ends the
    command quietly; Ctrl-C prints ``simsbrt: interrupted`` and exits 130 (128 + SIGINT), never a traceback."""
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:   # --help, --version, or a one-line usage error (Parser.error)
            return exc.code if isinstance(exc.code, int) else 2
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        try:
            code = int(args.func(args) or 0)
            sys.stdout.flush()   # a closed pipe shows here, inside the handler, not at interpreter exit
            return code
        except SystemExit as exc:   # a command's own parser (sweep): --help or a one-line usage error
            return exc.code if isinstance(exc.code, int) else 2
        except SimsbrtError as exc:
            print(f"simsbrt: error: {exc}", file=sys.stderr)
            return 2
        except BrokenPipeError:
            raise
        except (OSError, MemoryError) as exc:   # a full disk, a read-only folder, memory the checks missed
            print(f"simsbrt: error: {describe_system_error(exc)}", file=sys.stderr)
            return 2
    except BrokenPipeError:
        return _quiet_after_broken_pipe()
    except KeyboardInterrupt:
        print("simsbrt: interrupted", file=sys.stderr)
        return 130


def _quiet_after_broken_pipe() -> int:
    """The reader went away: send what is still buffered for stdout to /dev/null (so the flush at
    exit cannot raise again) and exit as a process ended by SIGPIPE would (128 + 13)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141


def describe_system_error(exc: BaseException) -> str:
    """One line for an operating-system error (with the file it concerns) or a failed allocation."""
    if isinstance(exc, MemoryError):
        return f"not enough memory ({exc or 'allocation failed'}); use a coarser grid or fewer beamlets"
    where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
    return f"{where}{exc.strerror or exc}".replace("\n", " ")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
