"""Draw a CAM figure: the input image, then one heat-map overlay per explained map."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from .cam import CamResult

#: Panel titles of the explained maps.
PANEL_TITLES: Dict[str, str] = {
    'fused': 'fused map (stage 4)',
    'local': 'local branch (stage 4)',
    'global': 'global branch (stage 4)',
}
METHOD_NAMES: Dict[str, str] = {
    'gradcam': 'Grad-CAM',
    'gradcam++': 'Grad-CAM++',
    'layercam': 'LayerCAM',
    'eigencam': 'EigenCAM',
}


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45,
            colormap: str = 'jet') -> np.ndarray:
    """Blend a ``[H, W]`` map in [0, 1] over an ``[H, W, 3]`` uint8 RGB image; returns uint8."""
    from matplotlib import colormaps

    if image.shape[:2] != cam.shape:
        raise ValueError(f'image {image.shape[:2]} and CAM {cam.shape} differ in size')
    heat = colormaps[colormap](np.clip(cam, 0.0, 1.0))[..., :3]
    blended = (1.0 - alpha) * image.astype(np.float32) / 255.0 + alpha * heat
    return (np.clip(blended, 0.0, 1.0) * 255).round().astype(np.uint8)


def save_cam_figure(path: Path, image: np.ndarray, result: CamResult,
                    classes: Sequence[str], method: str,
                    caption: Optional[str] = None, panel_inches: float = 2.4,
                    dpi: int = 100) -> Path:
    """Write one PNG: the input, then an overlay per map of ``result``.

    Args:
        path: Output PNG (its folder is created).
        image: ``[H, W, 3]`` uint8 RGB input as the model saw it.
        result: The CAMs and the class probabilities.
        classes: Class names.
        method: Key of :data:`METHOD_NAMES`.
        caption: Small text under the title (e.g. the image's file name).
        panel_inches: Width of each panel.
        dpi: Resolution.
    """
    from matplotlib.figure import Figure

    predicted = result.predicted
    probs = result.probabilities
    title = f'predicted: {classes[predicted]} (p = {probs[predicted]:.2f})'
    if result.category != predicted:
        title += f'; CAM for {classes[result.category]} (p = {probs[result.category]:.2f})'
    panels = [('input', image)] + [
        (f'{METHOD_NAMES.get(method, method)}, {PANEL_TITLES.get(name, name)}',
         overlay(image, cam)) for name, cam in result.maps.items()]

    fig = Figure(figsize=(panel_inches * len(panels), panel_inches + 0.7))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (label, picture) in zip(axes[0], panels):
        ax.imshow(picture, interpolation='bilinear')
        ax.set_title(label, fontsize=8)
        ax.axis('off')
    fig.suptitle(title, fontsize=10)
    if caption:
        fig.text(0.5, 0.01, caption, ha='center', va='bottom', fontsize=7, color='0.35')
    fig.tight_layout(rect=(0, 0.04 if caption else 0, 1, 0.95))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
