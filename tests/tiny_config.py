"""The narrow HiFuse the tool tests train, and a config of it on the synthetic demo data.

16-128 channels, one block per stage, 32 px images without resizing in the test pipeline: a
training iteration takes a fraction of a second on one core.
"""
from pathlib import Path
from typing import Optional, Sequence

from helpers import DEMO_CONFIG
from hifuse_mm.datasets import make_demo_dataset

#: The narrow HiFuse the tool tests train: 16-128 channels, one block per stage.
NARROW_HIFUSE = """\
model = dict(
    backbone=dict(
        _delete_=True,
        type='HiFuse',
        arch=dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 4))),
    neck=dict(in_channels=(16, 32, 64, 128)),
    head=dict(in_channels=128))
"""

#: 32 px pipelines and batch-4 loaders over ``data_root``.
TINY_DATA = """\
train_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.6, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='CheckedLoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
"""

#: The tiny training run: the narrow HiFuse on ``TINY_DATA`` for one epoch.
TINY_TRAINING = NARROW_HIFUSE + TINY_DATA + """train_cfg = dict(max_epochs=1)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=1000)]
default_hooks = dict(logger=dict(interval=1))
"""


def make_data(root: Path, num_per_class=(1, 1, 1)) -> Path:
    """Synthetic demo images at 32 px (4 classes) under ``root / 'data'``."""
    return make_demo_dataset(root / 'data', num_per_class=num_per_class, image_size=32, seed=0)


def write_config(path: Path, data_root: Optional[Path] = None, extra: str = '',
                 imports: Sequence[str] = ('hifuse_mm', ), body: str = TINY_TRAINING,
                 base: Path = DEMO_CONFIG) -> Path:
    """Write a config inheriting ``base`` to ``path``: ``custom_imports``, ``data_root`` (when
    given), ``body`` (default: the tiny training run) and ``extra`` lines appended."""
    data_line = '' if data_root is None else f'data_root = {str(data_root)!r}\n'
    path.write_text(f'_base_ = [{str(base)!r}]\n'
                    f'custom_imports = dict(imports={list(imports)!r}, '
                    'allow_failed_imports=False)\n' + data_line + body + extra)
    return path
