"""``EpochReseedHook``: every epoch's randomness depends only on (seed, epoch), so a resumed run
repeats an uninterrupted one exactly.

mmengine seeds the global RNGs (``random``, numpy, torch) once, when the runner starts. Data
augmentation (``RandomResizedCrop``, ``RandomFlip`` draw from numpy) and dropout / drop-path
(torch) then consume them, and a checkpoint does not store their state: after ``--resume`` from
the epoch-``k`` checkpoint they restart from the seed, not from where the interrupted run was,
and the rest of the run differs. This hook reseeds all three at the start of every training
epoch from ``(seed, epoch[, rank])``; the sampler already shuffles by ``seed + epoch``
(``DefaultSampler`` with ``DistSamplerSeedHook``). With ``randomness=dict(seed=..., deterministic=
True)`` a run interrupted at any point and resumed gives the same weights and metrics as an
uninterrupted one (tests/test_crash_resume.py).

Dataloader workers (``num_workers > 0``) draw the augmentation randomness in their own
processes. mmengine seeds them with a fixed ``seed + worker_id`` when they start (so with
``persistent_workers=False`` every epoch repeats the same random stream), and persistent workers
carry their state across epochs, which a resume cannot reproduce. :func:`epoch_worker_seed`
instead seeds each worker from the seed PyTorch hands it for the epoch's iterator (drawn from
the main process's torch RNG, which this hook has just reseeded) and the rank; with workers
that start afresh every epoch the augmentation then depends only on ``(seed, epoch)`` too.
``tools/train.py`` switches the training dataloader to that (``persistent_workers=False``,
``worker_init_fn=dict(type='epoch_worker_seed')``) when ``randomness.deterministic`` is True.

Scope: epoch-based loops (``EpochBasedTrainLoop``; resuming happens at epoch checkpoints).
"""
from __future__ import annotations

import hashlib
import os
import random
from typing import Any

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import FUNCTIONS
from mmpretrain.registry import HOOKS


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """A 32-bit seed derived from ``(seed, epoch, rank)`` (a hash: nearby inputs do not give
    related streams)."""
    digest = hashlib.sha256(f'hifuse_mm/{seed}/{epoch}/{rank}'.encode()).digest()
    return int.from_bytes(digest[:4], 'little')


def reseed_all(seed: int) -> None:
    """Seed Python's ``random``, numpy's global RNG and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@FUNCTIONS.register_module()
def epoch_worker_seed(worker_id: int) -> None:
    """Dataloader ``worker_init_fn``: seed the worker from PyTorch's per-iterator seed and rank.

    PyTorch gives worker ``i`` of an iterator the seed ``base + i``, with ``base`` drawn from the
    main process's torch RNG when the iterator is created; :class:`EpochReseedHook` makes that
    a function of ``(seed, epoch)``. Mixing in the rank keeps the ranks' streams apart.
    """
    rank = int(os.environ.get('RANK', 0))
    reseed_all(epoch_seed(torch.initial_seed(), worker_id, rank))


@HOOKS.register_module()
class EpochReseedHook(Hook):
    """Reseed the global RNGs from ``(runner.seed, epoch)`` before every training epoch.

    Args:
        enable: Set False to keep mmengine's single seeding (the hook then does nothing).
    """

    priority = 'VERY_HIGH'

    def __init__(self, enable: bool = True) -> None:
        self.enable = enable

    def before_train_epoch(self, runner: Any) -> None:
        seed = getattr(runner, 'seed', None)
        if not self.enable or seed is None:
            return
        randomness = getattr(runner, '_randomness_cfg', None) or {}
        rank = get_rank() if randomness.get('diff_rank_seed', False) else 0
        reseed_all(epoch_seed(int(seed), runner.epoch, rank))
