"""Cumulative DVHs of several plans in one figure: colour per structure, line style and marker per plan.

The curves are the cumulative DVH of simsbrt.evaluate.dvh (volume receiving >= dose, as % of the
structure volume; facts 6.1), sampled on a fine dose axis. Marked on it:
  - labelled vertical lines: the organ limits and the PTV_Eval prescription (``limits_gy``);
  - with a protocol: the GTV's boost window read from the protocol (the floors of its D50% row and
    every GTV ceiling: 36 / 42 Gy floors, 48 / 51 Gy ceilings in the trial's Table 1), and every
    D<x>% bound of the drawn structures as a triangle at (dose, x %) the curve must pass on the
    right side of (floor, pointing right) or the left side of (ceiling, pointing left); filled =
    mandatory, open = optimal; the fractions in the title.
Colours are the Okabe-Ito colour-blind-safe set; plans differ by dash pattern AND marker shape, so
the figure also reads in greyscale print; each structure's curves carry its name.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simsbrt.errors import SpecError
from simsbrt.evaluate import compute_dvh
from simsbrt.evaluate.metrics import DOSE_AT_PERCENT
from simsbrt.io.atomic import atomic_path

DVH_STRUCTURES = ("GTV", "PTV_Eval", "SpinalCord_PRV02", "ThecalSac")
# Okabe & Ito (2008) colour-universal-design palette: vermillion, blue, bluish green, reddish purple
DVH_COLOURS = {"GTV": "#D55E00", "PTV_Eval": "#0072B2", "SpinalCord_PRV02": "#009E73", "ThecalSac": "#CC79A7"}
OTHER_COLOURS = ("#E69F00", "#56B4E9", "#000000")
# (dash pattern, marker) per plan: every pair differs in both
PLAN_LINESTYLES = {"uniform": "-", "uniform_escalated": (0, (1, 1.5)), "sib": (0, (6, 2))}
PLAN_MARKERS = {"uniform": "", "uniform_escalated": "o", "sib": "^"}
EXTRA_LINESTYLES = ("-.", (0, (5, 1, 1, 1)), (0, (1, 3)))
EXTRA_MARKERS = ("s", "D", "v")
GOAL_STRUCTURE = "GTV"
GOAL_FLOOR_METRIC = "D50%"
DEFAULT_SIZE_PX = (1200, 800)
DEFAULT_DPI = 100


@dataclass(frozen=True)
class GoalMark:
    """One bound of a protocol row on a DVH: D<volume_pct>% >= (floor) or <= (ceiling) dose_gy."""

    structure: str
    metric: str
    volume_pct: float
    dose_gy: float
    kind: str       # "floor" | "ceiling"
    level: str      # "optimal" | "mandatory"

    @property
    def label(self) -> str:
        return f"{self.structure} {self.metric} {'>=' if self.kind == 'floor' else '<='} {self.dose_gy:g} Gy ({self.level})"


def goal_marks(protocol, structures=DVH_STRUCTURES) -> tuple[GoalMark, ...]:
    """Every D<x>% bound of the protocol on ``structures`` (the protocol's own numbers)."""
    marks = []
    for limit in protocol.limits:
        if limit.structure not in structures or limit.metric.kind != DOSE_AT_PERCENT or limit.metric.parameter is None:
            continue
        for level, rng in (("mandatory", limit.mandatory), ("optimal", limit.optimal)):
            if rng is None:
                continue
            for kind, value in (("floor", rng.min_value), ("ceiling", rng.max_value)):
                if value is not None:
                    marks.append(GoalMark(limit.structure, limit.metric.name, float(limit.metric.parameter),
                                          float(value), kind, level))
    return tuple(marks)


def goal_lines(protocol) -> tuple[GoalMark, ...]:
    """The GTV boost window as vertical lines: the floors of its D50% row and every GTV ceiling, in dose order."""
    lines = [m for m in goal_marks(protocol, (GOAL_STRUCTURE,))
             if (m.kind == "floor" and m.metric == GOAL_FLOOR_METRIC) or m.kind == "ceiling"]
    return tuple(sorted(lines, key=lambda m: m.dose_gy))


def structure_colour(name: str, index: int = 0) -> str:
    return DVH_COLOURS.get(name, OTHER_COLOURS[index % len(OTHER_COLOURS)])


def plan_linestyle(plan: str, index: int):
    """The line style of a plan in every figure (DVH, teaching profile)."""
    return PLAN_LINESTYLES.get(plan, EXTRA_LINESTYLES[index % len(EXTRA_LINESTYLES)])


def plan_marker(plan: str, index: int) -> str:
    """The marker of a plan's curves (none for uniform), placed every few points along the curve."""
    return PLAN_MARKERS.get(plan, EXTRA_MARKERS[index % len(EXTRA_MARKERS)])


def cumulative_dvh_percent(dose_gy, mask, voxel_volume_cc: float, dose_axis_gy: np.ndarray) -> np.ndarray:
    """Volume (% of the structure) receiving >= each dose of dose_axis_gy."""
    dvh = compute_dvh(dose_gy, mask, voxel_volume_cc)
    return 100.0 * dvh.cumulative_cc(dose_axis_gy) / dvh.total_volume_cc


def plot_dvh_comparison(doses_gy: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray], voxel_volume_cc: float,
                        out_path, *, limits_gy: Mapping[str, float] | None = None,
                        structures=DVH_STRUCTURES, title: str = "", protocol=None, n_fractions: int | None = None,
                        size_px: tuple[int, int] = DEFAULT_SIZE_PX, dpi: int = DEFAULT_DPI) -> Path:
    """Write a PNG (atomically) of the cumulative DVHs of ``structures`` for every plan in ``doses_gy``.

    limits_gy: label -> dose drawn as a vertical dashed line (default: cord PRV 25 Gy, thecal sac /
    PTV_Eval prescription 30 Gy). protocol: draws its GTV goal lines and D<x>% marks (goal_lines,
    goal_marks); n_fractions (default: the protocol's) goes into the title. Structures missing or
    empty are listed in the legend as absent. The image is exactly size_px pixels (width, height).
    """
    import matplotlib.pyplot as plt

    fig = dvh_figure(doses_gy, masks, voxel_volume_cc, limits_gy=limits_gy, structures=structures, title=title,
                     protocol=protocol, n_fractions=n_fractions, size_px=size_px, dpi=dpi)
    try:
        target = Path(out_path)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return target


