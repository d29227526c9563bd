"""Which file names are images: one list for the converters, the tools and the APIs."""
from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Tuple, Union

#: File name endings treated as images (case-insensitive): those of MMPretrain's
#: ``CustomDataset`` plus ``.tiff`` and ``.webp``; OpenCV (the pipeline's decoder) and Pillow
#: decode all of them.
IMAGE_EXTENSIONS: Tuple[str, ...] = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif',
                                     '.tiff', '.webp')


def is_image_name(path: Union[str, 'PathLike[str]']) -> bool:
    """True when ``path`` ends with one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS
