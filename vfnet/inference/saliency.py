"""Saliency on request: where in its crop the fold ensemble saw the fracture (Grad-CAM, Selvaraju et al. 2017).

The score explained is the fracture log-odds, log(p1 + p2 + p3) - log(p0), the quantity behind p(fracture). The
map is taken at the deepest encoder block that still has at least `MIN_CELLS` cells along every axis: the last
block is too coarse for a vertebral body (2 × 4 × 3 cells for the CPU plan's crop), the earliest ones respond to
edges rather than to the grade. Each fold's map is scaled to its maximum and the folds are averaged; the saved
picture is the mid-sagittal slice of the crop (through the vertebra's centre of mass, anterior on the left).
"""
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import patheffects
from matplotlib.figure import Figure

from vfnet.fileio import atomic_path
from vfnet.labels import GENANT_GRADES

MIN_CELLS = 4


def network_logits(model: torch.nn.Module, crops: torch.Tensor, morphometry: torch.Tensor | None) -> torch.Tensor:
    """The one call of the network here (a change to its inputs is a change to this line only).

    `morphometry`: the morphometric branch's inputs (B, 2F), exactly as the prediction gave them, so the score
    explained is the one that graded the vertebra; None for a plan without the branch."""
    return model(crops, morphometry)["logits"]


def fracture_log_odds(logits: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(logits[:, 1:], dim=1) - logits[:, 0]


def explained_block(model: torch.nn.Module, crop_shape: Sequence[int],
                    morphometry: np.ndarray | None = None) -> tuple[str, torch.nn.Module]:
    """(name, module) of the deepest encoder block whose output has >= MIN_CELLS cells along every axis."""
    blocks = list(model.encoder.named_children()) if hasattr(model, "encoder") else []
    if not blocks:
        raise ValueError("Grad-CAM needs a network with an `encoder` of blocks.")
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [module.register_forward_hook(lambda _m, _i, out, name=name: shapes.__setitem__(name, out.shape[2:]))
             for name, module in blocks]
    try:
        with torch.no_grad():
            network_logits(model, torch.zeros((1, *crop_shape), device=_device(model)),
                           _tensor(morphometry, model))
    finally:
        for hook in hooks:
            hook.remove()
    chosen = blocks[0]
    for name, module in blocks:
        if min(shapes[name]) >= MIN_CELLS:
            chosen = (name, module)
    return f"encoder.{chosen[0]}", chosen[1]


def grad_cam(model: torch.nn.Module, crop: np.ndarray, morphometry: np.ndarray | None = None) -> np.ndarray:
    """Grad-CAM of the fracture log-odds for one crop (C, Z, Y, X): (Z, Y, X), >= 0, upsampled to the crop.

    `morphometry`: this vertebra's (2F,) morphometric inputs, or None."""
    model.eval()
    _, block = explained_block(model, crop.shape, morphometry)
    captured: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output):
        output.retain_grad()
        captured["activation"] = output

    hook = block.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            inputs = torch.from_numpy(np.ascontiguousarray(crop[None], dtype=np.float32)).to(_device(model))
            model.zero_grad(set_to_none=True)
            fracture_log_odds(network_logits(model, inputs, _tensor(morphometry, model))).sum().backward()
    finally:
        hook.remove()
    activation = captured["activation"]
    weights = activation.grad.mean(dim=(2, 3, 4), keepdim=True)
    cam = F.relu((weights * activation).sum(dim=1, keepdim=True)).detach().float()
    cam = F.interpolate(cam, size=tuple(crop.shape[1:]), mode="trilinear", align_corners=False)
    model.zero_grad(set_to_none=True)
    return cam[0, 0].cpu().numpy()


def ensemble_grad_cam(models: Sequence[torch.nn.Module], crop: np.ndarray,
                      morphometry: np.ndarray | None = None) -> np.ndarray:
    """Mean over folds of each fold's map scaled to its maximum (a fold with no fracture evidence adds zeros)."""
    maps = []
    for model in models:
        cam = grad_cam(model, crop, morphometry)
        maps.append(cam / cam.max() if cam.max() > 0 else cam)
    return np.mean(maps, axis=0)


def mid_sagittal_index(crop: np.ndarray) -> int:
    """The x index through the target vertebra's centre of mass (the crop's middle when the mask is empty)."""
    mask = crop[-1] > 0.5
    if not mask.any():
        return crop.shape[-1] // 2
    return int(round(float(np.nonzero(mask)[2].mean())))


def write_saliency_picture(path: Path, crop: np.ndarray, cam: np.ndarray, spacing: Sequence[float],
                           row: dict[str, Any], note: str) -> Path:
    """Mid-sagittal CT slice of the crop with the map over it and the vertebra outlined; anterior on the left."""
    x = mid_sagittal_index(crop)
    ct, saliency, mask = crop[0, :, :, x], cam[:, :, x], crop[-1, :, :, x] > 0.5
    extent = (0.0, crop.shape[2] * spacing[1], 0.0, crop.shape[1] * spacing[0])
    figure = Figure(figsize=(5.2, 5.2 * crop.shape[1] * spacing[0] / (crop.shape[2] * spacing[1]) + 0.9))
    axes = figure.add_subplot()
    axes.imshow(ct, cmap="gray", origin="lower", extent=extent, interpolation="bilinear")
    shown = axes.imshow(np.ma.masked_less(saliency, 0.05 * max(float(saliency.max()), 1e-12)), cmap="inferno",
                        alpha=0.55, origin="lower", extent=extent, interpolation="bilinear", vmin=0.0)
    if mask.any():
        axes.contour(np.linspace(extent[0], extent[1], mask.shape[1]), np.linspace(extent[2], extent[3], mask.shape[0]),
                     mask.astype(float), levels=[0.5], colors=["#00e5ff"], linewidths=1.2)
    outline = [patheffects.withStroke(linewidth=2.5, foreground="black")]
    for position, text, alignment in ((0.02, "A", "left"), (0.98, "P", "right")):
        axes.text(position, 0.98, text, transform=axes.transAxes, color="yellow", fontweight="bold", ha=alignment,
                  va="top", path_effects=outline)
    axes.set_xticks([])
    axes.set_yticks([])
    figure.colorbar(shown, ax=axes, fraction=0.04, label="Grad-CAM, mean of folds (1 = peak in every fold)")
    grade = int(row["grade"])
    axes.set_title(f"{row['case']} {row['level']}: grade {grade} {GENANT_GRADES.get(grade, '?')}, "
                   f"p(fracture) {float(row['p_fracture']):.2f}", fontsize=10)
    figure.text(0.01, 0.01, note, fontsize=7.5, ha="left", va="bottom", wrap=True)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    with atomic_path(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    return path


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _tensor(morphometry: np.ndarray | None, model: torch.nn.Module) -> torch.Tensor | None:
    if morphometry is None:
        return None
    return torch.from_numpy(np.asarray(morphometry, dtype=np.float32).reshape(1, -1)).to(_device(model))
