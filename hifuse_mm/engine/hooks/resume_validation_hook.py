"""``ResumeValidationHook``: ``--resume`` validates the resumed checkpoint when the run that
saved it stopped before validating it.

mmengine saves an epoch's checkpoint in ``after_train_epoch`` and validates the epoch after
that. A run killed in between leaves a checkpoint whose epoch was never validated, and
``--resume`` goes straight on to the next epoch: that epoch's score never takes part in the
choice of the best checkpoint, which can then differ from an uninterrupted run's.

This hook (registered by :class:`~hifuse_mm.engine.runner.HiFuseRunner` in every run, last of
all hooks) records each validation done while training in ``last_validation.json`` beside the
checkpoints (``{"epoch": E, "iter": I}``, written atomically once the checkpoint hook has saved
the best checkpoint). On a resume, before the first epoch, it runs the validation the train loop
would have run after the resumed checkpoint (same ``val_interval`` / ``val_begin`` rule) unless
the record beside the checkpoint shows it was done (``iter`` at least the checkpoint's). The
validation runs with every hook, as in the uninterrupted run, so the best checkpoint, its score,
the logged metrics and a metric-driven LR schedule come out the same. A record that is missing
or unreadable means "not validated" (at worst one validation more, which leaves the best
checkpoint as it is: only a strictly better score replaces it).

A training that starts afresh (no ``--resume``) removes an old record; after a resume the record
is rewritten to the resumed position, so it always describes the run that continues. In
distributed runs rank 0 decides and all ranks validate.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from mmpretrain.registry import HOOKS

from ..atomic_backend import is_local_path
from ..atomic_io import atomic_write_text

#: The record's name, beside the checkpoints (the checkpoint hook's ``out_dir``).
MARKER_NAME = 'last_validation.json'


def read_marker(folder: Any) -> Optional[dict]:
    """The validation record in ``folder``; None when missing or not a record."""
    try:
        record = json.loads((Path(folder) / MARKER_NAME).read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or type(record.get('iter')) is not int:
        return None
    return record


def validation_due(loop: Any) -> bool:
    """Whether ``loop`` (built, at its current position) validates after that position, by
    the rule its ``run`` applies."""
    if isinstance(loop, EpochBasedTrainLoop):
        position, last = loop.epoch, loop.max_epochs
    elif isinstance(loop, IterBasedTrainLoop):
        position, last = loop.iter, loop.max_iters
    else:
        return False
    if position <= 0:
        return False
    decide = getattr(loop, '_decide_current_val_interval', None)
    if callable(decide):
        decide()
    return position >= loop.val_begin and (position % loop.val_interval == 0 or
                                           position == last)


def _checkpoint_folder(runner: Any) -> Optional[str]:
    """Where the run's checkpoints go (local folders only)."""
    hook = next((h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
    folder = getattr(hook, 'out_dir', None) or runner.work_dir
    return str(folder) if is_local_path(folder) else None


@HOOKS.register_module()
class ResumeValidationHook(Hook):
    """Validate a resumed checkpoint whose validation the interrupted run did not finish (see
    the module docstring). No arguments."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self._training = False

    def before_train(self, runner: Any) -> None:
        self._training = True
        folder = _checkpoint_folder(runner)
        resumed = getattr(runner, 'resumed_checkpoint', None)
        if resumed is None:  # a fresh start: an old record describes another run
            if folder is not None and is_main_process():
                (Path(folder) / MARKER_NAME).unlink(missing_ok=True)
            return
        needed = [False]
        if is_main_process() and is_local_path(resumed) and runner.val_loop is not None \
                and validation_due(runner.train_loop):
            record = read_marker(os.path.dirname(str(resumed)))
            needed[0] = record is None or record['iter'] < runner.iter
        broadcast_object_list(needed)
        if not needed[0]:
            self._write_marker(runner)
            return
        runner.logger.warning(
            f'{resumed} (epoch {runner.epoch}, iteration {runner.iter}) was saved but the run '
            'stopped before validating it: validating it now, as the uninterrupted run did')
        runner.val_loop.run()

    def after_val_epoch(self, runner: Any, metrics: Optional[dict] = None) -> None:
        if self._training:
            self._write_marker(runner)

    def after_train(self, runner: Any) -> None:
        self._training = False

    @staticmethod
    def _write_marker(runner: Any) -> None:
        folder = _checkpoint_folder(runner)
        if folder is None or not is_main_process():
            return
        atomic_write_text(Path(folder) / MARKER_NAME,
                          json.dumps(dict(epoch=runner.epoch, iter=runner.iter)) + '\n')
