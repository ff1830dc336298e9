"""Cumulative DVHs of several plans in one figure: colour per structure, line style per plan.

The curves are the cumulative DVH of simsbrt.evaluate.dvh (volume receiving >= dose, as % of the
structure volume; facts 6.1), sampled on a fine dose axis. The organ limits (cord PRV 25 Gy,
thecal sac 30 Gy, Table 1) and the PTV_Eval prescription (30 Gy) are marked as vertical lines.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from simsbrt.errors import SpecError
from simsbrt.evaluate import compute_dvh
from simsbrt.io.atomic import atomic_path
from simsbrt.report.phantom_plot import STRUCTURE_COLOURS

DVH_STRUCTURES = ("GTV", "PTV_Eval", "SpinalCord_PRV02", "ThecalSac")
PLAN_LINESTYLES = {"uniform": "-", "uniform_escalated": ":", "sib": "--"}
EXTRA_LINESTYLES = ("-.", (0, (5, 1, 1, 1)), (0, (1, 3)))
DEFAULT_SIZE_PX = (1200, 800)
DEFAULT_DPI = 100


def plan_linestyle(plan: str, index: int):
    """The line style of a plan in every figure (DVH, teaching profile)."""
    return PLAN_LINESTYLES.get(plan, EXTRA_LINESTYLES[index % len(EXTRA_LINESTYLES)])


def cumulative_dvh_percent(dose_gy, mask, voxel_volume_cc: float, dose_axis_gy: np.ndarray) -> np.ndarray:
    """Volume (% of the structure) receiving >= each dose of dose_axis_gy."""
    dvh = compute_dvh(dose_gy, mask, voxel_volume_cc)
    return 100.0 * dvh.cumulative_cc(dose_axis_gy) / dvh.total_volume_cc


def plot_dvh_comparison(doses_gy: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray], voxel_volume_cc: float,
                        out_path, *, limits_gy: Mapping[str, float] | None = None,
                        structures=DVH_STRUCTURES, title: str = "",
                        size_px: tuple[int, int] = DEFAULT_SIZE_PX, dpi: int = DEFAULT_DPI) -> Path:
    """Write a PNG (atomically) of the cumulative DVHs of ``structures`` for every plan in ``doses_gy``.

    limits_gy: label -> dose drawn as a vertical dashed line (default: cord PRV 25 Gy, thecal sac /
    PTV_Eval prescription 30 Gy). Structures missing or empty are listed in the legend as absent.
    The image is exactly size_px pixels (width, height).
    """
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
    top_gy = max(float(np.max(d)) for d in doses_gy.values())
    dose_axis = np.linspace(0.0, max(top_gy * 1.05, max(limits_gy.values(), default=0.0) * 1.1, 1.0), 600)

    fig = plt.figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    try:
        ax = fig.add_subplot(1, 1, 1)
        absent = []
        for name in structures:
            if name not in masks or not np.any(masks[name]):
                absent.append(name)
                continue
            colour = STRUCTURE_COLOURS.get(name, "#000000")
            for index, (plan, dose) in enumerate(doses_gy.items()):
                ax.plot(dose_axis, cumulative_dvh_percent(dose, masks[name], voxel_volume_cc, dose_axis),
                        color=colour, linestyle=plan_linestyle(plan, index), linewidth=1.6)
        for label, level in limits_gy.items():
            ax.axvline(level, color="#444444", linestyle=(0, (2, 2)), linewidth=1.0)
            ax.text(level, 52.0, f" {label}", rotation=90, ha="right", va="bottom", fontsize=8, color="#444444")
        handles = [Line2D([], [], color=STRUCTURE_COLOURS.get(n, "#000000"), lw=2, label=n)
                   for n in structures if n not in absent]
        handles += [Line2D([], [], color="#999999", lw=0, label=f"{n}: not in this phantom") for n in absent]
        handles += [Line2D([], [], color="black", linestyle=plan_linestyle(p, i), lw=1.6, label=f"plan {p}")
                    for i, p in enumerate(doses_gy)]
        fig.subplots_adjust(left=0.08, right=0.76, top=0.93, bottom=0.09)
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, framealpha=0.9)
        ax.set_xlim(dose_axis[0], dose_axis[-1])
        ax.set_ylim(0.0, 103.0)
        ax.set_xlabel("dose (Gy)")
        ax.set_ylabel("volume (% of structure) receiving >= dose")
        ax.set_title(title or "cumulative DVH: " + " vs ".join(doses_gy))
        ax.grid(True, alpha=0.3)
        target = Path(out_path)
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return target
