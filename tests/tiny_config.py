"""The narrow HiFuse the tool tests train, and a config of it on the synthetic demo data.

16-128 channels, one block per stage, 32 px images without resizing in the test pipeline: a
training iteration takes a fraction of a second on one core.
"""
from pathlib import Path

from hifuse_mm.datasets import make_demo_dataset

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / 'configs' / 'hifuse' / 'hifuse-tiny_demo.py'

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
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.6, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
"""

TEMPLATE = """\
_base_ = [{base!r}]
custom_imports = dict(imports={imports!r}, allow_failed_imports=False)
data_root = {data_root!r}
""" + NARROW_HIFUSE + TINY_DATA + """train_cfg = dict(max_epochs=1)
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=1000)]
default_hooks = dict(logger=dict(interval=1))
"""


def make_data(root: Path, num_per_class=(1, 1, 1)) -> Path:
    """Synthetic demo images at 32 px (4 classes) under ``root / 'data'``."""
    return make_demo_dataset(root / 'data', num_per_class=num_per_class, image_size=32, seed=0)


def write_config(path: Path, data_root: Path, extra: str = '',
                 imports=('hifuse_mm', )) -> Path:
    """The tiny config at ``path`` (plus ``extra`` lines appended)."""
    path.write_text(TEMPLATE.format(base=str(DEMO_CONFIG), data_root=str(data_root),
                                    imports=list(imports)) + extra)
    return path
