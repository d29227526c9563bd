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
                                Pillow's decompression-bomb limit, about 9459 x 9459), whatever
                                the format
size unknown before decoding    refused while ``max_pixels`` is set: the size is read from the
                                header (Pillow, which decodes nothing; TIFFs it cannot open: the
                                first IFD), so formats only OpenCV reads (Radiance HDR, PAM,
                                colour PFM, OpenEXR, JPEG XL) are refused, whatever the file's
                                name; ``max_pixels=None`` decodes them unchecked
empty (0 bytes)                 refused
truncated JPEG / PNG            refused (no end-of-image marker / IEND chunk, or the decoder
                                fails)
JPEG with corrupt data          refused as a truncated one is: libjpeg's "Corrupt JPEG data"
                                (premature end of data segment, extraneous bytes, bad Huffman
                                code, ...) and "Premature end of JPEG file" warnings, which
                                OpenCV prints and otherwise ignores (it returns an image with
                                the lost part grey)
corrupt, or not an image        refused (text and other files named ``*.jpg`` included)
==============================  ==============================================================

A refused file raises :class:`BadImageError`, whose message names the file, says what is
wrong and what to do. :func:`check_image_bytes` (the checks before decoding) and
:func:`jpeg_damage_watch` (the check while decoding) are shared with the dataset converters'
image check (:mod:`hifuse_mm.datasets.prepare.imagecheck`), so ``prepare_*.py`` and
``--check`` accept exactly the images the pipeline and ``tools/infer.py`` accept.

