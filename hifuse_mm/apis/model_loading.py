"""Build a classifier from a config and load its weights, for inference and explanation.

Works with full training checkpoints (optimizer state, ``message_hub``), with slim checkpoints
from ``tools/model_converters/publish_model.py`` and with converted released weights, all read
with ``torch.load(weights_only=True)`` (:func:`hifuse_mm.engine.load_checkpoint_file`). A
checkpoint that needs full unpickling is refused unless ``trust_checkpoint=True``
(SECURITY.md); one that does not fit the config's model is refused with the mismatched keys.
"""
from __future__ import annotations

import copy
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from ..engine import UntrustedCheckpointError, compare_state_dict, load_checkpoint_file
from ..engine.safe_checkpoint import checkpoint_not_found_message
from ..engine.state_dict_match import checkpoint_state_dict
from ..utils.classes_file import read_classes_file

ConfigLike = Union[str, Path, Config]


class ModelLoadError(RuntimeError):
    """The config or the checkpoint cannot give a working model; the message says why."""


@dataclass
class LoadedModel:
    """A classifier ready for inference.

    Attributes:
        model: MMPretrain ``ImageClassifier`` in eval mode on ``device``.
        cfg: The config it was built from.
        classes: Class names in label order.
        device: Where the model lives.
        checkpoint_meta: The checkpoint's ``meta`` dict (empty when it has none).
    """

    model: nn.Module
    cfg: Config
    classes: Tuple[str, ...]
    device: torch.device
    checkpoint_meta: dict


def resolve_device(device: Optional[Union[str, torch.device]] = None) -> torch.device:
    """``device`` as a :class:`torch.device`; None picks CUDA when available, else the CPU."""
    if device is None:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ModelLoadError(f'device {device} requested but CUDA is not available; '
                             'use --device cpu')
    return device


def load_config(config: ConfigLike, cfg_options: Optional[dict] = None) -> Config:
    """Read a config file (a :class:`Config` is copied), then apply ``cfg_options``.

    Args:
        config: Config file or object.
        cfg_options: Overrides as ``--cfg-options`` gives them, e.g.
            ``{'test_dataloader.dataset.pipeline.1.scale': 128}``.
    """
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    else:
        path = Path(config)
        if not path.is_file():
            raise ModelLoadError(f'{path}: config file not found; pass a config such as '
                                 'configs/hifuse/hifuse-tiny_isic2018.py')
        cfg = Config.fromfile(str(path))
        if 'model' not in cfg:
            raise ModelLoadError(f'{path}: the config has no `model`; pass a model config')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def num_classes_of(cfg: Config) -> Optional[int]:
    """Number of classes of the config's head (None when it does not say)."""
    head = cfg.model.get('head') or {}
    return head.get('num_classes')


def checkpoint_classes(meta: object, checkpoint: Union[str, Path] = 'the checkpoint'
                       ) -> Optional[Tuple[str, ...]]:
    """The class names a checkpoint's ``meta.dataset_meta.classes`` records (None: none).

    Checkpoint metadata is data, never a path: the names must be a list (or tuple) of strings;
    anything else (a string, which a config may use as the path of a classes.txt, a number, a
    dict, a list holding other things) is refused.

    Raises:
        ModelLoadError: naming the checkpoint and the key.
    """
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise ModelLoadError(f'{checkpoint}: its `meta` is a {type(meta).__name__}, not a dict; '
                             'the checkpoint was not written by MMEngine / our training')
    dataset_meta = meta.get('dataset_meta')
    if dataset_meta is None:
        return None
    if not isinstance(dataset_meta, dict):
        raise ModelLoadError(f'{checkpoint}: meta.dataset_meta is a '
                             f'{type(dataset_meta).__name__}, not a dict; it cannot name the '
                             'classes')
    classes = dataset_meta.get('classes')
    if classes is None:
        return None
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
        kind = type(classes).__name__ if not isinstance(classes, (list, tuple)) else \
            f'{type(classes).__name__} holding ' + ', '.join(sorted(
                {type(c).__name__ for c in classes if not isinstance(c, str)}))
        raise ModelLoadError(
            f'{checkpoint}: meta.dataset_meta.classes must be a list of class names (strings), '
            f'got a {kind}; class names are read from a checkpoint as data, never from a file it '
            'names. Re-save the checkpoint with the names as a list (or remove the key: the '
            "config's classes are used then).")
    return tuple(classes)


