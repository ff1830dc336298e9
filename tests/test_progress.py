"""The progress display of plan / compare (simsbrt.progress): a bar with time left on a terminal, redrawn
while a step runs; one line per stage otherwise; nothing with --quiet."""
import io
import time

from simsbrt.progress import Progress, add_steps, fraction, plan_steps, step


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_lines_when_not_a_terminal():
    out = io.StringIO()
    with Progress("compare", 3, stream=out) as progress:
        progress("influence matrix ...")
        step(progress, "matrix done")
        fraction(progress, "exact final dose", 5, 10)     # shown only on a bar
        add_steps(progress, 2)
    assert out.getvalue().splitlines() == ["simsbrt compare: influence matrix ...", "simsbrt compare: matrix done"]


def test_quiet_prints_nothing():
    out = Terminal()
    with Progress("plan", 3, quiet=True, stream=out) as progress:
        progress("x")
        step(progress, "y")
    assert out.getvalue() == ""


def test_bar_shows_steps_and_time_left_and_moves_inside_a_long_step():
    out = Terminal()
    with Progress("plan", 4, stream=out, refresh_s=0.05) as progress:
        step(progress, "matrix done")
        fraction(progress, "exact final dose, voxels", 1, 2)
        before = out.getvalue().count("\r")
        time.sleep(0.4)                                    # a long kernel: nobody calls the display
        redraws = out.getvalue().count("\r") - before
        step(progress, "final dose done")
        assert progress.bar.n == 2.0
        add_steps(progress, 2)
        assert progress.bar.total == 6.0
    text = out.getvalue()
    assert redraws >= 3, "the display must be redrawn while a step runs"
    assert "left]" in text and "elapsed" in text and "final dose done" in text and "2.0/6" in text


def test_step_falls_back_to_plain_callables():
    seen = []
    step(seen.append, "done")
    step(None, "ignored")
    assert seen == ["done"]


def test_plan_steps_count_the_optimisations_and_the_final_dose():
    assert plan_steps("uniform", 5) == 2
    assert plan_steps("sib", 5) == 9                       # 7 search steps, the polish, the final dose
    assert plan_steps("uniform_escalated", 3) == 6
