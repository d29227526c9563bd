"""The narrow HiFuse the tool tests train, and a config of it on the synthetic demo data.

16-128 channels, one block per stage, 32 px images without resizing in the test pipeline: a
training iteration takes a fraction of a second on one core.
"""
import hashlib
import json
from pathlib import Path
from typing import Optional, Sequence, Tuple

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



def narrow_hemf(global_depths: Sequence[int] = (1, 1, 1, 1)) -> str:
    """Config lines: a narrow HEMF (16-128 channels, one local block per stage, ``global_depths``
    global blocks) in place of the base config's model."""
    return f"""
model = dict(
    backbone=dict(_delete_=True, type='HEMF',
                  arch=dict(embed_dims=16, num_heads=2, local_depths=(1, 1, 1, 1),
                            global_depths={tuple(global_depths)})),
    neck=dict(_delete_=True, type='HEFNeck', in_channels=(16, 32, 64, 128)),
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


def write_split_record(root: Path) -> dict:
    """A ``meta/split.json`` in the data folder ``root`` like the converters write (checksums of
    the real lists, protocol 'tiny-protocol', seed 7); returns the record."""
    meta = root / 'meta'
    classes = (meta / 'classes.txt').read_text().split()
    counts, index_files = {}, {}
    for split in ('train', 'val', 'test'):
        lines = (meta / f'{split}.txt').read_text().split('\n')
        labels = [int(line.rsplit(' ', 1)[1]) for line in lines if line]
        counts[split] = dict(total=len(labels), per_class={
            name: labels.count(i) for i, name in enumerate(classes)})
    for name in ('classes.txt', 'train.txt', 'val.txt', 'test.txt'):
        index_files[f'meta/{name}'] = hashlib.sha256((meta / name).read_bytes()).hexdigest()
    record = dict(format_version=1, dataset='demo', protocol='tiny-protocol', seed=7,
                  options={'ratio': '1:1:1'}, classes=classes, image_root='', counts=counts,
                  source_files={'labels.csv': '0' * 64}, index_files=index_files)
    (meta / 'split.json').write_text(json.dumps(record, indent=2))
    return record


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


def inference_pipeline(size) -> str:
    """Config lines: a test pipeline that resizes to ``size`` px, or to ``(width, height)``
    (no normalisation change)."""
    width, height = (size, size) if isinstance(size, int) else size
    return (f"test_pipeline = [dict(type='CheckedLoadImageFromFile'), "
            f"dict(type='Resize', scale=({width}, {height})), dict(type='PackInputs')]\n"
            "test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n")


def write_narrow_checkpoint(root: Path, size: int, config_name: str = 'model.py',
                            checkpoint_name: str = 'model.pth',
                            classes: Optional[Sequence[str]] = None,
                            head_scale: float = 1.0) -> Tuple[Path, Path]:
    """A narrow HiFuse config with a ``size``-px test pipeline, and a random-init checkpoint of
    it (seed 0; head weights times ``head_scale``): ``{state_dict, meta.dataset_meta.classes}``
    when ``classes`` is given, else a bare state dict. Returns ``(config, checkpoint)``."""
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    config = write_config(root / config_name, body=NARROW_HIFUSE + inference_pipeline(size))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(Config.fromfile(str(config)).model)
    if head_scale != 1.0:
        with torch.no_grad():
            for param in model.head.parameters():
                param.mul_(head_scale)
    content = model.state_dict() if classes is None else dict(
        state_dict=model.state_dict(), meta=dict(dataset_meta=dict(classes=list(classes))))
    torch.save(content, root / checkpoint_name)
    return config, root / checkpoint_name
