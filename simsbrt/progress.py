"""One progress display for a whole command (``simsbrt plan``, ``simsbrt compare``).

On a terminal: one tqdm bar on stderr across the command's steps (the influence matrix, every
optimisation of every plan, every exact final dose), with elapsed time and the time left
estimated from the steps done; its text says what runs now, and a background thread redraws it
every second, so the elapsed time moves even inside a long kernel (the numba kernels release the
GIL) and no stretch passes without an update.
Not a terminal (a log file, a pipe): one line per stage on stderr, "simsbrt COMMAND: message".
quiet: nothing at all.

Callers pass messages: progress(message) for a stage that starts or a note, step(progress, message)
when a step of work ends (plain callables work too: step then just calls them).
"""
from __future__ import annotations

import sys
import threading

BAR_FORMAT = ("{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total_fmt} steps "
              "[{elapsed} elapsed, {remaining} left]{postfix}")


def step(progress, message: str, n: float = 1.0) -> None:
    """Report the end of a step of work: progress.step when the display counts steps, else progress(message)."""
    if progress is None:
        return
    counted = getattr(progress, "step", None)
    if counted is not None:
        counted(message, n)
    else:
        progress(message)


def add_steps(progress, n: int) -> None:
    """Announce n more steps than planned (a correction or floor round)."""
    grow = getattr(progress, "add_steps", None)
    if grow is not None:
        grow(n)


def fraction(progress, label: str, done: int, total: int) -> None:
    """Part of a step done (e.g. voxels of the exact final dose); shown only on a bar."""
    part = getattr(progress, "fraction", None)
    if part is not None:
        part(label, done, total)


class Progress:
    """The display of one command: tqdm bar (terminal), lines (no terminal) or nothing (quiet)."""

    def __init__(self, command: str, total_steps: float = 0, quiet: bool = False, stream=None, tty: bool | None = None,
                 refresh_s: float = 1.0):
        self.command = command
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = bool(quiet)
        self.tty = bool(self.stream.isatty()) if tty is None else bool(tty)
        self.bar = None
        self._part = 0.0              # fraction of the current step already shown on the bar
        self._stop = threading.Event()
        self._thread = None
        if not self.quiet and self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=float(total_steps), file=self.stream, desc=f"simsbrt {command}", unit="step",
                            bar_format=BAR_FORMAT, dynamic_ncols=True, mininterval=0.5)
            self._thread = threading.Thread(target=self._redraw, args=(refresh_s,), daemon=True)
            self._thread.start()

    def _redraw(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            bar = self.bar
            if bar is not None:
                with bar.get_lock():
                    bar.refresh()

    def __call__(self, message: str) -> None:
        if self.quiet:
            return
        if self.bar is None:
            print(f"simsbrt {self.command}: {message}", file=self.stream, flush=True)
        else:
            self.bar.set_postfix_str(message[:100], refresh=True)

    def step(self, message: str, n: float = 1.0) -> None:
        self(message)
        if self.bar is not None:
            self.bar.update(max(float(n) - self._part, 0.0))
            self._part = 0.0

    def add_steps(self, n: float) -> None:
        if self.bar is not None:
            self.bar.total += float(n)
            self.bar.refresh()

    def fraction(self, label: str, done: int, total: int) -> None:
        if self.bar is None or total <= 0:
            return
        part = min(done / total, 1.0) * 0.99
        self.bar.update(part - self._part)
        self._part = part
        self.bar.set_postfix_str(f"{label}: {done}/{total}", refresh=True)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def plan_steps(mode: str, n_bisections: int) -> int:
    """The steps of one plan: its optimisations (a search's steps, the final polish) and its exact final dose."""
    search = int(n_bisections) + 2
    return {"uniform": 1, "sib": search + 1, "uniform_escalated": search}.get(mode, 1) + 1
