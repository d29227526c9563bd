"""Finding and decoding the images a user points a tool at.

Decoding uses :func:`hifuse_mm.datasets.decode_image_bytes`, the function behind the configs'
``CheckedLoadImageFromFile`` (:mod:`hifuse_mm.datasets.loading`), so an image read here reaches the
model exactly as it does during ``tools/test.py``, and a truncated or oversized file is refused
the same way.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np

from ..datasets.image_decoding import BadImageError, decode_image_bytes
from ..utils.image_files import IMAGE_EXTENSIONS, is_image_name

__all__ = ['IMAGE_EXTENSIONS', 'ImageReadError', 'PathLike', 'find_images', 'is_image_name',
           'read_image']

PathLike = Union[str, Path]


class ImageReadError(ValueError):
    """An input file could not be decoded as an image; the message names the file."""


def find_images(source: PathLike) -> Tuple[List[Path], List[Path]]:
    """List the images under ``source``.

    Args:
        source: An image file (taken as is, whatever its name) or a folder, searched
            recursively; hidden files and folders (names starting with ``.``) are left out.

    Returns:
        ``(images, skipped)``: the image files in sorted order, and the other files of a folder
        (names without an image ending), which are not read.

    Raises:
        FileNotFoundError: ``source`` does not exist.
    """
    source = Path(source)
    if source.is_file():
        return [source], []
    if not source.is_dir():
        raise FileNotFoundError(f'{source}: no such file or folder; pass an image or a folder '
                                'of images')
    images: List[Path] = []
    skipped: List[Path] = []
    for path in sorted(source.rglob('*')):
        if not path.is_file() or any(part.startswith('.')
                                     for part in path.relative_to(source).parts):
            continue
        (images if is_image_name(path) else skipped).append(path)
    return images, skipped


def read_image(path: PathLike, color_type: str = 'color',
               backend: Optional[str] = None) -> np.ndarray:
    """Read one image file as ``LoadImageFromFile`` would (BGR uint8).

    Args:
        path: Image file.
        color_type: ``LoadImageFromFile``'s ``color_type`` (``'color'``, ``'grayscale'``, ...).
        backend: ``LoadImageFromFile``'s ``imdecode_backend`` (None: mmcv's default, cv2).

    Raises:
        ImageReadError: the file is missing, unreadable, empty or not a decodable image.
    """
    path = Path(path)
    try:
        content = path.read_bytes()
    except OSError as err:
        raise ImageReadError(f'{path}: cannot read the file ({err.strerror or err})') from err
    if not content:
        raise ImageReadError(f'{path}: the file is empty')
    try:
        return decode_image_bytes(content, path, color_type, backend)
    except BadImageError as err:
        raise ImageReadError(f'{path}: {err.reason}') from err
