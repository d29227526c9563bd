"""The synthetic demo dataset: deterministic, same layout as the prepared real datasets."""
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from hifuse_mm.datasets import DEMO_CLASSES, make_demo_dataset, read_classes

COUNTS = (3, 2, 1)
SIZE = 48


def _digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


@pytest.fixture(scope='module')
def dataset(tmp_path_factory) -> Path:
    return make_demo_dataset(tmp_path_factory.mktemp('demo') / 'data',
                             num_per_class=COUNTS, image_size=SIZE, seed=0)


def test_deterministic(dataset, tmp_path):
    again = make_demo_dataset(tmp_path / 'again', num_per_class=COUNTS, image_size=SIZE, seed=0)
    other = make_demo_dataset(tmp_path / 'other', num_per_class=COUNTS, image_size=SIZE, seed=1)
    assert _digest(dataset) == _digest(again)
    images = [k for k in _digest(dataset) if k.startswith('train/')]
    assert all(_digest(dataset)[k] != _digest(other)[k] for k in images)


def test_layout(dataset):
    assert read_classes(dataset) == DEMO_CLASSES
    lesions = json.loads((dataset / 'meta' / 'lesions.json').read_text())
    for split, count in zip(('train', 'val', 'test'), COUNTS):
        lines = (dataset / 'meta' / f'{split}.txt').read_text().splitlines()
        assert len(lines) == count * len(DEMO_CLASSES)
        for line in lines:
            path, label = line.rsplit(' ', 1)
            assert path.split('/')[:2] == [split, DEMO_CLASSES[int(label)]]
            image = cv2.imread(str(dataset / path))
            assert image.shape == (SIZE, SIZE, 3)
            entry = lesions[path]
            assert entry['label'] == int(label)
            mask = cv2.imread(str(dataset / entry['mask']), cv2.IMREAD_GRAYSCALE)
            ys, xs = np.nonzero(mask)
            assert entry['bbox'] == [xs.min(), ys.min(), xs.max(), ys.max()]
            # A real lesion: neither tiny nor the whole image, and darker/redder than the skin.
            assert 0.02 < (mask > 0).mean() < 0.5
            inside, outside = image[mask > 0].mean(0), image[mask == 0].mean(0)
            assert np.abs(inside - outside).max() > 15
    assert len(lesions) == sum(COUNTS) * len(DEMO_CLASSES)


def test_refuses_to_overwrite(dataset, tmp_path):
    with pytest.raises(FileExistsError):
        make_demo_dataset(dataset, num_per_class=COUNTS, image_size=SIZE)
    # force=True regenerates a demo dataset...
    root = make_demo_dataset(tmp_path / 'd', num_per_class=1, image_size=SIZE)
    make_demo_dataset(root, num_per_class=2, image_size=SIZE, force=True)
    assert len((root / 'meta' / 'test.txt').read_text().splitlines()) == 2 * len(DEMO_CLASSES)
    # ...but never deletes a folder it did not write.
    user = tmp_path / 'user'
    user.mkdir()
    (user / 'precious.txt').write_text('keep me')
    with pytest.raises(FileExistsError):
        make_demo_dataset(user, force=True)
    assert (user / 'precious.txt').read_text() == 'keep me'


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError):
        make_demo_dataset(tmp_path / 'a', num_per_class=(1, 2))
    with pytest.raises(ValueError):
        make_demo_dataset(tmp_path / 'b', num_per_class=0)


def test_loads_as_mmpretrain_custom_dataset(dataset):
    from mmpretrain.datasets import CustomDataset
    data = CustomDataset(data_root=str(dataset), ann_file='meta/val.txt', data_prefix='',
                         classes=list(DEMO_CLASSES), pipeline=[dict(type='CheckedLoadImageFromFile')])
    assert len(data) == COUNTS[1] * len(DEMO_CLASSES)
    assert data.metainfo['classes'] == DEMO_CLASSES
    sample = data[len(data) - 1]
    assert sample['gt_label'] == len(DEMO_CLASSES) - 1
    assert sample['img'].shape == (SIZE, SIZE, 3)