def class_names(cfg: Config, meta: dict, num_classes: Optional[int],
                checkpoint: Union[str, Path] = 'the checkpoint') -> Tuple[str, ...]:
    """Class names: the checkpoint's ``dataset_meta``, else the config's test dataset classes.

    The checkpoint's names must be a list of strings (:func:`checkpoint_classes`); the config's
    may also be the path of a classes.txt (the user's own config, read as MMPretrain does).
    Falls back to ``class_0, class_1, ...`` when neither names them (or the count is wrong).
    """
    candidates = []
    from_checkpoint = checkpoint_classes(meta, checkpoint)
    if from_checkpoint:
        candidates.append(from_checkpoint)
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    if dataset.get('classes'):
        candidates.append(dataset['classes'])
    if cfg.get('classes'):
        candidates.append(cfg['classes'])
    for classes in candidates:
        if isinstance(classes, str):
            try:
                classes = read_classes_file(Path(classes).expanduser())
            except (OSError, UnicodeDecodeError):
                continue
        classes = tuple(str(name) for name in classes)
        if num_classes is None or len(classes) == num_classes:
            return classes
    count = num_classes or 0
    return tuple(f'class_{i}' for i in range(count))


def _read_checkpoint(model: nn.Module, checkpoint: Union[str, Path],
                     trust_checkpoint: bool = False) -> dict:
    path = Path(checkpoint)
    if not path.is_file():
        raise ModelLoadError(checkpoint_not_found_message(checkpoint))
    try:
        loaded = load_checkpoint_file(path, map_location='cpu', trust=trust_checkpoint)
    except UntrustedCheckpointError as err:
        raise ModelLoadError(str(err)) from err
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, UnicodeDecodeError,
            RuntimeError) as err:
        raise ModelLoadError(f'{path}: not a readable PyTorch checkpoint ({err})') from err
    if not isinstance(loaded, dict) or not loaded:
        raise ModelLoadError(f'{path}: not a checkpoint (holds a {type(loaded).__name__})')
    mismatch = compare_state_dict(model, checkpoint_state_dict(loaded))
    if mismatch:
        raise ModelLoadError(
            f'{path} does not fit the model of the config: {mismatch.describe()}. Pass the '
            'config the checkpoint was trained with (same architecture and num_classes).')
    meta = loaded.get('meta')
    checkpoint_classes(meta, path)  # refuse bad class names before any work is done
    _load_checkpoint_to_model(model, loaded, strict=True, logger='silent')
    return meta or {}


def load_model(config: ConfigLike, checkpoint: Union[str, Path],
               device: Optional[Union[str, torch.device]] = None,
               cfg_options: Optional[dict] = None,
               trust_checkpoint: bool = False) -> LoadedModel:
    """Build the config's model, load ``checkpoint`` into it (strictly) and put it in eval mode.

    Args:
        config: Config file or object (its ``model``, ``data_preprocessor`` and test pipeline
            are used).
        checkpoint: A checkpoint written by our training, a published (slim) one or converted
            released weights.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``...; None: CUDA when available.
        cfg_options: Config overrides (see :func:`load_config`).
        trust_checkpoint: Allow full unpickling of a checkpoint that does not load
            weights-only (it can run code: only for files you trust).

    Raises:
        ModelLoadError: a file is missing or unreadable, the checkpoint needs full unpickling
            and is not trusted, or it does not fit the config's model.
    """
    from mmpretrain.registry import MODELS

    cfg = load_config(config, cfg_options)
    device = resolve_device(device)
    model_cfg = cfg.model.copy()
    # As mmengine's Runner does: the top-level data_preprocessor belongs to the model.
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmpretrain')):
        model = MODELS.build(model_cfg)
    meta = _read_checkpoint(model, checkpoint, trust_checkpoint)
    model.to(device).eval()
    classes = class_names(cfg, meta, num_classes_of(cfg), checkpoint)
    return LoadedModel(model=model, cfg=cfg, classes=classes, device=device,
                       checkpoint_meta=dict(meta))

