"""``CheckedLoadImageFromFile``: ``LoadImageFromFile`` with clear errors for bad files and a
guaranteed 8-bit BGR result.

Registered in MMPretrain's ``TRANSFORMS`` under its own name (MMPretrain's
``LoadImageFromFile`` stays mmcv's); the pipelines of our configs
(``configs/_base_/datasets/medical_224px.py``) use it. Same arguments and outputs as mmcv's
transform, plus ``max_pixels``; the difference is what happens with a bad file (see
:mod:`hifuse_mm.datasets.image_decoding`): mmcv raises a bare ``AssertionError`` or an OpenCV
error that does not name the file (zero-byte files), and may decode a truncated file; this one
raises :class:`~hifuse_mm.datasets.image_decoding.BadImageError` naming the file, the reason
and what to do. ``ignore_empty=True`` still returns None for a bad file, as in mmcv.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
from mmcv.transforms import LoadImageFromFile as MMCVLoadImageFromFile
from mmengine import fileio
from mmpretrain.registry import TRANSFORMS

from .image_decoding import DEFAULT_MAX_PIXELS, BadImageError, decode_image_bytes


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(MMCVLoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` that refuses bad files with a message naming them.

    Args:
        max_pixels: Refuse images with more pixels, before decoding (None: no limit).
        *args, **kwargs: mmcv's arguments (``to_float32``, ``color_type``,
            ``imdecode_backend``, ``ignore_empty``, ``backend_args``...).
    """

    def __init__(self, *args: Any, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_pixels = max_pixels

    def _read(self, filename: str) -> bytes:
        try:
            if self.file_client_args is not None:
                client = fileio.FileClient.infer_client(self.file_client_args, filename)
                return client.get(filename)
            return fileio.get(filename, backend_args=self.backend_args)
        except FileNotFoundError:
            raise BadImageError(filename, 'no such file') from None
        except OSError as err:
            raise BadImageError(filename, f'cannot read the file ({err})') from None

    def transform(self, results: dict) -> Optional[dict]:
        filename = results['img_path']
        try:
            image = decode_image_bytes(self._read(filename), filename, self.color_type,
                                       self.imdecode_backend, self.max_pixels)
        except BadImageError:
            if self.ignore_empty:
                return None
            raise
        if self.to_float32:
            image = image.astype(np.float32)
        results['img'] = image
        results['img_shape'] = image.shape[:2]
        results['ori_shape'] = image.shape[:2]
        return results
