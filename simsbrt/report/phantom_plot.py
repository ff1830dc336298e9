"""Axial and sagittal slices through the GTV centre: density in greyscale, structures outlined."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from simsbrt.io.atomic import atomic_path

STRUCTURE_COLOURS = {
    "Body": "#7f7f7f", "Vertebrae": "#e6c229", "SpinalCanal": "#17becf", "SpinalCord": "#ffff00",
    "SpinalCord_PRV02": "#ff7f0e", "ThecalSac": "#2ca02c", "GTV": "#d62728", "CTV": "#e377c2",
    "PTV": "#1f77b4", "PTV_Eval": "#9467bd", "Lungs": "#8c564b",
}


ZOOM_HALF_MM = 45.0


def _centre_index(phantom) -> np.ndarray:
    name = "GTV" if not phantom.is_empty("GTV") else "Body"
    return np.round(phantom.grid.world_to_index(phantom.centroid_mm(name))).astype(int)


def plot_phantom(phantom, out_path, *, dpi: int = 110) -> Path:
    """Write a PNG (atomically): axial (whole body and zoomed) and sagittal slices through the GTV centre."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    grid = phantom.grid
    i, j, k = _centre_index(phantom)
    x, y, z = (grid.axis_mm(a) for a in range(3))
    dx, dy, dz = grid.spacing_mm
    cx, cy, _ = grid.index_to_world_mm((i, j, k))
    fig, (ax_axial, ax_zoom, ax_sag) = plt.subplots(1, 3, figsize=(17, 6.5),
                                                    gridspec_kw={"width_ratios": [1.5, 1, 1]})
    vmin, vmax = 0.0, 1.8
    # axial: rows = y (anterior at the top), columns = x (patient right on the left: radiological view)
    for ax in (ax_axial, ax_zoom):
        ax.imshow(phantom.density[:, :, k].T, cmap="gray", vmin=vmin, vmax=vmax, origin="upper",
                  extent=(x[0] - dx / 2, x[-1] + dx / 2, y[-1] + dy / 2, y[0] - dy / 2), interpolation="nearest")
    # sagittal: rows = z (superior at the top), columns = y (anterior on the left)
    ax_sag.imshow(phantom.density[i, :, :].T, cmap="gray", vmin=vmin, vmax=vmax, origin="lower",
                  extent=(y[0] - dy / 2, y[-1] + dy / 2, z[0] - dz / 2, z[-1] + dz / 2), interpolation="nearest")
    handles = []
    for name, mask in phantom.structures.items():
        colour = STRUCTURE_COLOURS.get(name, "#ffffff")
        drawn = False
        for ax, sl, xs, ys in ((ax_axial, mask[:, :, k].T, x, y), (ax_zoom, mask[:, :, k].T, x, y),
                               (ax_sag, mask[i, :, :].T, y, z)):
            if sl.any() and not sl.all():
                ax.contour(xs, ys, sl.astype(float), levels=[0.5], colors=[colour], linewidths=1.0)
                drawn = True
        handles.append(Line2D([], [], color=colour, lw=2,
                              label=f"{name} ({phantom.volume_cc(name):.1f} cm3)" + ("" if drawn else " - not in slice")))
    ax_axial.set_xlim(x[0], x[-1])
    ax_axial.set_ylim(y[-1], y[0])
    ax_axial.set_xlabel("x (mm)   R  <->  L")
    ax_axial.set_ylabel("y (mm)   A (top) <-> P (bottom)")
    ax_axial.set_title(f"axial z = {z[k]:.1f} mm")
    ax_axial.text(0.01, 0.5, "R", transform=ax_axial.transAxes, color="w", fontsize=14, va="center")
    ax_axial.text(0.97, 0.5, "L", transform=ax_axial.transAxes, color="w", fontsize=14, va="center")
    ax_axial.text(0.5, 0.97, "A", transform=ax_axial.transAxes, color="w", fontsize=14, ha="center", va="top")
    ax_axial.text(0.5, 0.01, "P", transform=ax_axial.transAxes, color="w", fontsize=14, ha="center")
    ax_zoom.set_xlim(cx - ZOOM_HALF_MM, cx + ZOOM_HALF_MM)
    ax_zoom.set_ylim(cy + ZOOM_HALF_MM, cy - ZOOM_HALF_MM)
    ax_zoom.set_xlabel("x (mm)   R  <->  L")
    ax_zoom.set_title(f"axial z = {z[k]:.1f} mm (zoom)")
    ax_sag.set_xlim(cy - ZOOM_HALF_MM * 1.5, cy + ZOOM_HALF_MM * 1.5)
    ax_sag.set_xlabel("y (mm)   A  <->  P")
    ax_sag.set_ylabel("z (mm)   I (bottom) <-> S (top)")
    ax_sag.set_title(f"sagittal x = {x[i]:.1f} mm")
    ax_sag.text(0.01, 0.5, "A", transform=ax_sag.transAxes, color="w", fontsize=14, va="center")
    ax_sag.text(0.96, 0.5, "P", transform=ax_sag.transAxes, color="w", fontsize=14, va="center")
    ax_sag.text(0.5, 0.97, "S", transform=ax_sag.transAxes, color="w", fontsize=14, ha="center", va="top")
    ax_sag.text(0.5, 0.01, "I", transform=ax_sag.transAxes, color="w", fontsize=14, ha="center")
    ax_sag.set_aspect("equal")
    ax_zoom.set_aspect("equal")
    ax_axial.set_aspect("equal")
    fig.legend(handles=handles, loc="lower center", ncol=6, fontsize=8, frameon=False)
    fig.suptitle(f"{phantom.spec.name}: {phantom.description()}; grid {grid.shape} at {grid.spacing_mm[0]:g} mm; "
                 "greyscale = relative electron density 0-1.8")
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    out = Path(out_path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return out
