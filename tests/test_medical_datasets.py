"""The registered datasets (ISIC2018, Kvasir, COVID19CT, MedicalImageDataset)."""
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

import hifuse_mm  # noqa: F401  (registers the datasets and MedicalMetrics)
from hifuse_mm.datasets import (COVID19CT, ISIC2018, ISIC2018_CLASSES, KVASIR_CLASSES,
                                MedicalImageDataset, make_demo_dataset)
from hifuse_mm.datasets.prepare import converter_main, kvasir
from helpers import REPO
from mmpretrain.registry import DATASETS, METRICS
from replicas import make_isic2018, make_kvasir


def test_registered_and_not_shadowing_mmpretrain():
    for name in ('MedicalImageDataset', 'ISIC2018', 'Kvasir', 'COVID19CT'):
        assert DATASETS.get(name).__module__.startswith('hifuse_mm.datasets')
    assert METRICS.get('MedicalMetrics').__module__.startswith('hifuse_mm.evaluation')
    assert DATASETS.get('CustomDataset').__module__.startswith('mmpretrain')


def test_dataset_configs_use_the_registered_classes():
    expected = dict(isic2018='ISIC2018', kvasir='Kvasir', covid19ct='COVID19CT')
    for name, kind in expected.items():
        cfg = Config.fromfile(str(REPO / 'configs' / '_base_' / 'datasets' / f'{name}.py'))
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            assert cfg[key].dataset.type == kind
        assert cfg.val_evaluator.type == 'MedicalMetrics'
        assert cfg.test_evaluator.type == 'MedicalMetrics'
        assert list(cfg.classes) == list(DATASETS.get(kind).METAINFO['classes'])
    runtime = Config.fromfile(str(REPO / 'configs' / '_base_' / 'default_runtime.py'))
    checkpoint = runtime.default_hooks.checkpoint
    assert (checkpoint.save_best, checkpoint.rule) == ('medical/f1_macro', 'greater')


@pytest.fixture(scope='module')
def kvasir_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('kvasir')
    make_kvasir(root / 'src', per_class=8)
    assert converter_main(kvasir, [str(root / 'src'), str(root / 'prepared'),
                                   '--val-fraction', '0.25']) == 0
    return root / 'prepared'


def test_kvasir_dataset_reads_each_fold(kvasir_root):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        train = DATASETS.build(dict(type='Kvasir', data_root=str(kvasir_root),
                                    ann_file='meta/fold2/train.txt'))
    assert train.metainfo['classes'] == KVASIR_CLASSES
    assert len(train) == 8 * 3  # halves of 4, one of them for val
    info = train.get_data_info(0)
    assert Path(info['img_path']).is_file()
    assert KVASIR_CLASSES[info['gt_label']] == Path(info['img_path']).parent.name


def test_classes_are_checked(kvasir_root, tmp_path):
    with pytest.raises(ValueError, match='differs from the official order'):
        ISIC2018(data_root=str(tmp_path), ann_file='meta/train.txt',
                 classes=list(reversed(ISIC2018_CLASSES)))
    # A Kvasir folder read as ISIC2018: meta/classes.txt disagrees with the official classes.
    with pytest.raises(ValueError, match='classes.txt lists'):
        ISIC2018(data_root=str(kvasir_root), ann_file='meta/train.txt')


def test_missing_split_names_the_converter(tmp_path):
    with pytest.raises(FileNotFoundError, match='prepare_covid19ct.py'):
        COVID19CT(data_root=str(tmp_path / 'data' / 'covid19ct'), ann_file='meta/train.txt')


def test_bad_lines_and_labels(tmp_path):
    src = tmp_path / 'isic'
    make_isic2018(src, dict(MEL=1, NV=1))
    (tmp_path / 'meta').mkdir()
    (tmp_path / 'meta' / 'train.txt').write_text('isic/a.jpg 0\nisic/b.jpg seven\n')
    with pytest.raises(ValueError, match=r'train.txt:2: expected "relative/path label"'):
        ISIC2018(data_root=str(tmp_path), ann_file='meta/train.txt')
    (tmp_path / 'meta' / 'train.txt').write_text('isic/a.jpg 7\n')
    with pytest.raises(ValueError, match=r'train.txt:1: label 7 is not in 0..6'):
        ISIC2018(data_root=str(tmp_path), ann_file='meta/train.txt')


def test_generic_dataset_takes_classes_from_the_folder(tmp_path):
    root = make_demo_dataset(tmp_path / 'demo', num_per_class=(2, 1, 1), image_size=16)
    dataset = MedicalImageDataset(data_root=str(root), ann_file='meta/val.txt')
    assert dataset.metainfo['classes'] == ('round-brown', 'irregular-dark', 'red-dotted',
                                           'tan-striped')
    assert len(dataset) == 4
