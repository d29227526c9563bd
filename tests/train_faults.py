"""Fault injection for the crash tests: a hook that SIGKILLs its own training process.

Test-only; a test config loads it with ``custom_imports`` (``tests/`` on ``PYTHONPATH``) and
adds ``dict(type='FaultInjectionHook')`` to ``custom_hooks``. What it does is read from the
environment variable ``HIFUSE_FAULT`` so that one config serves every run:

* unset: nothing (the uninterrupted reference run);
* ``iter:N``: SIGKILL right after training iteration ``N`` (1-based, counted over the run);
* ``save:NAME``: SIGKILL in the middle of writing the file ``NAME`` (e.g. ``epoch_4.pth`` or
  ``last_checkpoint``): when the writer syncs its temporary file to disk, the file is cut to
  half its size first, as if the kill had come while the bytes were being written;
* ``nan:N``: before training iteration ``N`` the head's bias becomes NaN, so that iteration's
  loss is NaN (a diverged run);
* ``val:N``: SIGKILL when the validation of epoch ``N`` starts (``before_val_epoch``), that is
  after epoch ``N``'s checkpoint was saved and before it was validated.

Only the fault is simulated; the training and saving code that runs is the real one.
"""
import os
import signal

import torch
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_while_writing(name: str) -> None:
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        try:
            path = os.readlink(f'/proc/self/fd/{fd}')
        except OSError:
            path = ''
        base = os.path.basename(path)
        if base == name or base.startswith(f'.{name}.tmp-'):
            os.ftruncate(fd, os.fstat(fd).st_size // 2)
            _kill()
        real_fsync(fd)

    os.fsync = fsync


@HOOKS.register_module()
class FaultInjectionHook(Hook):
    """Kill the process at the point ``HIFUSE_FAULT`` names (see the module docstring)."""

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        kind, _, value = os.environ.get('HIFUSE_FAULT', '').partition(':')
        self.kill_after_iter = int(value) if kind == 'iter' else None
        self.kill_while_writing = value if kind == 'save' else None
        self.nan_at_iter = int(value) if kind == 'nan' else None
        self.kill_before_val_of = int(value) if kind == 'val' else None

    def before_run(self, runner) -> None:
        if self.kill_while_writing:
            _kill_while_writing(self.kill_while_writing)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self.nan_at_iter is not None and runner.iter + 1 == self.nan_at_iter:
            model = getattr(runner.model, 'module', runner.model)
            with torch.no_grad():
                model.head.fc.bias.fill_(float('nan'))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if self.kill_after_iter is not None and runner.iter + 1 == self.kill_after_iter:
            _kill()

    def before_val_epoch(self, runner) -> None:
        if self.kill_before_val_of is not None and runner.epoch == self.kill_before_val_of:
            _kill()
