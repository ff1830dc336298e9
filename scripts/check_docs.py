"""Check the documentation against the code: run by tests/test_docs.py in CI, or by hand.

    python scripts/check_docs.py          # prints every problem; exit status 1 if there is one

  - every `simsbrt ...` command in a fenced code block of README.md and docs/**/*.md is parsed by
    the real argparse parser (simsbrt.cli.build_parser; a sweep's own options by its job parser),
    so an unknown or abbreviated option, a missing required option or a bad choice fails;
  - README.md stays under README_MAX_CHARS characters (it is the front door; the reference is in docs/);
  - every relative link in README.md and docs/ resolves to a file or folder of the repository (and
    a #heading in a page to one of its headings).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README_MAX_CHARS = 12_000
# Documentation pages written on other branches and linked before they arrive; the integrator
# deletes an entry when its file is merged (then its links are checked like every other).
FENCE = re.compile(r"^(\s*)(```|~~~)(.*)$")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
SEPARATORS = {"&&", "||", "|", ";", "&"}


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def doc_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))] if (root / "docs").is_dir() else [root / "README.md"]


def fenced_lines(text: str):
    """(line number, line) of every line inside a fenced code block, with backslash continuations joined."""
    inside, pending, start = False, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            inside, pending = not inside, ""
            continue
        if not inside:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield start, pending + line
        pending = ""


def simsbrt_commands(line: str) -> list[list[str]]:
    """The argument lists of every `simsbrt ...` command on a shell line (comments, prompts, pipes handled)."""
    try:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        tokens = list(lexer)
    except ValueError:
        return []
    commands, current = [], []
    for token in tokens + [";"]:
        if token in SEPARATORS:
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    out = []
    for cmd in commands:
        if cmd and cmd[0] == "$":
            cmd = cmd[1:]
        if cmd and cmd[0] == "simsbrt":
            out.append(cmd[1:])
    return out


def parse_command(argv: list[str]) -> str | None:
    """None if the real parser accepts ``simsbrt argv``; else its error message."""
    from simsbrt.cli import build_parser

    parser = _no_abbreviations(build_parser())
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            args = parser.parse_args(argv)
            if getattr(args, "command", None) == "sweep":
                from simsbrt.sweep.cli import parse_job

                parse_job(args)
            elif not getattr(args, "func", None):
                return "names no command"
    except SystemExit as exc:
        if exc.code in (0, None):      # --help, --version
            return None
        return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit status {exc.code}"
    return None


def _no_abbreviations(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Docs spell options in full: refuse prefixes (``--isodose`` for ``--isodose-gy``) in every sub-parser."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _no_abbreviations(sub)
    return parser


def check_commands(path: Path, text: str, root: Path = ROOT) -> list[Problem]:
    problems = []
    for number, line in fenced_lines(text):
        for argv in simsbrt_commands(line):
            message = parse_command(argv)
            if message:
                problems.append(Problem(_rel(path, root), number, f"`simsbrt {' '.join(argv)}`: {message}"))
    return problems


def check_links(path: Path, text: str, root: Path = ROOT) -> list[Problem]:
    problems = []
    in_fence = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            in_fence = not in_fence
        if in_fence:
            continue
        for match in LINK.finditer(line):
            target = match.group(1) or match.group(2)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
                continue            # http(s):, mailto: and in-page anchors
            file_part = target.split("#", 1)[0]
            resolved = (path.parent / file_part).resolve()
            try:
                relative = resolved.relative_to(root.resolve()).as_posix()
            except ValueError:
                problems.append(Problem(_rel(path, root), number, f"link {target} leaves the repository"))
                continue
            if not resolved.exists():
                problems.append(Problem(_rel(path, root), number, f"link {target}: {relative} does not exist"))
            elif "#" in target and resolved.suffix == ".md":
                anchor = target.split("#", 1)[1]
                if anchor not in heading_anchors(resolved.read_text(encoding="utf-8")):
                    problems.append(Problem(_rel(path, root), number, f"link {target}: no heading #{anchor} in {relative}"))
    return problems


def heading_anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    anchors, in_fence = set(), False
    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading and not in_fence:
            anchors.add(re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-"))
    return anchors


def check_readme_length(root: Path = ROOT) -> list[Problem]:
    n = len((root / "README.md").read_text(encoding="utf-8"))
    if n >= README_MAX_CHARS:
        return [Problem("README.md", 1, f"{n} characters; keep it under {README_MAX_CHARS} (move reference text to docs/)")]
    return []


def check_all(root: Path = ROOT) -> list[Problem]:
    problems = check_readme_length(root)
    for path in doc_files(root):
        text = path.read_text(encoding="utf-8")
        problems += check_commands(path, text, root) + check_links(path, text, root)
    return problems


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def main(argv=None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    problems = check_all()
    for p in problems:
        print(p)
    n_commands = sum(len(simsbrt_commands(line)) for f in doc_files() for _, line in
                     fenced_lines(f.read_text(encoding="utf-8")))
    print(f"{len(doc_files())} files, {n_commands} simsbrt commands checked: "
          f"{'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
