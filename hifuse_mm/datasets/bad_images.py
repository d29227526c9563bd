"""Finding the bad images of a split, for ``--skip-bad-images`` (``skip_bad_images=True``).

By default a bad image stops the run when the pipeline reaches it, with a message naming the
file (:class:`~hifuse_mm.datasets.image_decoding.BadImageError`), and a listed file that does
not exist stops it when the dataset is built. With ``skip_bad_images=True`` the dataset checks
every listed image once when it is built (exists, and decodes as the pipeline would), leaves the
bad ones out and keeps them in :attr:`MedicalImageDataset.skipped_images`;
:class:`~hifuse_mm.engine.hooks.BadImageReportHook` lists them all at the end of the run.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from .image_decoding import DEFAULT_MAX_PIXELS, image_problem, quiet_opencv


@dataclass(frozen=True)
class SkippedImage:
    """An image left out of a split, and why.

    Attributes:
        path: The image file.
        reason: What is wrong with it.
        source: The split list that named it.
    """

    path: str
    reason: str
    source: str


def find_bad_images(paths: Sequence[str], max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                    workers: Optional[int] = None) -> Dict[str, str]:
    """``{path: reason}`` for every path that cannot be used (missing, empty, corrupt, ...)."""
    unique = sorted(set(paths))
    workers = workers or min(8, os.cpu_count() or 1)
    with quiet_opencv(), ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = pool.map(lambda path: image_problem(path, max_pixels), unique)
        return {path: reason for path, reason in zip(unique, reasons) if reason is not None}


def format_skipped(skipped: Sequence[SkippedImage]) -> List[str]:
    """One line per skipped image: ``path: reason (listed in source)``."""
    return [f'{item.path}: {item.reason} (listed in {item.source})' for item in skipped]
