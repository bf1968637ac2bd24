"""A picture of each predicted case: sagittal and coronal reformats through the vertebral bodies, every vertebra
outlined in its grade's colour and labelled, and beside them one block of text per vertebra at its height.

The reformats are curved: each row (a height z) is sampled at the x (sagittal) or y (coronal) of the spine line
interpolated between the vertebra centres, so a scoliotic or lordotic spine still shows every body. They are
sampled straight from the stored CT in the canonical orientation (ITK's LPS world: superior up; anterior left on
the sagittal, the patient's right on the left of the coronal, as radiologists view them), whatever the
orientation the CT was stored in. Centroid-only input has no outlines: each vertebra is marked at its centre.
"""
import textwrap
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import SimpleITK as sitk
from matplotlib import patheffects
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from scipy import ndimage

from vfnet.fileio import atomic_path
from vfnet.labels import GENANT_GRADES, level_name
from vfnet.preprocessing.crop import world_to_index

GRADE_COLOURS = {0: "#1a9850", 1: "#fee08b", 2: "#fc8d59", 3: "#d73027"}   # green, yellow, orange, red
UNGRADED_COLOUR = "#bbbbbb"
WINDOW_HU = (-250.0, 950.0)             # bone window: cancellous bone, endplates and fracture lines visible
MARGIN_MM = {"z": 30.0, "anterior": 55.0, "posterior": 85.0, "lateral": 70.0}
SLAB_MM = 4.0                           # thin-slab average across the plane: less noise, still one plane
MAX_PIXELS_PER_SIDE = 700
TEXT_LINE_MM_PER_INCH = 0.16            # height of one 9-pt text line, in inches
TOP_IN, BOTTOM_IN = 0.85, 0.9           # title and subtitles; legend
NOTE_WIDTH = 46                         # characters per line of a vertebra's notes
OUTLINE = [patheffects.withStroke(linewidth=2.5, foreground="black")]


def write_case_picture(path: Path, image: sitk.Image, mask: sitk.Image | None, rows: Sequence[dict[str, Any]],
                       centres: dict[int, Sequence[float]], title: str, subtitles: Sequence[str] = (),
                       alarm: bool = False, notes: dict[int, list[str]] | None = None) -> Path:
    """Draw the case; `centres` are vertebra centres (x, y, z) in mm, LPS world, keyed by VerSe label.

    `subtitles`: lines under the title (red and bold when `alarm`); `notes`: extra lines per vertebra label."""
    labels = [int(row["vertebra"]) for row in rows if int(row["vertebra"]) in centres]
    points = np.array([centres[label] for label in labels], dtype=float)
    view = _view_box(image, points)
    sagittal_ct, sagittal_mask = _curved_plane(image, mask, points, view, across_axis=0)
    points = _body_centres(points, labels, sagittal_mask, view)
    coronal_ct, coronal_mask = _curved_plane(image, mask, points, view, across_axis=1)

    height_in = float(np.clip((view["z"][1] - view["z"][0]) / 25.0, 5.0, 12.0))
    inch_per_mm = height_in / (view["z"][1] - view["z"][0])
    widths = [(view["y"][1] - view["y"][0]) * inch_per_mm, (view["x"][1] - view["x"][0]) * inch_per_mm, 3.6]
    total_in = height_in + TOP_IN + BOTTOM_IN
    figure = Figure(figsize=(sum(widths) + 0.4, total_in))
    grid = figure.add_gridspec(1, 3, width_ratios=widths, left=0.02, right=0.98, bottom=BOTTOM_IN / total_in,
                               top=1 - TOP_IN / total_in, wspace=0.04)
    sagittal, coronal = figure.add_subplot(grid[0]), figure.add_subplot(grid[1])
    text_axes = figure.add_subplot(grid[2], sharey=sagittal)
    by_label = {int(row["vertebra"]): row for row in rows}
    _panel(sagittal, sagittal_ct, sagittal_mask, view["y"], view["z"], by_label, labels, points[:, [1, 2]], ("A", "P"))
    _panel(coronal, coronal_ct, coronal_mask, view["x"], view["z"], by_label, labels, points[:, [0, 2]], ("R", "L"))
    _text_column(text_axes, [by_label[label] for label in labels], points[:, 2], view["z"], inch_per_mm,
                 [(notes or {}).get(label, []) for label in labels])
    total_in = height_in + TOP_IN + BOTTOM_IN
    figure.suptitle(title, x=0.02, y=1 - 0.12 / total_in, ha="left", va="top", fontsize=12, fontweight="bold")
    for index, line in enumerate(subtitles[:2]):
        figure.text(0.02, 1 - (0.42 + 0.22 * index) / total_in, line, ha="left", va="top", fontsize=9,
                    color="#b2182b" if alarm else "black", fontweight="bold" if alarm else None)
    _legend(figure)
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    return path


