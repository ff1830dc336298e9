"""Drawing of the teaching figures from their figure data (figures.py, profile.py, gradient.py).

Nothing here computes a number that the page reports: isodose lines are drawn from the vertices
in DoseSlice.isodose_lines, the profile from ProfileData's samples, the gradient map from
GradientMap. Each PNG is written atomically (simsbrt.io.atomic.atomic_path).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from simsbrt.io.atomic import atomic_path
from simsbrt.report.dvh_plot import plan_linestyle
from simsbrt.report.phantom_plot import STRUCTURE_COLOURS
from simsbrt.teach.figures import OUTLINE_STRUCTURES, isodose_lines, levels_in_range

ISODOSE_CMAP = "turbo"
WASH_CMAP = "jet"
WASH_ALPHA = 0.45
WASH_FLOOR_FRAC = 0.10        # doses below 10 % of the colour-scale top are not washed
DPI = 100
FIGURE_SIZE_PX = {  # (width, height) of each PNG for two plans side by side
    "slices": (1400, 740), "profile": (1200, 720), "gradient": (1340, 660),
}


def _figsize(kind: str, n_panels: int = 2) -> tuple[float, float]:
    """Inches for FIGURE_SIZE_PX at DPI; panel figures grow by one panel width per extra plan."""
    width, height = FIGURE_SIZE_PX[kind]
    if kind in ("slices", "gradient"):
        panel = 620 if kind == "slices" else 600
        width += (n_panels - 2) * panel
    return width / DPI, height / DPI


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, out_path) -> Path:
    target = Path(out_path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return target


def isodose_colours(levels_gy) -> dict:
    """One colour per requested level, low = blue, high = red (fixed for every panel)."""
    import matplotlib

    cmap = matplotlib.colormaps[ISODOSE_CMAP]
    levels = list(levels_gy)
    n = max(len(levels) - 1, 1)
    return {lv: cmap(0.1 + 0.85 * idx / n) for idx, lv in enumerate(levels)}


def _edges(axis_mm: np.ndarray) -> tuple[float, float]:
    step = float(axis_mm[1] - axis_mm[0]) if len(axis_mm) > 1 else 1.0
    return float(axis_mm[0] - step / 2), float(axis_mm[-1] + step / 2)


ORIENTATION = {  # view -> (left, right, top, bottom) labels, LPS in radiological display
    "axial": ("R", "L", "A", "P"),
    "sagittal": ("A", "P", "S", "I"),
}
AXIS_LABELS = {
    "axial": ("x (mm)   patient right  <->  patient left", "y (mm)   anterior (top)  <->  posterior"),
    "sagittal": ("y (mm)   anterior  <->  posterior", "z (mm)   inferior  <->  superior (top)"),
}


def _outline(ax, h_mm, v_mm, mask, colour, style="-", width=1.3):
    ax.contour(h_mm, v_mm, mask.astype(float), levels=[0.5], colors=[colour], linewidths=width, linestyles=style)


def _draw_slice_panel(ax, sl, vmax_gy: float, colours: dict):
    import matplotlib.patheffects as pe

    h0, h1 = _edges(sl.horizontal_mm)
    v0, v1 = _edges(sl.vertical_mm)
    extent = (h0, h1, v0, v1)
    ax.imshow(sl.density, cmap="gray", vmin=0.0, vmax=1.8, origin="lower", extent=extent, interpolation="nearest")
    wash = np.ma.masked_less(sl.dose_gy, WASH_FLOOR_FRAC * vmax_gy)
    ax.imshow(wash, cmap=WASH_CMAP, vmin=0.0, vmax=vmax_gy, alpha=WASH_ALPHA, origin="lower", extent=extent,
              interpolation="bilinear")
    for name, mask in sl.outlines.items():
        _outline(ax, sl.horizontal_mm, sl.vertical_mm, mask, STRUCTURE_COLOURS.get(name, "white"), "--", 1.2)
    stroke = [pe.Stroke(linewidth=2.8, foreground="black"), pe.Normal()]
    for level, segments in sl.isodose_lines.items():
        for seg in segments:
            ax.plot(seg[:, 0], seg[:, 1], color=colours[level], linewidth=1.6, path_effects=stroke)
    wh0, wh1, wv0, wv1 = sl.window_mm
    ax.set_xlim(wh0, wh1)
    if sl.view == "axial":
        ax.set_ylim(wv1, wv0)          # anterior (small y) at the top
    else:
        ax.set_ylim(wv0, wv1)          # superior (large z) at the top
    ax.set_aspect("equal")
    xlabel, ylabel = AXIS_LABELS[sl.view]
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    left, right, top, bottom = ORIENTATION[sl.view]
    style = dict(transform=ax.transAxes, color="white", fontsize=15, fontweight="bold",
                 path_effects=[pe.withStroke(linewidth=2.5, foreground="black")])
    ax.text(0.015, 0.5, left, va="center", ha="left", **style)
    ax.text(0.985, 0.5, right, va="center", ha="right", **style)
    ax.text(0.5, 0.985, top, va="top", ha="center", **style)
    ax.text(0.5, 0.015, bottom, va="bottom", ha="center", **style)
    ax.set_title(f"{sl.plan}: {sl.view} {sl.fixed_axis} = {sl.fixed_mm:.1f} mm, max {float(sl.dose_gy.max()):.1f} Gy",
                 fontsize=11)


def draw_dose_slices(slices, out_path, vmax_gy: float, title: str = "") -> Path:
    """Side-by-side colour-wash panels (one per plan) on one colour scale, isodose lines, outlines."""
    plt = _pyplot()
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    levels = slices[0].levels_requested_gy
    colours = isodose_colours(levels)
    fig, axes = plt.subplots(1, len(slices), figsize=_figsize("slices", len(slices)), squeeze=False)
    try:
        for ax, sl in zip(axes[0], slices):
            _draw_slice_panel(ax, sl, vmax_gy, colours)
        fig.subplots_adjust(left=0.06, right=0.88, top=0.90, bottom=0.2, wspace=0.25)
        cax = fig.add_axes((0.905, 0.2, 0.018, 0.7))
        bar = fig.colorbar(ScalarMappable(Normalize(0.0, vmax_gy), WASH_CMAP), cax=cax)
        bar.set_label("dose (Gy), colour wash from "
                      f"{WASH_FLOOR_FRAC * vmax_gy:.1f} Gy; lines = isodoses")
        for level in levels:
            if level <= vmax_gy:
                bar.ax.axhline(level, color=colours[level], linewidth=3)
        handles = [Line2D([], [], color=colours[lv], lw=2.5, label=f"{lv:g} Gy") for lv in levels]
        names = sorted({n for sl in slices for n in sl.outlines}, key=lambda n: list(STRUCTURE_COLOURS).index(n)
                       if n in STRUCTURE_COLOURS else 99)
        handles += [Line2D([], [], color=STRUCTURE_COLOURS.get(n, "white"), lw=1.5, ls="--", label=n) for n in names]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=9, frameon=False,
                   title="isodose lines (solid) and structures (dashed)", title_fontsize=9)
        fig.suptitle(title, fontsize=12)
        return _save(fig, out_path)
    finally:
        plt.close(fig)


INTERVAL_COLOURS = {n: STRUCTURE_COLOURS[n] for n in OUTLINE_STRUCTURES}


def draw_profiles(profiles, out_path, title: str = "", margin_mm: float = 25.0) -> Path:
    """Dose along the AP line for each plan, structure bands, the limit line and the fall-off marks."""
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=_figsize("profile"))
    try:
        first = profiles[0]
        ivs = first.intervals
        near = [iv for iv in ivs if iv.name in ("GTV", "SpinalCord_PRV02", "SpinalCord", "PTV_Eval")]
        lo = min([iv.start_mm for iv in near] + [first.gtv_centre_mm]) - margin_mm
        hi = max([iv.end_mm for iv in near] + [first.gtv_centre_mm]) + margin_mm
        top = max(float(p.dose_gy.max()) for p in profiles) * 1.12
        band_h = top * 0.035
        names = [n for n in INTERVAL_COLOURS if any(iv.name == n for iv in ivs)]
        for row, name in enumerate(names):
            for iv in ivs:
                if iv.name == name:
                    ax.axvspan(iv.start_mm, iv.end_mm, ymin=0, ymax=1, color=INTERVAL_COLOURS[name], alpha=0.08)
                    ax.fill_between([iv.start_mm, iv.end_mm], -band_h * (row + 1), -band_h * row,
                                    color=INTERVAL_COLOURS[name], alpha=0.9, linewidth=0)
            ax.text(hi + 0.5, -band_h * (row + 0.5), name, fontsize=8, va="center", ha="left")
        _shade_not_computed(ax, first)
        limit = first.falloff.limit_gy
        ax.axhline(limit, color="#444444", linestyle=(0, (4, 3)), linewidth=1.2)
        ax.text(lo + 1, limit + top * 0.01, f"cord PRV limit {limit:g} Gy (D0.03cc)", fontsize=9, color="#444444")
        text = []
        for index, p in enumerate(profiles):
            f = p.falloff
            style = plan_linestyle(p.plan, index)
            shown = np.where(p.dose_gy > 0.0, p.dose_gy, np.nan)      # 0 Gy = not computed: a gap
            (line,) = ax.plot(p.positions_mm, shown, linestyle=style, marker="o", markersize=3, linewidth=1.8,
                              label=f"{p.plan}")
            c = line.get_color()
            for pos, frac in ((f.high_point_mm, f.high_frac), (f.low_point_mm, f.low_frac)):
                if pos is not None:
                    ax.plot([pos], [frac * f.reference_dose_gy], marker="D", color=c, markersize=7,
                            markeredgecolor="black")
            if f.limit_crossing_mm is not None:
                ax.plot([f.limit_crossing_mm], [limit], marker="X", color=c, markersize=10, markeredgecolor="black")
            text.append(_falloff_text(p))
        ax.text(0.99, 0.98, "\n\n".join(text), transform=ax.transAxes, va="top", ha="right", fontsize=8.5,
                family="monospace", bbox=dict(boxstyle="round", facecolor="white", alpha=0.9))
        ax.set_xlim(lo, hi + 12)
        ax.set_ylim(-band_h * len(names) - band_h * 0.3, top)
        ax.set_xlabel("y (mm) along the anterior-posterior line   anterior  <->  posterior")
        ax.set_ylabel("dose (Gy)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize=9, title="plan (markers: diamonds 80 % / 20 % of reference, "
                                                        "X = limit crossing)", title_fontsize=8)
        ax.set_title(title or f"dose profile along the AP line x = {first.x_mm:.1f} mm, z = {first.z_mm:.1f} mm")
        fig.tight_layout()
        return _save(fig, out_path)
    finally:
        plt.close(fig)


def _shade_not_computed(ax, profile) -> None:
    """Grey spans where the dose was not computed (0 Gy: outside the influence-matrix rows)."""
    off = profile.dose_gy <= 0.0
    step = float(profile.positions_mm[1] - profile.positions_mm[0])
    edges = np.flatnonzero(np.diff(np.concatenate(([0], off.astype(np.int8), [0]))))
    for n, (first, stop) in enumerate(zip(edges[::2], edges[1::2])):
        ax.axvspan(profile.positions_mm[first] - step / 2, profile.positions_mm[stop - 1] + step / 2,
                   color="#bbbbbb", alpha=0.35, linewidth=0, label="dose not computed" if n == 0 else None)


def _fmt(value, unit: str, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f} {unit}"


def _falloff_text(p) -> str:
    f = p.falloff
    return "\n".join([
        f"{p.plan}: reference {f.reference_label} = {f.reference_dose_gy:.1f} Gy",
        f"  steepest fall-off  {_fmt(f.steepest_gy_per_mm, 'Gy/mm', 2)}",
        f"  80 %->20 % distance {_fmt(f.distance_high_low_mm, 'mm')}",
        f"  {f.limit_gy:g} Gy crossing  {_fmt(f.limit_crossing_mm, 'mm')}",
        f"  to cord PRV edge   {_fmt(f.limit_to_prv_edge_mm, 'mm')}",
    ])


def draw_gradient_maps(maps, out_path, limit_gy: float, line_x_mm: float | None = None, title: str = "") -> Path:
    """|grad D| maps (one per plan, one colour scale) with cord / PRV / GTV outlines and the limit isodose."""
    plt = _pyplot()
    import matplotlib.patheffects as pe
    from matplotlib.lines import Line2D

    import matplotlib

    vmax = max(float(np.nanmax(m.gradient_gy_per_mm)) for m in maps)
    cmap = matplotlib.colormaps["magma"].with_extremes(bad="#9a9a9a")
    fig, axes = plt.subplots(1, len(maps), figsize=_figsize("gradient", len(maps)), squeeze=False)
    try:
        image = None
        for ax, m in zip(axes[0], maps):
            x0, x1 = _edges(m.x_mm)
            y0, y1 = _edges(m.y_mm)
            image = ax.imshow(m.gradient_gy_per_mm.T, cmap=cmap, vmin=0.0, vmax=vmax, origin="lower",
                              extent=(x0, x1, y0, y1), interpolation="nearest")
            for name, mask in m.outlines.items():
                if mask.any() and not mask.all():
                    _outline(ax, m.x_mm, m.y_mm, mask.T, STRUCTURE_COLOURS.get(name, "white"), "-", 1.6)
            for level in levels_in_range(m.dose_gy, (limit_gy,)):
                for seg in isodose_lines(m.x_mm, m.y_mm, m.dose_gy.T, level):
                    ax.plot(seg[:, 0], seg[:, 1], color="white", linewidth=1.4, linestyle=":")
            if line_x_mm is not None:
                ax.axvline(line_x_mm, color="#00e5ff", linewidth=0.9, linestyle=(0, (1, 2)))
            ax.set_xlim(x0, x1)
            ax.set_ylim(y1, y0)            # anterior at the top
            ax.set_aspect("equal")
            ax.set_xlabel("x (mm)   patient right  <->  patient left", fontsize=9)
            ax.set_ylabel("y (mm)   anterior (top)  <->  posterior", fontsize=9)
            s = m.stats
            extra = f", PRV mean {s['prv_mean_gy_per_mm']:.2f}" if "prv_mean_gy_per_mm" in s else ""
            ax.set_title(f"{m.plan}: |grad D| at z = {m.z_mm:.1f} mm\nmax {s['max_gy_per_mm']:.2f}{extra} Gy/mm",
                         fontsize=10)
            style = dict(transform=ax.transAxes, color="white", fontsize=14, fontweight="bold",
                         path_effects=[pe.withStroke(linewidth=2.5, foreground="black")])
            for (tx, ty, label, ha, va) in ((0.015, 0.5, "R", "left", "center"), (0.985, 0.5, "L", "right", "center"),
                                            (0.5, 0.985, "A", "center", "top"), (0.5, 0.015, "P", "center", "bottom")):
                ax.text(tx, ty, label, ha=ha, va=va, **style)
        fig.subplots_adjust(left=0.07, right=0.88, top=0.88, bottom=0.2, wspace=0.25)
        cax = fig.add_axes((0.905, 0.2, 0.018, 0.68))
        fig.colorbar(image, cax=cax).set_label("|grad D| (Gy/mm)")
        names = sorted({n for m in maps for n, mk in m.outlines.items() if mk.any()})
        handles = [Line2D([], [], color=STRUCTURE_COLOURS.get(n, "white"), lw=2, label=n) for n in names]
        handles.append(Line2D([], [], color="black", lw=1.4, ls=":", label=f"{limit_gy:g} Gy isodose (white)"))
        handles.append(Line2D([], [], color="#9a9a9a", lw=8, label="grey: dose not computed"))
        if line_x_mm is not None:
            handles.append(Line2D([], [], color="#00a5bf", lw=1.2, ls=(0, (1, 2)), label="profile line"))
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=9, frameon=False)
        fig.suptitle(title, fontsize=12)
        return _save(fig, out_path)
    finally:
        plt.close(fig)
