"""Bad input: every case gives a clear error naming the file or key and what to do, or is
handled as documented (hifuse_mm/datasets/image_decoding.py has the table).

Images go through the real image loader of the configs (hifuse_mm's
``CheckedLoadImageFromFile``); runs go through ``hifuse_mm.cli`` in-process with the narrow
HiFuse of tests/tiny_config.py.
"""
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope
from PIL import Image

from hifuse_mm import cli
from hifuse_mm.apis import ModelLoadError, load_model
from hifuse_mm.datasets import BadImageError, MedicalImageDataset
from hifuse_mm.datasets.image_decoding import DEFAULT_MAX_PIXELS
from mmpretrain.registry import MODELS, TRANSFORMS
from helpers import inside
from tiny_config import DEMO_CONFIG, make_data, write_config

HINT = '--skip-bad-images'


def _load(path: Path, **kwargs) -> np.ndarray:
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        loader = TRANSFORMS.build(dict(type='CheckedLoadImageFromFile', **kwargs))
    return loader(dict(img_path=str(path)))['img']


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width x height`` (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + \
            struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' +
                     chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)) +
                     chunk(b'IDAT', zlib.compress(b'\0' * 64)) + chunk(b'IEND', b''))


@pytest.fixture(scope='module')
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)
    cv2.imwrite(str(root / 'ok.jpg'), rgb)
    jpeg = (root / 'ok.jpg').read_bytes()
    (root / 'truncated.jpg').write_bytes(jpeg[:int(len(jpeg) * 0.9)])
    cv2.imwrite(str(root / 'ok.png'), rgb)
    (root / 'truncated.png').write_bytes((root / 'ok.png').read_bytes()[:200])
    (root / 'corrupt.png').write_bytes(b'\x89PNG\r\n\x1a\n' + rng.bytes(300) + b'IEND')
    (root / 'empty.png').write_bytes(b'')
    (root / 'notes.jpg').write_text('these are my notes, not an image\n')
    cv2.imwrite(str(root / 'gray.png'), rgb[..., 0])
    cv2.imwrite(str(root / 'rgba.png'), np.dstack([rgb, rng.integers(0, 256, (24, 30),
                                                                       dtype=np.uint8)]))
    cv2.imwrite(str(root / 'gray16.png'), rgb[..., 0].astype(np.uint16) * 257)
    cv2.imwrite(str(root / 'color16.png'), rgb.astype(np.uint16) * 257)
    cv2.imwrite(str(root / 'color16.tif'), rgb.astype(np.uint16) * 257)
    palette = Image.fromarray(rng.integers(0, 4, (24, 30), dtype=np.uint8), mode='P')
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0] + [0] * 756)
    palette.save(root / 'palette.png')
    cv2.imwrite(str(root / 'tiny.png'), rgb[:10, :10])
    gradient = np.linspace(0, 255, 3000, dtype=np.float32)[None, :, None]
    cv2.imwrite(str(root / 'large.png'), np.broadcast_to(gradient, (2000, 3000, 3))
                .astype(np.uint8))
    _png_header_only(root / 'bomb.png', 100_000, 100_000)
    np.save(root / 'rgb.npy', rgb)
    return root


@pytest.mark.parametrize('name,reason', [
    ('truncated.jpg', 'truncated JPEG'),
    ('truncated.png', 'truncated PNG'),
    ('corrupt.png', 'not a decodable image (312 bytes): corrupt'),
    ('empty.png', 'the file is empty (0 bytes)'),
    ('notes.jpg', 'the file holds text'),
    ('missing.png', 'no such file'),
])
def test_bad_image_fails_naming_the_file(images, name, reason):
    with pytest.raises(BadImageError) as info:
        _load(images / name)
    message = str(info.value)
    assert message.startswith(f'{images / name}: ') and reason in message and HINT in message
    # mmcv's ignore_empty keeps its meaning: None instead of an error.
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        loader = TRANSFORMS.build(dict(type='CheckedLoadImageFromFile', ignore_empty=True))
    assert loader(dict(img_path=str(images / name))) is None


def test_image_kinds_are_converted_to_8bit_bgr(images):
    rgb = np.load(images / 'rgb.npy')  # what cv2.imwrite stored, BGR order
    expected = {
        'ok.png': rgb,
        'gray.png': np.repeat(rgb[..., :1], 3, axis=2),
        'rgba.png': rgb,
        'gray16.png': np.repeat(rgb[..., :1], 3, axis=2),
        'color16.png': rgb,
        'color16.tif': rgb,
    }
    for name, want in expected.items():
        image = _load(images / name)
        assert image.dtype == np.uint8 and image.shape == (24, 30, 3), name
        assert np.array_equal(image, want), name
    index = np.asarray(Image.open(images / 'palette.png'))
    colours_bgr = np.array([[0, 0, 255], [0, 255, 0], [255, 0, 0], [0, 255, 255]], np.uint8)
    assert np.array_equal(_load(images / 'palette.png'), colours_bgr[index])