The JPEG data check reads libjpeg's warnings from the process's standard error (file
descriptor 2, where libjpeg prints them): while OpenCV decodes a JPEG, fd 2 is pointed at a
temporary file (one JPEG decode at a time per process; anything else written to stderr meanwhile
is passed on). It applies to OpenCV decoding (the default and the configs' ``imdecode_backend``);
Pillow's and turbojpeg's decoders keep such warnings to themselves.
"""
from __future__ import annotations

import io
import os
import re
import struct
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Union

import cv2
import mmcv
import numpy as np

PathLike = Union[str, Path]
#: Largest image (in pixels) decoded by default: Pillow's decompression-bomb threshold.
DEFAULT_MAX_PIXELS = 89_478_485
_JPEG_MAGIC = b'\xff\xd8\xff'
_PNG_MAGIC = b'\x89PNG\r\n\x1a\n'
_TIFF_MAGICS = (b'II*\x00', b'MM\x00*', b'II+\x00', b'MM\x00+')
#: Formats (Pillow's names) decoded with OpenCV once their size is known: OpenCV picks its
#: decoder by the same leading bytes as Pillow, so the size Pillow reads from the header is the
#: size OpenCV decodes (a file cannot pass as a small image of one format and decode as a huge
#: one of another).
SIZE_CHECKED_FORMATS = frozenset({'JPEG', 'MPO', 'PNG', 'BMP', 'PPM', 'TIFF', 'WEBP',
                                  'JPEG2000', 'SUN', 'GIF', 'AVIF'})
#: Formats OpenCV decodes whose size Pillow cannot read: refused while a pixel limit is set.
_OPENCV_ONLY_FORMATS = ((b'#?RADIANCE', 'a Radiance HDR image'),
                        (b'#?RGBE', 'a Radiance HDR image'), (b'P7', 'a PAM image'),
                        (b'PF', 'a colour PFM image'), (b'v/1\x01', 'an OpenEXR image'),
                        (b'\xff\x0a', 'a JPEG XL image'),
                        (b'\x00\x00\x00\x0cJXL ', 'a JPEG XL image'))
#: libjpeg warnings that mean the compressed image data is damaged (the decoder then fills the
#: rest of the image with grey); other warnings (an unknown JFIF version, a bad ICC profile)
#: leave the pixels intact.
_JPEG_DAMAGE = ('Corrupt JPEG data', 'Premature end of JPEG file')
_JPEG_HARMLESS = ('Corrupt JPEG data: bad ICC marker', )
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


@dataclass(frozen=True)
class ImageHeader:
    """An image's size as its file header states it (nothing decoded).

    Attributes:
        width, height: In pixels.
        format: Pillow's name of the format (``'PNG'``, ``'JPEG'``...); ``''`` when only the
            pixel count is known (Pillow's decompression-bomb refusal).
        pixels: ``width * height`` (or the count Pillow reported).
    """

    width: int
    height: int
    format: str
    pixels: int

    @property
    def size_text(self) -> str:
        return f'{self.width} x {self.height}' if self.width else 'per its header'


def _tiff_size(data: bytes) -> Optional[Tuple[int, int]]:
    """``(width, height)`` of a TIFF's first image from its first IFD; None if unreadable."""
    if len(data) < 16 or data[:4] not in _TIFF_MAGICS:
        return None
    order = '<' if data[:2] == b'II' else '>'
    try:
        if data[2:4] in (b'*\x00', b'\x00*'):  # classic TIFF
            offset, = struct.unpack_from(order + 'I', data, 4)
            count, = struct.unpack_from(order + 'H', data, offset)
            entry, first, size_of = '2s2sI4s', offset + 2, 12
        else:  # BigTIFF
            offset, = struct.unpack_from(order + 'Q', data, 8)
            count, = struct.unpack_from(order + 'Q', data, offset)
            entry, first, size_of = '2s2sQ8s', offset + 8, 20
        found = {}
        for index in range(min(count, 4096)):
            tag, kind, _, value = struct.unpack_from(order + entry, data, first + index * size_of)
            tag, kind = struct.unpack(order + 'H', tag)[0], struct.unpack(order + 'H', kind)[0]
            if tag in (256, 257):  # ImageWidth, ImageLength: SHORT, LONG or LONG8
                fmt = {3: 'H', 4: 'I', 16: 'Q'}.get(kind)
                if fmt is None:
                    return None
                found[tag] = struct.unpack_from(order + fmt, value)[0]
    except struct.error:
        return None
    return (found[256], found[257]) if len(found) == 2 else None


def read_header(data: bytes) -> Optional[ImageHeader]:
    """The image's size and format from the file header (Pillow, no decoding); None if unknown.

    A TIFF that Pillow cannot open (e.g. 3-channel float) is measured from its first IFD.
    """
    from PIL import Image
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                return ImageHeader(width, height, image.format or '', width * height)
        except Image.DecompressionBombError as err:  # Pillow's own (higher) limit
            found = re.search(r'\((\d+) pixels\)', str(err))
            return ImageHeader(0, 0, '', int(found.group(1))) if found else None
        except Exception:  # noqa: BLE001  (unknown to Pillow)
            pass
    size = _tiff_size(data)
    return ImageHeader(size[0], size[1], 'TIFF', size[0] * size[1]) if size else None


def header_pixels(data: bytes) -> Optional[Tuple[int, str]]:
    """``(pixels, 'W x H')`` from the file header (no decoding); None if unknown."""
    header = read_header(data)
    return None if header is None else (header.pixels, header.size_text)


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
    for magic, kind in _OPENCV_ONLY_FORMATS:
        if data.startswith(magic):
            return (f'not a supported image ({len(data)} bytes): {kind}, a format whose size '
                    'cannot be read before decoding, so the pixel limit (max_pixels) cannot be '
                    'checked; convert it to PNG or TIFF')
    if all(32 <= byte < 127 or byte in (9, 10, 13) for byte in head):
        return f'not a decodable image ({len(data)} bytes): the file holds text ({head!r}...)'
    return (f'not a decodable image ({len(data)} bytes): corrupt, truncated or an unsupported '
            f'format (it starts with {head[:8]!r})')


def check_image_bytes(data: bytes, path: PathLike,
                      max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
                      backend: Optional[str] = None) -> Optional[ImageHeader]:
    """The checks before decoding, shared by the pipeline, the tools and the converters.

    Refuses an empty file; with ``max_pixels`` set, a file whose size cannot be read from its
    header or that has more pixels, and (for OpenCV, ``backend`` None or ``'cv2'``) a format
    outside :data:`SIZE_CHECKED_FORMATS`; a truncated JPEG or PNG.

    Returns:
        The header (None when ``max_pixels`` is None: not read).

    Raises:
        BadImageError: why the file must not be decoded.
    """
    if not data:
        raise BadImageError(path, 'the file is empty (0 bytes)')
    header = None
    if max_pixels is not None:
        header = read_header(data)
        if header is None:
            raise BadImageError(path, truncation(data) or _not_decodable(data))
        if header.pixels > max_pixels:
            raise BadImageError(
                path, f'the image has {header.pixels} pixels ({header.size_text}), more than '
                f'the limit of {max_pixels}', 'Downscale it, or raise the limit with '
                "max_pixels=N in the pipeline's CheckedLoadImageFromFile.")
        # (format '': Pillow refused the size as a decompression bomb and the user's limit is
        # higher still: the count is known, the format is not; decoded as asked.)
        if (backend in (None, 'cv2') and header.format
                and header.format not in SIZE_CHECKED_FORMATS):
            raise BadImageError(
                path, f'not a supported image ({len(data)} bytes): a {header.format} file; '
                'OpenCV, the decoder, reads JPEG, PNG, BMP, PPM/PGM, TIFF, WebP, JPEG 2000, '
                'GIF, Sun raster and AVIF files; convert it to PNG')
    reason = truncation(data)
    if reason is not None:
        raise BadImageError(path, reason)
    return header


# -- libjpeg's warnings about damaged data ----------------------------------------------------
_STDERR_LOCK = threading.Lock()
_FORK_HOOK_LOCK = threading.Lock()
_FORK_HOOK_REGISTERED = [False]


def _register_fork_hook() -> None:
    """A child is never forked while fd 2 is redirected, and never starts with the lock held:
    a fork waits for the capture to end. Registered at the first capture, not at import
    (importing the package changes nothing else in the process)."""
    with _FORK_HOOK_LOCK:
        if not _FORK_HOOK_REGISTERED[0] and hasattr(os, 'register_at_fork'):
            os.register_at_fork(before=_STDERR_LOCK.acquire,
                                after_in_parent=_STDERR_LOCK.release,
                                after_in_child=_STDERR_LOCK.release)
            _FORK_HOOK_REGISTERED[0] = True


@contextmanager
def _native_stderr_captured() -> Iterator[List[str]]:
    """Point fd 2 at a temporary file; on exit, the lines written go into the yielded list."""
    lines: List[str] = []
    _register_fork_hook()
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
        except (AttributeError, OSError, ValueError):
            pass
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 (a daemon): nothing to read
            yield lines
            return
        try:
            with tempfile.TemporaryFile() as sink:
                os.dup2(sink.fileno(), 2)
                try:
                    yield lines
                finally:
                    os.dup2(saved, 2)
                    sink.seek(0)
                    lines.extend(sink.read().decode('utf-8', 'replace').splitlines())
        finally:
            os.close(saved)


@contextmanager
def jpeg_damage_watch(data: bytes, enabled: bool = True) -> Iterator[List[str]]:
    """Collect libjpeg's warnings about damaged data while OpenCV decodes ``data``.

    Yields a list that holds, after the block, the warnings that mean the JPEG's image data is
    damaged (see :data:`_JPEG_DAMAGE`); empty for an intact JPEG and for other formats (nothing
    is captured then). Other text written to stderr meanwhile is passed on to it.
    """
    damage: List[str] = []
    if not (enabled and data.startswith(_JPEG_MAGIC)):
        yield damage
        return
    with _native_stderr_captured() as lines:
        yield damage
    other = []
    for line in lines:
        if line.startswith(_JPEG_DAMAGE) and not line.startswith(_JPEG_HARMLESS):
            damage.append(line.strip())
        else:
            other.append(line)
    if other:
        try:
            os.write(2, ('\n'.join(other) + '\n').encode('utf-8', 'replace'))
        except OSError:
            pass


def jpeg_damage_reason(data: bytes, damage: List[str]) -> str:
    """The refusal message of a JPEG whose decoding raised ``damage`` warnings."""
    return (f'not a decodable image ({len(data)} bytes): a corrupt JPEG, its image data is '
            f'damaged (libjpeg: "{damage[0]}"), as in a truncated file')


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
        max_pixels: Refuse larger images, and images whose size cannot be read, before
            decoding them; None: no limit.

    Raises:
        BadImageError: empty, too large, of unknown size, truncated, corrupt or not an image.
    """
    check_image_bytes(data, path, max_pixels, backend)
    with jpeg_damage_watch(data, enabled=backend in (None, 'cv2')) as damage:
        try:
            image = mmcv.imfrombytes(data, flag=color_type, backend=backend)
        except Exception:  # noqa: BLE001  (decoders raise many types on bad data)
            image = None
    if image is None or image.size == 0:
        raise BadImageError(path, _not_decodable(data))
    if damage:
        raise BadImageError(path, jpeg_damage_reason(data, damage))
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
