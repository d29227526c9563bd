"""Image integrity checks of a split: missing files, undecodable images, the same bytes twice.

Every image is read once: its bytes are hashed (SHA-256), checked before decoding as the
training pipeline checks them (:func:`~hifuse_mm.datasets.image_decoding.check_image_bytes`: the
pixel limit ``max_pixels``, default the pipeline's, for every format; truncated JPEGs and PNGs)
and decoded with OpenCV, the library the training pipeline loads images with, watching for
libjpeg's "Corrupt JPEG data" warnings as the pipeline does
(:func:`~hifuse_mm.datasets.image_decoding.jpeg_damage_watch`). So the converters and
``--check`` accept exactly the images ``CheckedLoadImageFromFile`` accepts. JPEGs are decoded at
1/8 scale (``IMREAD_REDUCED_GRAYSCALE_8``: libjpeg skips most of the work but still reads every
block), in a thread pool (OpenCV releases the GIL; JPEG decodes take turns, one per process at
a time, so that libjpeg's warnings can be told apart), so checking ISIC2018's 10015 images takes
well under a minute on a few cores.
"""
from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..image_decoding import (DEFAULT_MAX_PIXELS, BadImageError, check_image_bytes,
                              jpeg_damage_reason, jpeg_damage_watch, quiet_opencv)

OK, MISSING, UNREADABLE = 'ok', 'missing', 'unreadable'


@dataclass(frozen=True)
class ImageStatus:
    """What :func:`inspect_images` found for one file.

    Attributes:
        state: ``'ok'``, ``'missing'`` or ``'unreadable'``.
        sha256: Hex digest of the file's bytes (``None`` when it could not be read).
        detail: Why it is missing or unreadable.
    """
    state: str
    sha256: Optional[str] = None
    detail: str = ''


def inspect_image(path: Path, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> ImageStatus:
    """Read, hash, check and decode one image, as the training pipeline would.

    Args:
        path: The image file.
        max_pixels: The pixel limit (the pipeline's default; None: no limit).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return ImageStatus(MISSING, detail='no such file')
    except OSError as err:
        return ImageStatus(UNREADABLE, detail=f'cannot read: {err.strerror or err}')
    digest = hashlib.sha256(data).hexdigest()
    if not data:
        return ImageStatus(UNREADABLE, digest, 'empty file')
    try:
        check_image_bytes(data, path, max_pixels)
    except BadImageError as err:
        return ImageStatus(UNREADABLE, digest, err.reason)
    buffer = np.frombuffer(data, np.uint8)
    reason = 'OpenCV cannot decode it (corrupt, truncated or not an image)'
    with jpeg_damage_watch(data) as damage:
        try:
            image = cv2.imdecode(buffer, cv2.IMREAD_REDUCED_GRAYSCALE_8)
        except cv2.error:
            # Images under 8 px cannot be reduced 8x: decode them at full size.
            try:
                image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
            except cv2.error as err:
                image, reason = None, f'OpenCV: {str(err).strip().splitlines()[-1]}'
    if image is None or image.size == 0:
        return ImageStatus(UNREADABLE, digest, reason)
    if damage:
        return ImageStatus(UNREADABLE, digest, jpeg_damage_reason(data, damage))
    return ImageStatus(OK, digest)


def inspect_images(paths: Sequence[Path], workers: Optional[int] = None,
                   max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> Dict[Path, ImageStatus]:
    """:func:`inspect_image` for every path (unique paths, any order), in a thread pool."""
    unique = sorted(set(paths))
    workers = workers or min(8, os.cpu_count() or 1)
    with quiet_opencv(), ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(unique, pool.map(lambda path: inspect_image(path, max_pixels),
                                         unique)))


def duplicate_groups(hashes: Mapping[str, Optional[str]]) -> List[List[str]]:
    """Groups (sorted, of two or more) of names whose files have the same bytes.

    Args:
        hashes: name (e.g. the path in the index) -> SHA-256 (``None`` entries are skipped).
    """
    by_hash: Dict[str, List[str]] = defaultdict(list)
    for name, digest in hashes.items():
        if digest is not None:
            by_hash[digest].append(name)
    return sorted(sorted(names) for names in by_hash.values() if len(names) > 1)


def split_leaks(groups: Sequence[Sequence[str]],
                split_of: Mapping[str, str]) -> Tuple[List[List[str]], List[List[str]]]:
    """Sort duplicate groups into leaks (the same bytes in two splits) and harmless ones.

    Args:
        groups: From :func:`duplicate_groups`.
        split_of: name -> split name (names missing from it are ignored).
    Returns:
        ``(leaking, within_one_split)``.
    """
    leaking, within = [], []
    for group in groups:
        names = [name for name in group if name in split_of]
        if len(names) < 2:
            continue
        (leaking if len({split_of[n] for n in names}) > 1 else within).append(names)
    return leaking, within