def test_tiny_and_large_images(images):
    cfg = Config.fromfile(str(DEMO_CONFIG))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipelines = [Compose(cfg.train_pipeline), Compose(cfg.test_pipeline)]
    for name in ('tiny.png', 'large.png'):
        for pipeline in pipelines:
            packed = pipeline(dict(img_path=str(images / name)))
            assert tuple(packed['inputs'].shape) == (3, 64, 64), name
    # Beyond max_pixels: refused before decoding, with the size and the setting to change.
    with pytest.raises(BadImageError, match=r'6000000 pixels \(3000 x 2000\), more than the '
                       r'limit of 1000000.*max_pixels'):
        _load(images / 'large.png', max_pixels=1_000_000)
    with pytest.raises(BadImageError, match=f'10000000000 pixels .*limit of {DEFAULT_MAX_PIXELS}'):
        _load(images / 'bomb.png')


# -- datasets ---------------------------------------------------------------------------------
@pytest.fixture
def data(tmp_path) -> Path:
    return make_data(tmp_path, num_per_class=(2, 1, 1))


def _dataset(data: Path, **kwargs) -> MedicalImageDataset:
    return MedicalImageDataset(data_root=str(data), ann_file='meta/train.txt', **kwargs)


def test_ann_file_problems(data):
    listing = data / 'meta' / 'train.txt'
    lines = listing.read_text().splitlines()
    listing.write_text('\n'.join(lines[:2] + ['train/round-brown/gone.png 0'] + lines[2:]) + '\n')
    with pytest.raises(FileNotFoundError, match=r'1 listed image\(s\) do not exist \(line 3: '
                       r'.*train/round-brown/gone\.png\).*' + HINT):
        _dataset(data)
    listing.write_text('\n'.join(lines[:-1] + [lines[-1].rpartition(' ')[0] + ' 7']) + '\n')
    with pytest.raises(ValueError, match=rf'train\.txt:{len(lines)}: label 7 is not in 0\.\.3'):
        _dataset(data)
    listing.write_text('\n')
    with pytest.raises(ValueError, match=r'Split list .*train\.txt is empty'):
        _dataset(data)


def test_class_folders_that_disagree_with_the_classes(data):
    swapped = ['irregular-dark', 'round-brown', 'red-dotted', 'tan-striped']
    with pytest.raises(ValueError, match=r'classes\.txt lists .* but the config/dataset uses'):
        _dataset(data, classes=swapped)
    (data / 'meta' / 'classes.txt').unlink()
    with pytest.raises(ValueError, match=r"4 image\(s\) sit in a class folder that disagrees"
                       r".*line 3: train/irregular-dark/irregular-dark_0000\.png is in folder "
                       r"'irregular-dark' but has label 1 \('round-brown'\)"):
        _dataset(data, classes=swapped)


def test_skip_bad_images_leaves_them_out_and_lists_them(data):
    (data / 'train' / 'round-brown' / 'round-brown_0000.png').write_text('not an image')
    (data / 'train' / 'tan-striped' / 'tan-striped_0001.png').unlink()
    dataset = _dataset(data, skip_bad_images=True)
    assert len(dataset) == 6
    assert [(Path(s.path).name, s.reason.split(':')[0]) for s in dataset.skipped_images] == [
        ('round-brown_0000.png', 'not a decodable image (12 bytes)'),
        ('tan-striped_0001.png', 'no such file')]
    for path in (data / 'train').rglob('*.png'):
        path.write_bytes(b'')
    with pytest.raises(ValueError, match='none of its 8 image'):
        _dataset(data, skip_bad_images=True)


# -- runs -------------------------------------------------------------------------------------


def _fails(folder: Path, main, *argv: str) -> str:
    with inside(folder), pytest.raises(SystemExit) as info:
        main(list(argv))
    return str(info.value.code)


def test_bad_image_stops_training_unless_skipped(tmp_path, data):
    write_config(tmp_path / 'tiny.py', data)
    bad = data / 'train' / 'red-dotted' / 'red-dotted_0000.png'
    bad.write_text('not an image')
    error = _fails(tmp_path, cli.train_main, 'tiny.py', '--work-dir', 'strict')
    assert error.startswith(f'error: {bad}: not a decodable image') and HINT in error

    (data / 'val' / 'tan-striped' / 'tan-striped_0000.png').unlink()
    error = _fails(tmp_path, cli.train_main, 'tiny.py', '--work-dir', 'strict')
    assert error.startswith('error: ') and 'val.txt: 1 listed image(s) do not exist' in error
    with inside(tmp_path):
        cli.train_main(['tiny.py', '--work-dir', 'skip', '--skip-bad-images'])
    report, = (tmp_path / 'skip').glob('*/skipped_images.txt')
    lines = report.read_text().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f'{bad}: not a decodable image') and 'train.txt' in lines[0]
    assert 'tan-striped_0000.png: no such file (listed in' in lines[1]
    assert (tmp_path / 'skip' / 'epoch_1.pth').is_file()


