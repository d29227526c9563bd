"""Strict image decoding shared by the training pipeline, the datasets and the inference tools.

What happens to each kind of input (``color_type='color'``, the configs' setting):

==============================  ==============================================================
input                           result
==============================  ==============================================================
8-bit RGB / BGR JPEG, PNG, ...  decoded as is (BGR, uint8)
grayscale                       replicated to 3 channels
RGBA / LA                       alpha dropped (colour values kept as stored, not composited)
16-bit (PNG, TIFF)              reduced to 8 bits by dropping the low byte, as OpenCV does
                                (an image using only 12 of its 16 bits comes out dark:
                                rescale such images beforehand)
palette (indexed) PNG           expanded to its RGB colours
tiny (e.g. 10 x 10 px)          decoded; the pipeline's resize / crop scales it up
more than ``max_pixels``        refused before decoding (default :data:`DEFAULT_MAX_PIXELS`,
                                Pillow's decompression-bomb limit, about 9459 x 9459)
empty (0 bytes)                 refused
truncated JPEG / PNG            refused (no end-of-image marker / IEND chunk, or the decoder
                                fails)
corrupt, or not an image        refused (text and other files named ``*.jpg`` included)
==============================  ==============================================================

A refused file raises :class:`BadImageError`, whose message names the file, says what is
wrong and what to do.
"""
from __future__ import annotations

import io
import re
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Tuple, Union

import cv2
import mmcv
import numpy as np

PathLike = Union[str, Path]
#: Largest image (in pixels) decoded by default: Pillow's decompression-bomb threshold.
DEFAULT_MAX_PIXELS = 89_478_485
_JPEG_MAGIC = b'\xff\xd8\xff'
_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
WHAT_TO_DO = ('Replace or remove the file (`python tools/dataset_converters/prepare_<dataset>.py '
              '--check DATA_ROOT` lists every bad file of a prepared folder), or pass '
              '--skip-bad-images to leave bad images out and list them at the end.')


@contextmanager
def quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own stderr messages about broken files (we report them ourselves)."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


class BadImageError(ValueError):
    """An image file cannot be used; ``str(err)`` names the file and the reason.

    Attributes:
        path: The file.
        reason: What is wrong with it.
    """

    def __init__(self, path: PathLike, reason: Optional[str] = None,
                 hint: str = WHAT_TO_DO) -> None:
        if reason is None:  # rebuilt from its message (e.g. by a dataloader worker)
            self.path, self.reason = '', str(path)
            super().__init__(str(path))
            return
        self.path, self.reason = str(path), reason
        super().__init__(f'{path}: {reason}. {hint}'.rstrip())


def header_pixels(data: bytes) -> Optional[Tuple[int, str]]:
    """``(pixels, 'W x H')`` from the file header (Pillow, no decoding); None if unknown."""
    from PIL import Image
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                return width * height, f'{width} x {height}'
        except Image.DecompressionBombError as err:  # Pillow's own (higher) limit
            found = re.search(r'\((\d+) pixels\)', str(err))
            return (int(found.group(1)), 'per its header') if found else None
        except Exception:  # noqa: BLE001  (unknown to Pillow: OpenCV decides)
            return None


def truncation(data: bytes) -> Optional[str]:
    """Why ``data`` is a truncated JPEG or PNG; None when it is not (or another format)."""
    if data.startswith(_JPEG_MAGIC):
        end, last_scan = data.rfind(b'\xff\xd9'), data.rfind(b'\xff\xda')
        if end < 0 or end < last_scan:
            return (f'not a decodable image ({len(data)} bytes): a truncated JPEG, its image '
                    'data has no end-of-image marker')
    elif data.startswith(_PNG_MAGIC) and data.rfind(b'IEND') < 0:
        return f'not a decodable image ({len(data)} bytes): a truncated PNG, no IEND chunk'
    return None


def _not_decodable(data: bytes) -> str:
    head = data[:16]
    if all(32 <= byte < 127 or byte in (9, 10, 13) for byte in head):
        return f'not a decodable image ({len(data)} bytes): the file holds text ({head!r}...)'
    return (f'not a decodable image ({len(data)} bytes): corrupt, truncated or an unsupported '
            f'format (it starts with {head[:8]!r})')


def to_bgr_uint8(image: np.ndarray) -> np.ndarray:
    """Any decoded image as 3-channel uint8 (16-bit: high byte; gray: replicated; alpha: cut)."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        scale = 255.0 if image.dtype.kind == 'f' and float(np.nanmax(image)) <= 1.0 else 1.0
        image = np.clip(np.nan_to_num(image.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def decode_image_bytes(data: bytes, path: PathLike, color_type: str = 'color',
                       backend: Optional[str] = None,
                       max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image file's bytes as ``CheckedLoadImageFromFile`` does, refusing bad files.

    Args:
        data: The file's bytes.
        path: The file (for messages).
        color_type: mmcv's flag (``'color'``: 3-channel BGR uint8, guaranteed).
        backend: mmcv's decoding backend (None: cv2).
        max_pixels: Refuse larger images before decoding them; None: no limit.

    Raises:
        BadImageError: empty, too large, truncated, corrupt or not an image.
    """
    if not data:
        raise BadImageError(path, 'the file is empty (0 bytes)')
    size = header_pixels(data) if max_pixels is not None else None
    if size is not None and size[0] > max_pixels:
        raise BadImageError(
            path, f'the image has {size[0]} pixels ({size[1]}), more than the limit of '
            f'{max_pixels}', 'Downscale it, or raise the limit with max_pixels=N in the '
            "pipeline's CheckedLoadImageFromFile.")
    reason = truncation(data)
    if reason is not None:
        raise BadImageError(path, reason)
    try:
        image = mmcv.imfrombytes(data, flag=color_type, backend=backend)
    except Exception:  # noqa: BLE001  (decoders raise many types on bad data)
        image = None
    if image is None or image.size == 0:
        raise BadImageError(path, _not_decodable(data))
    return to_bgr_uint8(image) if color_type == 'color' else image


def read_image_file(path: PathLike, color_type: str = 'color', backend: Optional[str] = None,
                    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read and decode a local image file (see :func:`decode_image_bytes`)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise BadImageError(path, 'no such file') from None
    except OSError as err:
        raise BadImageError(path, f'cannot read the file ({err.strerror or err})') from None
    return decode_image_bytes(data, path, color_type, backend, max_pixels)


def image_problem(path: PathLike, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS
                  ) -> Optional[str]:
    """Why ``path`` cannot be used as a training / test image; None when it can."""
    try:
        read_image_file(path, max_pixels=max_pixels)
    except BadImageError as err:
        return err.reason
    return None