def dvh_figure(doses_gy: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray], voxel_volume_cc: float, *,
               limits_gy: Mapping[str, float] | None = None, structures=DVH_STRUCTURES, title: str = "",
               protocol=None, n_fractions: int | None = None,
               size_px: tuple[int, int] = DEFAULT_SIZE_PX, dpi: int = DEFAULT_DPI):
    """The matplotlib Figure of plot_dvh_comparison (the caller closes it)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if not doses_gy:
        raise SpecError("doses_gy", "no plan to plot")
    width, height = (int(v) for v in size_px)
    if width < 200 or height < 150 or dpi <= 0:
        raise SpecError("size_px", f"needs at least 200 x 150 pixels and dpi > 0, got {size_px} at {dpi}")
    if limits_gy is None:
        limits_gy = {"SpinalCord_PRV02 limit 25 Gy": 25.0, "ThecalSac limit / PTV_Eval Rx 30 Gy": 30.0}
    if n_fractions is None and protocol is not None:
        n_fractions = protocol.n_fractions
    goals = goal_lines(protocol) if protocol is not None else ()
    marks = goal_marks(protocol, structures) if protocol is not None else ()
    top_gy = max(float(np.max(d)) for d in doses_gy.values())
    highest_line = max([*limits_gy.values(), *(g.dose_gy for g in goals)], default=0.0)
    dose_axis = np.linspace(0.0, max(top_gy * 1.05, highest_line * 1.1, 1.0), 600)

    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    absent = []
    for s_index, name in enumerate(structures):
        if name not in masks or not np.any(masks[name]):
            absent.append(name)
            continue
        colour = structure_colour(name, s_index)
        for index, (plan, dose) in enumerate(doses_gy.items()):
            volume = cumulative_dvh_percent(dose, masks[name], voxel_volume_cc, dose_axis)
            ax.plot(dose_axis, volume, color=colour, linestyle=plan_linestyle(plan, index), linewidth=1.6,
                    marker=plan_marker(plan, index) or None, markevery=(8 * index, 24), markersize=5,
                    markerfacecolor="white", label=f"_{name} {plan}")
            if index == 0:   # name the structure on its first plan's curve, each at its own height
                at = int(np.argmin(np.abs(volume - (85.0 - 17.0 * (s_index % 5)))))
                ax.text(dose_axis[at], volume[at], f" {name}", color=colour, fontsize=8, ha="left", va="bottom")
    for label, level in limits_gy.items():
        ax.axvline(level, color="#444444", linestyle=(0, (2, 2)), linewidth=1.0)
        ax.text(level, 52.0, f" {label}", rotation=90, ha="right", va="bottom", fontsize=8, color="#444444")
    goal_colour = structure_colour(GOAL_STRUCTURE)
    for g in goals:   # mandatory solid, optimal dash-dot: both unlike the plans' patterns
        ax.axvline(g.dose_gy, color=goal_colour, linewidth=1.2 if g.level == "mandatory" else 1.0,
                   linestyle="-" if g.level == "mandatory" else (0, (4, 1, 1, 1)), alpha=0.8)
        ax.text(g.dose_gy, 2.0, f" {g.label}", rotation=90, ha="right", va="bottom", fontsize=7, color=goal_colour)
    for m in marks:
        if m.structure in absent:
            continue
        colour = structure_colour(m.structure, structures.index(m.structure))
        ax.plot([m.dose_gy], [m.volume_pct], linestyle="none", marker=">" if m.kind == "floor" else "<",
                markersize=8, markeredgecolor=colour, markerfacecolor=colour if m.level == "mandatory" else "white",
                label=f"_mark {m.label}")
    handles = [Line2D([], [], color=structure_colour(n, i), lw=2, label=n)
               for i, n in enumerate(structures) if n not in absent]
    handles += [Line2D([], [], color="#999999", lw=0, label=f"{n}: not in this phantom") for n in absent]
    handles += [Line2D([], [], color="black", linestyle=plan_linestyle(p, i), marker=plan_marker(p, i) or None,
                       markerfacecolor="white", lw=1.6, label=f"plan {p}") for i, p in enumerate(doses_gy)]
    if goals:
        handles += [Line2D([], [], color=goal_colour, lw=1.2, label=f"{GOAL_STRUCTURE} goal lines ({protocol.name})"),
                    Line2D([], [], color="black", marker=">", linestyle="none", label="D x% floor at (dose, x %)"),
                    Line2D([], [], color="black", marker="<", linestyle="none", label="D x% ceiling at (dose, x %)"),
                    Line2D([], [], color="black", marker="s", linestyle="none", markerfacecolor="white",
                           label="filled: mandatory, open: optimal")]
    fig.subplots_adjust(left=0.08, right=0.74, top=0.93, bottom=0.09)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, framealpha=0.9)
    ax.set_xlim(dose_axis[0], dose_axis[-1])
    ax.set_ylim(0.0, 103.0)
    fx = f"total dose in {n_fractions} fractions" if n_fractions else "dose"
    ax.set_xlabel(f"{fx} (Gy)")
    ax.set_ylabel("volume (% of structure) receiving >= dose")
    ax.set_title((title or "cumulative DVH: " + " vs ".join(doses_gy)) + (f" ({n_fractions} fractions)" if n_fractions else ""))
    ax.grid(True, alpha=0.3)
    return fig
