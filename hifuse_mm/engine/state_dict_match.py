"""Checkpoints that do not fit the model: a clear error naming the mismatched keys.

mmengine's ``Runner.load_checkpoint`` (``load_from``, ``tools/test.py``, ``--resume``) loads
non-strictly: a checkpoint of another architecture or class count only logs a warning and the
run goes on with randomly initialised layers (a test then reports a random model's metrics).
:meth:`hifuse_mm.engine.runner.HiFuseRunner.load_checkpoint` is strict: any missing, unexpected
or differently shaped tensor (:func:`compare_state_dict`) raises
:class:`CheckpointMismatchError`, which names the file, lists them (the first few of each
kind) and says what to do. To start from a checkpoint of another class count on purpose,
load the backbone only: ``model.backbone.init_cfg=dict(type='Pretrained', checkpoint=...,
prefix='backbone.')`` (that path is not affected).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence, Tuple

import torch
import torch.nn as nn

_SHOWN = 6


@dataclass
class StateDictMismatch:
    """How a state dict differs from a model's.

    Attributes:
        missing: Model keys the checkpoint lacks (``num_batches_tracked`` ignored).
        unexpected: Checkpoint keys the model does not have.
        shapes: ``(key, checkpoint shape, model shape)`` of tensors of another shape.
    """

    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    shapes: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes)

    def describe(self, shown: int = _SHOWN) -> str:
        """Human-readable summary, at most ``shown`` keys of each kind."""

        def listing(items: Sequence[str]) -> str:
            more = f' and {len(items) - shown} more' if len(items) > shown else ''
            return ', '.join(items[:shown]) + more

        parts = []
        if self.shapes:
            parts.append(f'{len(self.shapes)} tensor(s) of another shape (' + listing(
                [f'{key}: checkpoint {list(a)} vs model {list(b)}'
                 for key, a, b in self.shapes]) + ')')
        if self.missing:
            parts.append(f'{len(self.missing)} model key(s) missing from the checkpoint ('
                         f'{listing(self.missing)})')
        if self.unexpected:
            parts.append(f'{len(self.unexpected)} checkpoint key(s) the model does not have ('
                         f'{listing(self.unexpected)})')
        return '; '.join(parts)


class CheckpointMismatchError(RuntimeError):
    """A checkpoint does not fit the model built from the config."""

    def __init__(self, mismatch: StateDictMismatch, source: str = 'the checkpoint') -> None:
        self.mismatch, self.source = mismatch, source
        super().__init__(
            f'{source} does not fit the model built from the config: {mismatch.describe()}. '
            'It was made for another architecture or number of classes: use the config it '
            'was trained with (a checkpoint of ours has it in meta["cfg"]), or, to fine-tune '
            'from it with other classes, load only its backbone with '
            "model.backbone.init_cfg=dict(type='Pretrained', checkpoint=..., "
            "prefix='backbone.') instead of load_from.")


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP / TTA wrappers (what mmengine loads weights into)."""
    from mmengine.model import BaseTTAModel, is_model_wrapper
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def checkpoint_state_dict(checkpoint: Any,
                          revise_keys: Sequence[Tuple[str, str]] = ((r'^module\.', ''), )
                          ) -> Dict[str, Any]:
    """The state dict of a loaded checkpoint, with mmengine's key revisions applied."""
    state_dict = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) \
        else checkpoint
    for pattern, replacement in revise_keys:
        state_dict = {re.sub(pattern, replacement, k): v for k, v in state_dict.items()}
    return dict(state_dict)


def compare_state_dict(model: nn.Module, state_dict: Dict[str, Any]) -> StateDictMismatch:
    """How ``state_dict`` differs from ``model``'s own (after unwrapping)."""
    own = unwrap(model).state_dict()
    mismatch = StateDictMismatch()
    mismatch.missing = [k for k in own if k not in state_dict
                        and not k.endswith('num_batches_tracked')]
    mismatch.unexpected = [k for k in state_dict if k not in own]
    for key, value in state_dict.items():
        if key in own and isinstance(value, torch.Tensor) and value.shape != own[key].shape:
            mismatch.shapes.append((key, tuple(value.shape), tuple(own[key].shape)))
    return mismatch
