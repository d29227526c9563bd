"""Checkpoints that do not fit the model: a clear error naming the mismatched keys.

``Runner.load_checkpoint`` (``load_from``, ``tools/test.py``, ``--resume``) loads non-strictly in
mmengine 0.10.7: a checkpoint of another architecture or class count only logs a warning and
the run goes on with randomly initialised layers (a test then reports a random model's
metrics). :func:`install` makes it strict: any missing, unexpected or differently shaped tensor
raises :class:`CheckpointMismatchError`, which lists them (the first few of each kind) and
says what to do. To start from a checkpoint of another class count on purpose, load the
backbone only: ``model.backbone.init_cfg=dict(type='Pretrained', checkpoint=...,
prefix='backbone.')`` (that path is not affected).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

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


def _strict(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap mmengine's ``_load_checkpoint_to_model`` as bound in ``mmengine.runner.runner``."""

    def load_checkpoint_to_model(model: nn.Module, checkpoint: Any, strict: bool = False,
                                 logger: Optional[Any] = None,
                                 revise_keys: Sequence[Tuple[str, str]] = (
                                     (r'^module\.', ''), )) -> Any:
        mismatch = compare_state_dict(model, checkpoint_state_dict(checkpoint, revise_keys))
        if mismatch:
            raise CheckpointMismatchError(mismatch)
        return original(model, checkpoint, strict, logger, list(revise_keys))

    load_checkpoint_to_model._hifuse_strict = True  # type: ignore[attr-defined]
    load_checkpoint_to_model.__wrapped__ = original  # type: ignore[attr-defined]
    return load_checkpoint_to_model


def _named_source(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``Runner.load_checkpoint`` so that a mismatch error names the file."""

    def load_checkpoint(self: Any, filename: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, filename, *args, **kwargs)
        except CheckpointMismatchError as err:
            raise CheckpointMismatchError(err.mismatch, str(filename)) from None

    load_checkpoint._hifuse_named = True  # type: ignore[attr-defined]
    load_checkpoint.__wrapped__ = original  # type: ignore[attr-defined]
    return load_checkpoint


def install() -> None:
    """Make the runner's checkpoint loading strict, with :class:`CheckpointMismatchError`."""
    from mmengine.runner import Runner
    from mmengine.runner import runner as runner_module

    if not getattr(runner_module._load_checkpoint_to_model, '_hifuse_strict', False):
        runner_module._load_checkpoint_to_model = _strict(
            runner_module._load_checkpoint_to_model)
    if not getattr(Runner.load_checkpoint, '_hifuse_named', False):
        Runner.load_checkpoint = _named_source(Runner.load_checkpoint)
