"""A small synthetic "skin lesion" dataset for demos and tests (no downloads, no shipped images).

Each image is a skin-toned, shaded, noisy background with one lesion-like blob at a random
position, size and rotation. The class decides the blob's shape, colour and texture:

=================  ============================================================
class              look
=================  ============================================================
``round-brown``    smooth round/oval blob, even mid-brown
``irregular-dark`` ragged outline, blotchy dark brown to near-black
``red-dotted``     oval red blob sprinkled with small dark-purple dots
``tan-striped``    light tan blob with parallel stripes
=================  ============================================================

The folder follows the layout of the prepared real datasets (see ``configs/_base_/datasets``)::

    <root>/{train,val,test}/<class>/<class>_<i>.png   images
    <root>/masks/{train,val,test}/<class>/<...>.png    lesion masks (0 / 255), same names
    <root>/meta/{train,val,test}.txt                   "train/<class>/<file> <class index>"
    <root>/meta/classes.txt                            one class per line, index order
    <root>/meta/lesions.json                           {image path: {"bbox": [x0, y0, x1, y1],
                                                        "mask": mask path}}, bbox inclusive
    <root>/meta/demo_dataset.json                      generator settings (marks the folder)

Generation is deterministic for a given ``seed`` and sizes.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Dict, Sequence, Tuple, Union

import cv2
import numpy as np

from ..utils.classes_file import format_classes_file
from .splits import CLASSES_TXT, SPLITS

DEMO_CLASSES: Tuple[str, ...] = ('round-brown', 'irregular-dark', 'red-dotted', 'tan-striped')
MARKER = 'meta/demo_dataset.json'
GENERATOR_VERSION = 1

# Lesion colours in RGB.
_BROWN = np.array([120, 75, 45], np.float32)
_DARK = np.array([60, 35, 25], np.float32)
_BLACK = np.array([25, 18, 18], np.float32)
_RED = np.array([190, 40, 55], np.float32)
_PURPLE = np.array([80, 20, 60], np.float32)
_TAN = np.array([200, 160, 110], np.float32)
_TAN_DARK = np.array([150, 110, 70], np.float32)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a coarse random grid upsampled with cubic interpolation."""
    coarse = rng.random((cells, cells)).astype(np.float32)
    fine = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(fine, 0.0, 1.0)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Skin-toned background with soft shading and pixel noise, float32 RGB."""
    tone = np.array([225, 175, 150], np.float32) + rng.normal(0, 12, 3).astype(np.float32)
    shading = 0.85 + 0.25 * _smooth_noise(rng, size, 3)
    img = tone[None, None, :] * shading[..., None]
    return img + rng.normal(0, 4, (size, size, 3)).astype(np.float32)


def _lesion_alpha(rng: np.random.Generator, size: int, label: int,
                  margin: int) -> np.ndarray:
    """Soft lesion mask in [0, 1]: a rotated ellipse whose radius varies with the angle."""
    radius = rng.uniform(0.14, 0.24) * size
    aspect = rng.uniform(0.65, 1.0)
    # Outline: ragged for 'irregular-dark', nearly smooth otherwise.
    irregular = label == 1
    n_harm = 7 if irregular else 2
    amps = rng.uniform(0.08, 0.18, n_harm) if irregular else rng.uniform(0.0, 0.04, n_harm)
    phases = rng.uniform(0, 2 * np.pi, n_harm)
    max_extent = radius * (1 + amps.sum())
    low, high = margin + max_extent, size - 1 - margin - max_extent
    cx, cy = rng.uniform(low, high, 2) if high > low else (size / 2, size / 2)
    angle = rng.uniform(0, np.pi)

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / aspect
    theta = np.arctan2(v, u)
    outline = radius * (1 + sum(a * np.sin((k + 2) * theta + p)
                                for k, (a, p) in enumerate(zip(amps, phases))))
    edge = 1.5 if irregular else 2.5
    return np.clip((outline - np.hypot(u, v)) / edge + 0.5, 0.0, 1.0)


def _lesion_colour(rng: np.random.Generator, size: int, label: int) -> np.ndarray:
    """Per-pixel lesion colour (float32 RGB) carrying the class texture."""
    jitter = rng.normal(0, 8, 3).astype(np.float32)
    if label == 0:  # round-brown: even colour
        colour = np.broadcast_to(_BROWN + jitter, (size, size, 3)).copy()
    elif label == 1:  # irregular-dark: blotches between dark brown and black
        mix = _smooth_noise(rng, size, 6)[..., None]
        colour = _DARK * (1 - mix) + _BLACK * mix + jitter
    elif label == 2:  # red-dotted: red with dark-purple dots (drawn everywhere, seen inside)
        colour = np.broadcast_to(_RED + jitter, (size, size, 3)).copy()
        for _ in range(int(rng.integers(60, 90))):
            x, y = rng.uniform(0, size, 2)
            cv2.circle(colour, (int(x), int(y)), max(1, size // 36),
                       tuple(float(c) for c in _PURPLE), -1)
    else:  # tan-striped: stripes across the blob
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        angle = rng.uniform(0, np.pi)
        period = size / rng.uniform(7, 10)
        phase = xx * np.cos(angle) + yy * np.sin(angle)
        stripes = (0.5 + 0.5 * np.sin(2 * np.pi * phase / period))[..., None]
        colour = _TAN * (1 - stripes) + _TAN_DARK * stripes + jitter
    return colour


def render_sample(rng: np.random.Generator, label: int,
                  image_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Draw one image of class ``label``.

    Returns:
        ``(image, mask)``: uint8 RGB ``[H, W, 3]`` and uint8 mask ``[H, W]`` (255 = lesion).
    """
    margin = max(2, image_size // 12)
    img = _background(rng, image_size)
    alpha = _lesion_alpha(rng, image_size, label, margin)[..., None]
    img = img * (1 - alpha) + _lesion_colour(rng, image_size, label) * alpha
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    mask = (alpha[..., 0] >= 0.5).astype(np.uint8) * 255
    return np.clip(img, 0, 255).astype(np.uint8), mask


def _split_counts(num_per_class: Union[int, Sequence[int]]) -> Dict[str, int]:
    counts = [num_per_class] * len(SPLITS) if isinstance(num_per_class, int) \
        else list(num_per_class)
    if len(counts) != len(SPLITS) or min(counts) < 1:
        raise ValueError(f'num_per_class must be a positive int or {len(SPLITS)} positive '
                         f'ints for {SPLITS}, got {num_per_class!r}')
    return dict(zip(SPLITS, counts))


def _prepare_root(root: Path, force: bool) -> None:
    if root.exists() and any(root.iterdir()):
        if not force:
            raise FileExistsError(f'{root} exists and is not empty; pass force=True to '
                                  'regenerate a demo dataset there')
        if not (root / MARKER).is_file():
            raise FileExistsError(f'{root} is not a demo dataset (no {MARKER}); '
                                  'refusing to delete it even with force=True')
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)


