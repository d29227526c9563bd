"""The pixel limit holds for every format, and a JPEG with damaged data is refused as a
truncated one is, alike in the pipeline (CheckedLoadImageFromFile), the tools' reader
(hifuse_mm.apis.read_image, tools/infer.py) and the converters' image check
(datasets/prepare/imagecheck.py: prepare_*.py and --check) (issue 14, items 6 and 7).

Every file here is small: a PNG of 9500 x 9500 solid pixels compresses to about 90 kB.
"""
import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmengine.registry import DefaultScope

from hifuse_mm.apis import ImageReadError, read_image
from hifuse_mm.datasets import BadImageError
from hifuse_mm.datasets.image_decoding import DEFAULT_MAX_PIXELS, read_image_file
from hifuse_mm.datasets.prepare.imagecheck import OK, UNREADABLE, inspect_image, inspect_images
from mmpretrain.registry import TRANSFORMS


def _pipeline_load(path: Path, **kwargs) -> np.ndarray:
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        loader = TRANSFORMS.build(dict(type='CheckedLoadImageFromFile', **kwargs))
    return loader(dict(img_path=str(path)))['img']


def _pipeline_reason(path: Path, **kwargs) -> str:
    with pytest.raises(BadImageError) as info:
        _pipeline_load(path, **kwargs)
    assert str(info.value).startswith(f'{path}: ')
    return info.value.reason