def _view_box(image: sitk.Image, points: np.ndarray) -> dict[str, tuple[float, float]]:
    """World (LPS) ranges in mm shown on the panels: the vertebrae plus margins, within the scan."""
    low, high = _scan_bounds(image)
    spine_low, spine_high = points.min(axis=0), points.max(axis=0)
    wanted = {"x": (spine_low[0] - MARGIN_MM["lateral"], spine_high[0] + MARGIN_MM["lateral"]),
              # LPS: y grows towards posterior, so anterior margins go below the centres.
              "y": (spine_low[1] - MARGIN_MM["anterior"], spine_high[1] + MARGIN_MM["posterior"]),
              "z": (spine_low[2] - MARGIN_MM["z"], spine_high[2] + MARGIN_MM["z"])}
    return {axis: (max(wanted[axis][0], low[index]), min(wanted[axis][1], high[index]))
            for index, axis in enumerate("xyz")}


def _scan_bounds(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    size = np.array(image.GetSize(), dtype=float)
    corners = np.array([image.TransformContinuousIndexToPhysicalPoint(tuple(np.where(bits, size - 0.5, -0.5)))
                        for bits in np.ndindex(2, 2, 2)])
    return corners.min(axis=0), corners.max(axis=0)


def _curved_plane(image: sitk.Image, mask: sitk.Image | None, points: np.ndarray,
                  view: dict[str, tuple[float, float]], across_axis: int) -> tuple[np.ndarray, np.ndarray | None]:
    """CT (thin-slab mean) and mask on the curved plane; rows run from inferior to superior.

    across_axis 0: sagittal (columns = y, plane at the spine's x(z)); 1: coronal (columns = x, at its y(z)).
    """
    along = 1 - across_axis                      # the world axis the columns run along (y, or x)
    names = "xyz"
    extent = max(view[names[along]][1] - view[names[along]][0], view["z"][1] - view["z"][0])
    step = max(min(image.GetSpacing()), extent / MAX_PIXELS_PER_SIDE, 0.5)
    z = _pixel_centres(view["z"], step)
    columns = _pixel_centres(view[names[along]], step)
    order = np.argsort(points[:, 2])
    line = np.interp(z, points[order, 2], points[order, across_axis])   # constant beyond the end vertebrae
    world = np.zeros((len(z), len(columns), 3))
    world[..., 2] = z[:, None]
    world[..., along] = columns[None, :]
    world[..., across_axis] = line[:, None]
    offsets = np.linspace(-SLAB_MM / 2, SLAB_MM / 2, 5)
    ct = np.mean([_sample(image, world + _unit(across_axis) * offset, order=1, outside=-1024.0)
                  for offset in offsets], axis=0)
    labels = _sample(mask, world, order=0, outside=0.0).astype(np.int32) if mask is not None else None
    return ct, labels


def _body_centres(points: np.ndarray, labels: list[int], sagittal_mask: np.ndarray | None,
                  view: dict[str, tuple[float, float]]) -> np.ndarray:
    """Move each centre (y, z) to its vertebral body: a mask's centre of mass lies behind the body, among the
    posterior elements, and a coronal plane through it would miss the bodies. On the mid-sagittal plane the
    body is the vertebra's most anterior large piece (a cut vertebra's spinous process can be its largest)."""
    if sagittal_mask is None:
        return points   # centroids (VerSe convention) already mark the body
    points = points.copy()
    rows = np.linspace(*view["z"], sagittal_mask.shape[0])
    columns = np.linspace(*view["y"], sagittal_mask.shape[1])
    for index, label in enumerate(labels):
        pieces, count = ndimage.label(sagittal_mask == label)
        if count:
            sizes = ndimage.sum_labels(np.ones_like(pieces), pieces, range(1, count + 1))
            centres = ndimage.center_of_mass(np.ones_like(pieces), pieces, range(1, count + 1))
            large = [index for index in range(count) if sizes[index] >= 0.25 * sizes.max()]
            row, column = centres[min(large, key=lambda index: centres[index][1])]   # smallest y: anterior
            points[index, 1] = np.interp(column, np.arange(len(columns)), columns)
            points[index, 2] = np.interp(row, np.arange(len(rows)), rows)
    return points


def _pixel_centres(limits: tuple[float, float], step: float) -> np.ndarray:
    """Pixel centres from the first limit to the last, about `step` apart (the same grid as np.linspace(*limits))."""
    return np.linspace(limits[0], limits[1], max(2, int(round((limits[1] - limits[0]) / step)) + 1))


def _unit(axis: int) -> np.ndarray:
    vector = np.zeros(3)
    vector[axis] = 1.0
    return vector


def _sample(image: sitk.Image, world: np.ndarray, order: int, outside: float) -> np.ndarray:
    """Values of `image` at world points (..., 3) (x, y, z mm), interpolated; `outside` beyond the scan."""
    index = world_to_index(image, world.reshape(-1, 3))                              # (i, j, k)
    array = sitk.GetArrayViewFromImage(image)                                       # [k, j, i]
    values = ndimage.map_coordinates(array, index[:, ::-1].T, order=order, mode="constant", cval=outside,
                                     prefilter=False)
    return values.reshape(world.shape[:-1])


def _panel(axes, ct: np.ndarray, labels: np.ndarray | None, columns: tuple[float, float], rows: tuple[float, float],
           by_label: dict[int, dict[str, Any]], order: list[int], centres: np.ndarray, sides: tuple[str, str]) -> None:
    """One reformat; `centres` (column mm, z mm) per vertebra of `order` mark those without an outline."""
    column_mm, row_mm = np.linspace(*columns, ct.shape[1]), np.linspace(*rows, ct.shape[0])
    half_column, half_row = (column_mm[1] - column_mm[0]) / 2, (row_mm[1] - row_mm[0]) / 2   # pixel edges
    axes.imshow(ct, cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1], origin="lower", interpolation="bilinear",
                extent=(columns[0] - half_column, columns[1] + half_column, rows[0] - half_row, rows[1] + half_row),
                aspect="equal")
    for index, label in enumerate(order):
        row = by_label[label]
        colour = GRADE_COLOURS.get(int(row["grade"]), "white")
        flagged = bool(row.get("review"))
        style = "--" if row.get("cut_by_field_of_view") else "-"
        if labels is not None and (labels == label).any():
            axes.contour(column_mm, row_mm, (labels == label).astype(float), levels=[0.5], colors=[colour],
                         linewidths=3.0 if flagged else 1.6, linestyles=style)
            inside = np.argwhere(labels == label)
            z_text = float(row_mm[int(np.median(inside[:, 0]))])
            left = float(column_mm[inside[:, 1].min()])
        else:  # centroid input, or a vertebra missing from this plane: mark its centre
            left, z_text = float(centres[index][0]) - 4.0, float(centres[index][1])
            axes.plot(*centres[index], "o", color=colour, markersize=8, markeredgecolor="black")
        axes.text(max(left - 3.0, columns[0] + 1.0), z_text, row["level"], color="white", fontsize=9,
                  fontweight="bold", ha="right", va="center", path_effects=OUTLINE, clip_on=True)
    if labels is not None:
        _ungraded(axes, labels, set(order), column_mm, row_mm, columns)
    for x, text, alignment in ((0.01, sides[0], "left"), (0.99, sides[1], "right")):
        axes.text(x, 0.99, text, transform=axes.transAxes, color="yellow", fontsize=11, fontweight="bold",
                  ha=alignment, va="top", path_effects=OUTLINE)
    _scale_bar(axes, columns, rows)
    axes.set_xlim(columns)
    axes.set_ylim(rows)
    axes.set_xticks([])
    axes.set_yticks([])