def make_demo_dataset(out_dir: Union[str, Path],
                      num_per_class: Union[int, Sequence[int]] = (60, 20, 20),
                      image_size: int = 72,
                      seed: int = 0,
                      force: bool = False) -> Path:
    """Write the synthetic dataset to ``out_dir`` and return its path.

    Args:
        out_dir: Target folder; must be missing or empty unless ``force``.
        num_per_class: Images per class, one int for every split or ``(train, val, test)``.
        image_size: Side of the square images in pixels.
        seed: Seed of the generator; same arguments give byte-identical files.
        force: Replace an existing demo dataset (only one written by this function).
    """
    root = Path(out_dir)
    counts = _split_counts(num_per_class)
    if image_size < 16:
        raise ValueError(f'image_size must be >= 16, got {image_size}')
    _prepare_root(root, force)

    lesions: Dict[str, dict] = {}
    for split_idx, split in enumerate(SPLITS):
        lines = []
        for label, name in enumerate(DEMO_CLASSES):
            (root / split / name).mkdir(parents=True)
            (root / 'masks' / split / name).mkdir(parents=True)
            for i in range(counts[split]):
                rng = np.random.default_rng([seed, split_idx, label, i])
                image, mask = render_sample(rng, label, image_size)
                rel = f'{split}/{name}/{name}_{i:04d}.png'
                cv2.imwrite(str(root / rel), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
                cv2.imwrite(str(root / 'masks' / rel), mask)
                ys, xs = np.nonzero(mask)
                lesions[rel] = dict(
                    label=label,
                    bbox=[int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())],
                    mask=f'masks/{rel}')
                lines.append(f'{rel} {label}')
        _write_lines(root / 'meta' / f'{split}.txt', lines)
    (root / CLASSES_TXT).write_text(format_classes_file(DEMO_CLASSES))
    (root / 'meta' / 'lesions.json').write_text(json.dumps(lesions, indent=1))
    settings = dict(generator='hifuse_mm.datasets.demo', version=GENERATOR_VERSION, seed=seed,
                    image_size=image_size, num_per_class=counts, classes=list(DEMO_CLASSES))
    (root / MARKER).write_text(json.dumps(settings, indent=1))
    return root


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(f'{line}\n' for line in lines))