def test_num_classes_differs_from_the_dataset(tmp_path, data):
    write_config(tmp_path / 'tiny.py', data)
    error = _fails(tmp_path, cli.train_main, 'tiny.py', '--work-dir', 'w', '--cfg-options',
                   'model.head.num_classes=3')
    assert "model.head.num_classes = 3 but the train dataset (MedicalImageDataset" in error
    assert 'has 4 classes' in error and 'Set model.head.num_classes=4' in error


def _checkpoint(tmp_path: Path, name: str, **changes) -> str:
    cfg = Config.fromfile(str(tmp_path / 'tiny.py'))
    cfg.merge_from_dict(changes)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        weights = MODELS.build(cfg.model).state_dict()
    torch.save(dict(state_dict=weights, meta=dict(epoch=1)), tmp_path / name)
    return str(tmp_path / name)


def test_checkpoint_of_another_class_count_or_arch(tmp_path, data):
    write_config(tmp_path / 'tiny.py', data)
    three = _checkpoint(tmp_path, 'three.pth', **{'model.head.num_classes': 3})
    deeper = _checkpoint(tmp_path, 'deeper.pth',
                         **{'model.backbone.arch.depths': (2, 1, 1, 1)})
    error = _fails(tmp_path, cli.test_main, 'tiny.py', three, '--work-dir', 't')
    assert f'error: {three} does not fit the model built from the config' in error
    assert 'head.fc.weight: checkpoint [3, 128] vs model [4, 128]' in error
    assert "init_cfg=dict(type='Pretrained'" in error
    error = _fails(tmp_path, cli.train_main, 'tiny.py', '--work-dir', 'l', '--cfg-options',
                   f'load_from={deeper}')
    assert 'checkpoint key(s) the model does not have (backbone.' in error
    with pytest.raises(ModelLoadError, match=r'head\.fc\.bias: checkpoint \[3\] vs model \[4\]'):
        load_model(tmp_path / 'tiny.py', three, device='cpu')


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, data, monkeypatch):
    write_config(tmp_path / 'tiny.py', data, imports=('hifuse_mm', 'train_faults'),
                 extra="custom_hooks = [dict(type='FaultInjectionHook')]\n"
                       'train_cfg = dict(max_epochs=2)\n')
    monkeypatch.setenv('HIFUSE_FAULT', 'nan:3')  # first iteration of epoch 2
    error = _fails(tmp_path, cli.train_main, 'tiny.py', '--work-dir', 'w')
    work = tmp_path / 'w'
    assert error.startswith('error: training stopped: ') and '= nan' in error
    assert 'at epoch 2, iteration 3 (1 of this epoch)' in error
    assert f'{work / "epoch_1.pth"}, was written before this and is unchanged' in error
    assert 'lower the learning rate' in error and '--resume' in error
    # last_checkpoint is relative to the work dir (hifuse_mm.engine.last_checkpoint).
    assert work / (work / 'last_checkpoint').read_text().strip() == work / 'epoch_1.pth'
    assert not (work / 'epoch_2.pth').exists()
    weights = torch.load(work / 'epoch_1.pth', weights_only=False)['state_dict']
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    # Resuming (without the fault) finishes the run from the good checkpoint.
    monkeypatch.delenv('HIFUSE_FAULT')
    with inside(tmp_path):
        cli.train_main(['tiny.py', '--work-dir', 'w', '--resume'])
    assert (work / 'epoch_2.pth').is_file()


def test_inf_loss_is_caught_too(tmp_path):
    from types import SimpleNamespace

    from hifuse_mm.engine import NonFiniteLossError, NonFiniteLossHook
    runner = SimpleNamespace(work_dir=str(tmp_path), epoch=4, iter=41)
    hook = NonFiniteLossHook()
    hook.after_train_iter(runner, 1, outputs=dict(loss=torch.tensor(2.5)))  # finite: nothing
    with pytest.raises(NonFiniteLossError, match=r'loss = inf .*epoch 5, iteration 42 \(2 of '
                       r'this epoch\).*No checkpoint had been written yet'):
        hook.after_train_iter(runner, 1, outputs=dict(loss=torch.tensor(float('inf'))))