def _ungraded(axes, labels: np.ndarray, graded: set[int], column_mm: np.ndarray, row_mm: np.ndarray,
              columns: tuple[float, float]) -> None:
    """Mask labels in view that were not graded (S1, a level the model never saw): grey, so no one reads a grade."""
    for label in sorted(set(np.unique(labels).tolist()) - graded - {0}):
        inside = np.argwhere(labels == label)
        axes.contour(column_mm, row_mm, (labels == label).astype(float), levels=[0.5], colors=[UNGRADED_COLOUR],
                     linewidths=1.0, linestyles=":")
        axes.text(max(float(column_mm[inside[:, 1].min()]) - 3.0, columns[0] + 1.0),
                  float(row_mm[int(np.median(inside[:, 0]))]), f"{level_name(label)} (not graded)",
                  color=UNGRADED_COLOUR, fontsize=8, ha="right", va="center", path_effects=OUTLINE, clip_on=True)


def _scale_bar(axes, columns: tuple[float, float], rows: tuple[float, float]) -> None:
    start_x, y = columns[1] - 55.0, rows[0] + 6.0   # bottom right: behind the spine, or beside it
    axes.plot([start_x, start_x + 50.0], [y, y], color="white", linewidth=3, path_effects=OUTLINE)
    axes.text(start_x + 25.0, y + 3.0, "5 cm", color="white", fontsize=8, ha="center", va="bottom",
              path_effects=OUTLINE)


