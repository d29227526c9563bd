"""Every leaf config loads with MMEngine and its model builds from MMPretrain's registry."""
import re
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope

import hifuse_mm  # noqa: F401  (registers HiFuse / HFFNeck)
from mmpretrain.registry import MODELS

from helpers import REPO

CONFIG_DIR = REPO / 'configs'
# HiFuse / HEMF leaves; the comparison baselines (configs/baselines/, MMPretrain's own models)
# are tested in test_baselines.py.
LEAVES = sorted(p for p in CONFIG_DIR.rglob('*.py')
                if '_base_' not in p.parts and 'baselines' not in p.parts)
ALL_CONFIGS = sorted(CONFIG_DIR.rglob('*.py'))
SIZES = ('tiny', 'small', 'base')
DATASETS = ('isic2018', 'kvasir', 'covid19ct')
# Parameters of what each mode computes with, 7 classes (the model table in README.md).
PARAMS = {
    ('tiny', 'paper'): 54_673_217,
    ('small', 'paper'): 58_250_993,
    ('base', 'paper'): 68_984_321,
    ('tiny', 'released'): 118_086_497,
    ('small', 'released'): 121_664_273,
    ('base', 'released'): 132_397_601,
}


def _id(path: Path) -> str:
    return str(path.relative_to(CONFIG_DIR))


def test_expected_leaves_exist():
    names = {p.name for p in LEAVES}
    for size in ('tiny', 'small', 'base'):
        for data in ('isic2018', 'kvasir', 'covid19ct'):
            assert f'hifuse-{size}_{data}.py' in names
    assert 'hifuse-tiny_demo.py' in names


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=_id)
def test_config_is_old_style_and_self_contained(path):
    text = path.read_text()
    # An import makes MMEngine treat the file as a new-style (lazy) config; `pkg::` inheritance
    # needs pkg_resources, gone from setuptools>=82 (see the project notes, section 2.1).
    assert not re.search(r'^\s*(import|from)\s', text, re.M), 'configs must not import'
    assert '::' not in text


@pytest.mark.parametrize('path', LEAVES, ids=_id)
def test_config_loads_and_model_builds(path):
    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.custom_imports.imports == ['hifuse_mm']

    classes = cfg.train_dataloader.dataset.classes
    assert cfg.model.head.num_classes == len(classes)
    assert cfg.data_preprocessor.num_classes == len(classes)
    for key, split in (('train_dataloader', 'train'), ('val_dataloader', 'val'),
                       ('test_dataloader', 'test')):
        assert cfg[key].dataset.ann_file == f'meta/{split}.txt'
        assert cfg[key].dataset.classes == classes
    checkpoint = cfg.default_hooks.checkpoint
    assert checkpoint.save_best and checkpoint.rule == 'greater'

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    for part in ('backbone', 'neck'):
        module = getattr(model, part)
        assert type(module).__name__ == cfg.model[part].type
        assert type(module).__module__.startswith('hifuse_mm.models')
    assert model.head.num_classes == len(classes)


def test_dataset_class_lists():
    expected = {
        'isic2018': ['MEL', 'NV', 'BCC', 'AKIEC', 'BKL', 'DF', 'VASC'],
        'kvasir': sorted(['dyed-lifted-polyps', 'dyed-resection-margins', 'esophagitis',
                          'normal-cecum', 'normal-pylorus', 'normal-z-line', 'polyps',
                          'ulcerative-colitis']),
        'covid19ct': ['COVID', 'NonCOVID'],
    }
    for name, classes in expected.items():
        cfg = Config.fromfile(str(CONFIG_DIR / '_base_' / 'datasets' / f'{name}.py'))
        assert cfg.train_dataloader.dataset.data_root == f'data/{name}/'
        assert list(cfg.classes) == classes


def test_schedule_matches_papers():
    cfg = Config.fromfile(str(CONFIG_DIR / '_base_' / 'schedules' / 'adamw_cosine_100e.py'))
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', 1e-4, 0.01)
    assert 'custom_keys' not in cfg.optim_wrapper.paramwise_cfg
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end) == ('LinearLR', 1e-3, 1)
    assert cosine.type == 'CosineAnnealingLR' and cosine.convert_to_iter_based
    assert cfg.train_cfg.max_epochs == 100


def test_released_leaves_exist():
    """Every paper-design HiFuse leaf has its released-code twin."""
    names = {p.name for p in LEAVES}
    for size in SIZES:
        for data in DATASETS:
            assert f'hifuse-{size}-released_{data}.py' in names


@pytest.mark.parametrize('data', DATASETS)
@pytest.mark.parametrize('size', SIZES)
def test_released_config_is_paper_config_plus_one_switch(size, data):
    paper = Config.fromfile(str(CONFIG_DIR / 'hifuse' / f'hifuse-{size}_{data}.py')).to_dict()
    released = Config.fromfile(
        str(CONFIG_DIR / 'hifuse' / f'hifuse-{size}-released_{data}.py')).to_dict()
    assert 'irmlp_depthwise' not in paper['model']['neck']  # the paper design is the default
    assert released['model']['neck'].pop('irmlp_depthwise') is False
    assert released == paper


def _model_table_row(size: str, mode: str) -> str:
    readme = (REPO / 'README.md').read_text()
    rows = [line for line in readme.splitlines()
            if line.startswith(f'| HiFuse-{size.capitalize()} | {mode}')]
    assert len(rows) == 1, (size, mode, rows)
    return rows[0]


@pytest.mark.parametrize('size, mode', sorted(PARAMS))
def test_parameter_counts_match_model_table(size, mode):
    name = f'hifuse-{size}_isic2018.py' if mode == 'paper' else \
        f'hifuse-{size}-released_isic2018.py'
    cfg = Config.fromfile(str(CONFIG_DIR / 'hifuse' / name))
    assert cfg.model.head.num_classes == 7
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    count = sum(p.numel() for p in model.parameters())
    assert count == PARAMS[size, mode]
    assert f'| {count / 1e6:.2f} M |' in _model_table_row(size, mode)