def _solid_png(path: Path, width: int, height: int) -> None:
    """A valid 8-bit grayscale PNG of zeros, built row by row (tiny when compressed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack('>I', len(data)) + kind + data +
                struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))
    packer = zlib.compressobj(9)
    row = b'\0' * (width + 1)  # filter byte + pixels
    idat = b''.join(packer.compress(row) for _ in range(height)) + packer.flush()
    path.write_bytes(b'\x89PNG\r\n\x1a\n' +
                     chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)) +
                     chunk(b'IDAT', idat) + chunk(b'IEND', b''))


@pytest.fixture(scope='module')
def files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('limits')
    rng = np.random.default_rng(0)
    # Just over the default limit (9500 x 9500 = 90.25 Mpx > 89.48 Mpx): a valid image that
    # the pipeline refused and the converters' check accepted.
    _solid_png(root / 'big.png', 9500, 9500)
    # A valid Radiance HDR image (OpenCV decodes it, Pillow cannot read its size) named .png.
    ok, hdr = cv2.imencode('.hdr', rng.random((40, 50, 3), dtype=np.float32))
    assert ok
    (root / 'radiance.png').write_bytes(hdr.tobytes())
    # A 3-channel float TIFF: Pillow cannot open it, its size is read from the first IFD.
    ok, tif = cv2.imencode('.tif', rng.random((40, 50, 3), dtype=np.float32))
    assert ok
    (root / 'float.tif').write_bytes(tif.tobytes())
    # JPEGs: intact; the middle 64 bytes replaced; the second half lost, the end marker kept.
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), (7, 7), 0)
    ok, jpeg = cv2.imencode('.jpg', smooth, [cv2.IMWRITE_JPEG_QUALITY, 90])
    data = jpeg.tobytes()
    (root / 'ok.jpg').write_bytes(data)
    middle = bytearray(data)
    middle[len(data) // 2:len(data) // 2 + 64] = rng.integers(0, 256, 64, np.uint8).tobytes()
    (root / 'middle.jpg').write_bytes(bytes(middle))
    (root / 'cut.jpg').write_bytes(data[:len(data) // 2] + b'\xff\xd9')
    return root


# -- item 6: the pixel limit ------------------------------------------------------------------
def test_converter_check_applies_the_pipelines_pixel_limit(files):
    """One limit everywhere: the image the pipeline refuses, prepare_*.py / --check refuse too
    (by default the pipeline's default limit), with the same reason."""
    path = files / 'big.png'
    reason = _pipeline_reason(path)
    assert reason == (f'the image has 90250000 pixels (9500 x 9500), more than the limit of '
                      f'{DEFAULT_MAX_PIXELS}')
    status = inspect_image(path)
    assert status.state == UNREADABLE and status.detail == reason
    assert status.sha256 is not None  # still hashed (duplicate detection)
    assert inspect_images([path], workers=1)[path].detail == reason
    # The same limit can be raised for both.
    assert inspect_image(path, max_pixels=10 ** 8).state == OK
    assert _pipeline_load(path, max_pixels=10 ** 8).shape == (9500, 9500, 3)


def test_a_format_whose_size_cannot_be_read_is_refused(files):
    """A Radiance HDR file named .png: OpenCV decodes it (into a float buffer of any size its
    header asks for), Pillow cannot read its size, so it is refused before decoding."""
    path = files / 'radiance.png'
    reason = _pipeline_reason(path)
    assert reason.startswith('not a supported image (') and 'a Radiance HDR image' in reason
    assert 'max_pixels' in reason and 'convert it to PNG or TIFF' in reason
    with pytest.raises(ImageReadError, match=r'radiance\.png: not a supported image'):
        read_image(path)  # tools/infer.py, vis_cam.py, Classifier
    status = inspect_image(path)
    assert status.state == UNREADABLE and status.detail == reason
    # Without a limit (max_pixels=None) nothing needs the size: decoded as before.
    assert read_image_file(path, max_pixels=None).shape == (40, 50, 3)


def test_header_sizes(files):
    from hifuse_mm.datasets.image_decoding import read_header

    header = read_header((files / 'big.png').read_bytes())
    assert (header.width, header.height, header.format) == (9500, 9500, 'PNG')
    tiff = read_header((files / 'float.tif').read_bytes())
    assert (tiff.width, tiff.height, tiff.format, tiff.pixels) == (50, 40, 'TIFF', 2000)
    assert read_header((files / 'radiance.png').read_bytes()) is None
    # A TIFF header claiming 100k x 100k is refused from the header, nothing decoded.
    data = bytearray((files / 'float.tif').read_bytes())
    offset = struct.unpack_from('<I', data, 4)[0]
    count = struct.unpack_from('<H', data, offset)[0]
    for index in range(count):
        entry = offset + 2 + 12 * index
        tag, kind = struct.unpack_from('<HH', data, entry)
        if tag in (256, 257):
            struct.pack_into('<HHII', data, entry, tag, 4, 1, 100_000)
    (files / 'huge.tif').write_bytes(bytes(data))
    assert 'the image has 10000000000 pixels (100000 x 100000)' in _pipeline_reason(
        files / 'huge.tif')


# -- item 7: JPEGs with damaged data ----------------------------------------------------------
@pytest.mark.parametrize('name,warning', [
    ('middle.jpg', 'Corrupt JPEG data: '),  # which warning depends on the bytes
    ('cut.jpg', 'Corrupt JPEG data: premature end of data segment'),
])
def test_jpeg_with_damaged_data_is_refused_everywhere(files, name, warning):
    """libjpeg warns and OpenCV returns an image anyway (the lost part grey); like a truncated
    JPEG, such a file is refused, with the same reason in the pipeline, infer.py's reader and
    the converters' check."""
    path = files / name
    assert cv2.imread(str(path)) is not None  # what OpenCV alone does
    reason = _pipeline_reason(path)
    assert reason.startswith('not a decodable image (') and 'a corrupt JPEG' in reason
    assert warning in reason
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(info.value) == f'{path}: {reason}'
    status = inspect_image(path)
    assert status.state == UNREADABLE and status.detail == reason
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        loader = TRANSFORMS.build(dict(type='CheckedLoadImageFromFile', ignore_empty=True))
    assert loader(dict(img_path=str(path))) is None  # as for any bad file


def test_intact_jpeg_passes_and_other_stderr_output_is_kept(files, capfd):
    from hifuse_mm.datasets.image_decoding import jpeg_damage_watch

    path = files / 'ok.jpg'
    assert _pipeline_load(path).shape == (240, 320, 3)
    assert inspect_image(path).state == OK
    data = path.read_bytes()
    with jpeg_damage_watch(data) as damage:
        os.write(2, b'another thread says hello\n')
        assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None
    assert damage == []
    assert 'another thread says hello' in capfd.readouterr().err