def _text_column(axes, rows: list[dict[str, Any]], z_centres: np.ndarray, z_range: tuple[float, float],
                 inch_per_mm: float, notes: list[list[str]]) -> None:
    """One block per vertebra at its height, pushed apart where blocks would overlap, with a leader line."""
    axes.set_xlim(0, 1)
    axes.axis("off")
    blocks = [_block(row, note) for row, note in zip(rows, notes)]
    order = np.argsort(-z_centres)                      # top (superior) first
    placed: dict[int, float] = {}
    floor = z_range[1] + 1e9
    for index in order:
        height_mm = len(blocks[index][1]) * TEXT_LINE_MM_PER_INCH / inch_per_mm
        top = min(z_centres[index] + height_mm / 2, floor)
        placed[index] = top
        floor = top - height_mm - 1.0
    for index, (colour, lines) in enumerate(blocks):
        top = placed[index]
        axes.plot([0.0, 0.05], [z_centres[index], top - 0.4 * TEXT_LINE_MM_PER_INCH / inch_per_mm],
                  color="#666666", linewidth=0.8, clip_on=False)
        axes.text(0.07, top, lines[0], color="black", fontsize=10, fontweight="bold", va="top", ha="left",
                  bbox={"facecolor": colour, "edgecolor": "none", "boxstyle": "round,pad=0.15"})
        if len(lines) > 1:
            axes.text(0.07, top - 1.15 * TEXT_LINE_MM_PER_INCH / inch_per_mm, "\n".join(lines[1:]), fontsize=8.5,
                      va="top", ha="left", linespacing=1.25)


def _block(row: dict[str, Any], notes: list[str]) -> tuple[str, list[str]]:
    grade = int(row["grade"])
    lines = [f"{row['level']}  grade {grade} {GENANT_GRADES.get(grade, '?')}",
             f"p(fracture) {float(row['p_fracture']):.2f}   heights A/M/P {_heights(row)}"]
    flags = []
    if row.get("cut_by_field_of_view"):
        flags.append("CUT by field of view: grade unreliable")
    if row.get("review"):
        flags.append(f"REVIEW: {row['review']}" if isinstance(row["review"], str) else "REVIEW")
    flags += textwrap.wrap("outside training: " + "; ".join(notes), NOTE_WIDTH) if notes else []
    return GRADE_COLOURS.get(grade, "white"), lines + flags


def _heights(row: dict[str, Any]) -> str:
    values = [row.get(key) for key in ("anterior_mm", "middle_mm", "posterior_mm")]
    if all(value is None for value in values):
        return "not measured"
    return " / ".join("-" if value is None else f"{float(value):.0f}" for value in values) + " mm"


def _legend(figure: Figure) -> None:
    handles = [Line2D([], [], color=GRADE_COLOURS[g], linewidth=4, label=f"{g} {name}")
               for g, name in GENANT_GRADES.items()]
    handles += [Line2D([], [], color="grey", linestyle="--", linewidth=1.6, label="cut by field of view"),
                Line2D([], [], color="grey", linewidth=3.0, label="flagged for review"),
                Line2D([], [], color=UNGRADED_COLOUR, linestyle=":", linewidth=1.0, label="not graded")]
    figure.legend(handles=handles, loc="lower left", ncol=len(handles), fontsize=9, frameon=False,
                  bbox_to_anchor=(0.01, 0.0), title="grade (outline colour)     A/M/P = anterior/middle/posterior "
                  "body height", title_fontsize=9, alignment="left")
