"""Family-independent part of the official-checkpoint converter.

A *family* (HiFuse, HEMF) plugs in with :func:`register_family` and
provides these functions:

* ``detect(state_dict) -> bool``: whether the tensors are this family's;
* ``settings(state_dict) -> dict``: the variant read from the tensors
  (depths, dense or depthwise 3x3, number of classes, ...);
* ``model_cfg(settings) -> dict``: an ``ImageClassifier`` config of ours
  that has exactly the released model's structure;
* ``rename(key, settings) -> str | None``: our key for a released key, or
  None for keys of modules the authors build but never call;
* optionally ``transform(our_key, tensor) -> tensor`` for layout changes.

:func:`convert_official` does the rest: it builds our model from
``model_cfg`` as a template, maps every released tensor onto it with shape
checks, fills the state our model derives itself (relative position
indices and similar buffers, ``num_batches_tracked`` when the source lacks
it), and refuses anything it cannot account for.
"""
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch

StateDict = Dict[str, torch.Tensor]


class ConversionError(ValueError):
    """The checkpoint is not one this converter recognises."""


@dataclass(frozen=True)
class Family:
    name: str
    detect: Callable[[StateDict], bool]
    settings: Callable[[StateDict], dict]
    model_cfg: Callable[[dict], dict]
    rename: Callable[[str, dict], Optional[str]]
    #: ``(our_key, tensor) -> tensor`` for layout changes.
    transform: Callable[[str, torch.Tensor], torch.Tensor] = (
        lambda key, value: value)
    #: Buffers our model computes itself; taken from the template (and
    #: checked against the source when the source has them).
    derived_buffers: Tuple[str, ...] = ()


_FAMILIES: Dict[str, Family] = {}


def register_family(family: Family) -> Family:
    _FAMILIES[family.name] = family
    return family


def extract_state_dict(checkpoint: object) -> StateDict:
    """The bare state dict of a released checkpoint.

    Accepts a bare ``state_dict`` or one stored under ``state_dict``,
    ``model`` or ``net`` (the authors' training scripts save ``net``);
    strips a ``module.`` prefix left by ``DataParallel``.
    """
    if isinstance(checkpoint, dict):
        for key in ('state_dict', 'model', 'net'):
            if isinstance(checkpoint.get(key), dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict) or not checkpoint or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ConversionError(
            'expected a state dict of tensors, bare or under one of the keys '
            '"state_dict", "model" or "net"')
    if all(k.startswith('module.') for k in checkpoint):
        checkpoint = {k[len('module.'):]: v for k, v in checkpoint.items()}
    return dict(checkpoint)


def count_indices(state_dict: StateDict, pattern: str) -> int:
    """Number of distinct values of ``pattern``'s group 1 over the keys."""
    rx = re.compile(pattern)
    return len({m.group(1) for k in state_dict for m in [rx.match(k)] if m})


def is_depthwise_conv(state_dict: StateDict, key: str, what: str) -> bool:
    """Whether the square conv ``key`` is depthwise (True) or dense."""
    weight = state_dict[key]
    if weight.shape[1] == 1:
        return True
    if weight.shape[1] == weight.shape[0]:
        return False
    raise ConversionError(f'{key} has shape {tuple(weight.shape)}: neither '
                          f'the dense nor the depthwise {what}')


def detect_family(state_dict: StateDict) -> Family:
    matches = [f for f in _FAMILIES.values() if f.detect(state_dict)]
    if len(matches) != 1:
        raise ConversionError(
            'not a checkpoint of the released HiFuse or HEMF code '
            f'(recognised families: {sorted(_FAMILIES)}); its first keys '
            f'are {list(state_dict)[:5]}')
    return matches[0]


def _is_derived(key: str, family: Family) -> bool:
    return key.endswith('num_batches_tracked') or key.rsplit(
        '.', 1)[-1] in family.derived_buffers


def convert_official(checkpoint: object) -> Tuple[StateDict, dict]:
    """Convert a released checkpoint; return ``(state_dict, meta)``.

    ``meta`` holds the family, the detected settings, the model config to
    build, and the released keys that were dropped (never-called modules).
    """
    from mmpretrain.registry import MODELS

    from .. import models  # noqa: F401  (registers our models)

    source = extract_state_dict(checkpoint)
    family = detect_family(source)
    settings = family.settings(source)
    model_cfg = family.model_cfg(settings)
    template = MODELS.build(model_cfg).state_dict()

    out: StateDict = {}
    dropped: List[str] = []
    for key, value in source.items():
        new_key = family.rename(key, settings)
        if new_key is None:
            dropped.append(key)
            continue
        if new_key not in template:
            raise ConversionError(
                f'released key {key!r} maps to {new_key!r}, which the '
                f'detected {family.name} variant {settings} does not have')
        expected = template[new_key]
        if _is_derived(new_key, family) and not new_key.endswith(
                'num_batches_tracked'):
            if not torch.equal(value.to(expected.dtype), expected):
                raise ConversionError(
                    f'buffer {key!r} differs from the value our model '
                    'computes; the checkpoint was made with other settings')
            dropped.append(key)
            continue
        if value.shape != expected.shape:
            raise ConversionError(
                f'released key {key!r} has shape {tuple(value.shape)}, '
                f'expected {tuple(expected.shape)} for {new_key!r}')
        out[new_key] = family.transform(new_key, value).to(
            expected.dtype).clone()

    missing = [k for k in template if k not in out]
    unfilled = [k for k in missing if not _is_derived(k, family)]
    if unfilled:
        raise ConversionError(
            f'the checkpoint lacks tensors for {len(unfilled)} parameters '
            f'of the detected {family.name} variant, e.g. {unfilled[:5]}')
    for key in missing:
        out[key] = template[key].clone()

    meta = dict(
        family=family.name,
        settings=settings,
        model=model_cfg,
        dropped_keys=dropped,
    )
    return dict((k, out[k]) for k in template), meta
