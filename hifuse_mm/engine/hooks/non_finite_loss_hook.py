"""``NonFiniteLossHook``: stop training at the first NaN / inf loss, keeping the last good
checkpoint as the latest.

The check runs right after each training iteration, before any hook that could save the
(now broken) weights: ``CheckpointHook`` has the lowest priority, and the epoch checkpoint is only
written after the epoch ends. Raising :class:`NonFiniteLossError` ends the run there, so
``work_dir/last_checkpoint`` still names the last checkpoint with finite weights; the message
says where it happened, with which images, and what to do. In a distributed run every rank
learns of a non-finite loss on any rank (one small all-reduce per iteration) and all stop.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

from ..last_checkpoint import checkpoint_path_from_pointer


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message says what to do."""


def _value(loss: Any) -> float:
    if isinstance(loss, torch.Tensor):
        return float(loss.detach().float().mean())
    return float(loss)


def _image_paths(data_batch: Any, limit: int = 4) -> Sequence[str]:
    samples = data_batch.get('data_samples') if isinstance(data_batch, dict) else None
    paths = [getattr(s, 'img_path', None) or s.metainfo.get('img_path')
             for s in (samples or []) if hasattr(s, 'metainfo')]
    return [p for p in paths if p][:limit]


def _last_checkpoint(work_dir: str) -> Optional[str]:
    try:
        return checkpoint_path_from_pointer(work_dir)
    except OSError:
        return None


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` when a training loss is NaN or infinite."""

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        losses = {key: _value(value) for key, value in (outputs or {}).items()
                  if 'loss' in key}
        bad = {key: value for key, value in losses.items() if not math.isfinite(value)}
        if get_world_size() > 1:
            flag = torch.tensor([float(bool(bad))])
            all_reduce(flag)
            if not bad and flag.item() > 0:
                bad = {'loss': float('nan')}
                where = ' on another rank'
            else:
                where = ' on this rank'
        else:
            where = ''
        if not bad:
            return
        last = _last_checkpoint(runner.work_dir)
        kept = (f'The latest checkpoint, {last}, was written before this and is unchanged.'
                if last else 'No checkpoint had been written yet.')
        paths = _image_paths(data_batch)
        batch = f' Images of the batch include {", ".join(paths)}.' if paths else ''
        values = ', '.join(f'{key} = {value}' for key, value in bad.items())
        raise NonFiniteLossError(
            f'training stopped: {values}{where} at epoch {runner.epoch + 1}, iteration '
            f'{runner.iter + 1} ({batch_idx + 1} of this epoch); nothing was saved after it.'
            f'{batch} {kept} What to do: lower the learning rate '
            '(optim_wrapper.optimizer.lr) or add gradient clipping '
            '(optim_wrapper.clip_grad=dict(max_norm=5.0)), try without --amp, check the images '
            'above, then continue with --resume.')
