"""Outputs that read cleanly: DVH goal lines from the protocol and distinguishable plan styles, the
teaching note reconciling a point and a volume metric, quiet closed pipes and Ctrl-C, sweep help,
examples that write where the user says."""
import dataclasses
import runpy
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from simsbrt import cli
from simsbrt.protocols.loader import Range, load_protocol
from simsbrt.report.dvh_plot import dvh_figure, goal_lines, goal_marks

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


# ------------------------------------------------------------------ DVH figure
def small_case():
    shape = (6, 6, 6)
    rng = np.random.default_rng(3)
    dose = rng.uniform(20.0, 50.0, shape).astype(np.float32)
    masks = {n: np.zeros(shape, bool) for n in ("GTV", "PTV_Eval", "SpinalCord_PRV02", "ThecalSac")}
    masks["GTV"][1:3, 1:3, 1:3] = True
    masks["PTV_Eval"][0:4, 0:4, 0:4] = True
    masks["SpinalCord_PRV02"][5, 5, :] = True
    return dose, masks


def test_gtv_goal_lines_come_from_the_protocol():
    trial = load_protocol("sib_trial")
    lines = {(g.metric, g.dose_gy, g.kind, g.level) for g in goal_lines(trial)}
    # the trial's Table 1 (sib-protocol.md): GTV D50% >= 36 (mandatory) / 42 (optimal); D2% <= 48 / 51
    assert lines == {("D50%", 36.0, "floor", "mandatory"), ("D50%", 42.0, "floor", "optimal"),
                     ("D2%", 48.0, "ceiling", "optimal"), ("D2%", 51.0, "ceiling", "mandatory")}
    # a protocol with another GTV floor moves the line: nothing is a constant of the figure
    changed = dataclasses.replace(trial, limits=tuple(
        dataclasses.replace(lim, mandatory=Range(38.5, None, "Gy")) if (lim.structure, lim.metric.name) == ("GTV", "D50%")
        else lim for lim in trial.limits))
    assert 38.5 in {g.dose_gy for g in goal_lines(changed)} and 36.0 not in {g.dose_gy for g in goal_lines(changed)}
    assert goal_lines(load_protocol("uniform")) == ()     # no GTV goals in the uniform protocol
    marks = goal_marks(trial)
    assert any(m.structure == "PTV_Eval" and m.metric == "D90%" and m.volume_pct == 90.0 for m in marks)


def test_dvh_figure_draws_goal_lines_fractions_and_distinct_plan_styles():
    import matplotlib.pyplot as plt

    dose, masks = small_case()
    trial = load_protocol("sib_trial")
    plans = {"uniform": dose * 0.7, "uniform_escalated": dose * 0.9, "sib": dose}
    fig = dvh_figure(plans, masks, 0.008, protocol=trial)
    try:
        ax = fig.axes[0]
        assert "5 fractions" in ax.get_title() and "5 fractions" in ax.get_xlabel()
        vertical = {round(float(ln.get_xdata()[0]), 3) for ln in ax.lines
                    if len(ln.get_xdata()) == 2 and ln.get_xdata()[0] == ln.get_xdata()[1]}
        assert {36.0, 42.0, 48.0, 51.0} <= vertical
        texts = " ".join(t.get_text() for t in ax.texts)
        assert "GTV D50% >= 36 Gy (mandatory)" in texts and "GTV D2% <= 51 Gy (mandatory)" in texts
        # each plan's curves: one (dash pattern, marker) per plan, all different (greyscale print, colour blindness)
        styles = {}
        for ln in ax.lines:
            label = ln.get_label()
            if label.startswith("_GTV "):
                styles[label.split()[-1]] = (str(ln.get_linestyle()), str(ln.get_dashes() if hasattr(ln, "get_dashes")
                                                                          else ""), ln.get_marker())
        assert set(styles) == set(plans)
        assert len({s[2] for s in styles.values()}) == 3, styles          # three different markers
        assert len({s[0] for s in styles.values()}) >= 2
    finally:
        plt.close(fig)


# ------------------------------------------------------------------ teaching note
def test_teaching_note_explains_a_crossing_inside_the_prv_with_d003cc_below_the_limit():
    from simsbrt.teach.lesson import point_volume_note

    inside = SimpleNamespace(limit_to_prv_edge_mm=-0.93, limit_gy=25.0)
    note = point_volume_note(inside, 24.4, 2.0, 0.008)
    assert note and note.startswith("Both are true") and "0.93 mm inside" in note and "24.40 Gy" in note
    assert note.count(". ") == 0 and note.endswith(".")                       # one sentence
    assert "3.8 voxels" in note and "1 mm" in note                            # 0.03 / 0.008 cm3; half of 2 mm
    assert point_volume_note(SimpleNamespace(limit_to_prv_edge_mm=0.5, limit_gy=25.0), 24.4, 2.0, 0.008) is None
    assert point_volume_note(inside, 25.3, 2.0, 0.008) is None               # really over: nothing to reconcile


# ------------------------------------------------------------------ closed pipe, Ctrl-C
def test_closed_pipe_ends_quietly():
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from simsbrt.cli import main; sys.exit(main())",
                             "dose", "pdd"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()                       # the reader is gone before the output comes, as with `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_interrupt_prints_one_line_and_exits_130(monkeypatch, capsys, tmp_path):
    import simsbrt.view.page

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(simsbrt.view.page, "write_view", interrupted)
    assert cli.main(["view", str(tmp_path / "plan.h5"), "--out", str(tmp_path / "view.html")]) == 130
    assert capsys.readouterr().err == "simsbrt: interrupted\n"


def test_ctrl_c_on_a_running_command(tmp_path):
    """A real SIGINT to `simsbrt plan` once it reports that it has started (computing the influence matrix)."""
    from simsbrt.io.phantom_h5 import write_phantom
    from simsbrt.phantom import build_phantom, load_spec

    phantom = write_phantom(tmp_path / "phantom.h5", build_phantom(load_spec("t12_small").with_spacing(3.0)))
    proc = subprocess.Popen([sys.executable, "-u", "-c", "import sys; from simsbrt.cli import main; sys.exit(main())",
                             "plan", str(phantom), "--mode", "uniform", "--out", str(tmp_path / "plan.h5"),
                             "--backend", "cpu"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "influence matrix" in line:
            break
    proc.send_signal(signal.SIGINT)
    err = "".join(lines) + proc.stderr.read()
    assert proc.wait(timeout=60) == 130, err
    assert err.strip().splitlines()[-1] == "simsbrt: interrupted" and "Traceback" not in err, err
    assert not (tmp_path / "plan.h5").exists()


# ------------------------------------------------------------------ sweep help, examples
def test_sweep_help_lists_the_sweep_options(capsys):
    assert cli.main(["sweep", "--help"]) == 0     # main returns the parser's exit status, never raises
    text = capsys.readouterr().out
    for option in ("--out", "--workers", "--dask", "--backend", "--set", "--no-cache", "--cache-gb", "--retry-failed",
                   "--x", "--y", "--by", "--where"):
        assert option in text, option


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_examples_write_where_the_user_says(name, capsys):
    source = (EXAMPLES / name).read_text()
    assert "tempfile" not in source and "TemporaryDirectory" not in source
    module = runpy.run_path(str(EXAMPLES / name))
    with pytest.raises(SystemExit):
        module["main"](["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--out" in text and "default: out/" in text, text
