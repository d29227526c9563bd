"""The training config from a loaded config and the train tool's options (pure transforms).

:func:`configure_training` is what ``tools/train.py`` applies, in MMPretrain 1.2's order: work
dir and launcher, ``--amp`` (:func:`~.run_config.amp_optim_wrapper_cfg`), ``--resume``
(:func:`set_resume`), ``--no-validate`` (:func:`disable_validation`), ``--auto-scale-lr``
(:func:`enable_auto_scale_lr`), the dataloader defaults, the shared tail
(:func:`~.run_config.prepare_run`), :func:`reproducible_workers` and
:func:`fit_schedule_to_run` (short runs such as ``--cfg-options train_cfg.max_epochs=1`` with
the papers' warm-up + cosine schedule).
"""
from __future__ import annotations

import logging
from typing import Any, List, Optional, Tuple

from mmengine.config import Config
from mmengine.logging import print_log

from .run_config import (RunConfigError, amp_optim_wrapper_cfg, prepare_run,
                         set_dataloader_defaults, set_work_dir)


def set_resume(cfg: Config, resume: Optional[str]) -> None:
    """``resume='auto'``: from the latest checkpoint in the work dir; a path: from that
    checkpoint; None: no resume (the config's own setting stays)."""
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume is not None:
        cfg.resume, cfg.load_from = True, resume


def disable_validation(cfg: Config) -> None:
    """``--no-validate``: no validation loop, dataloader or evaluator."""
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None


def enable_auto_scale_lr(cfg: Config) -> None:
    """``--auto-scale-lr``: scale the lr by total batch size / ``auto_scale_lr.base_batch_size``.

    Raises:
        RunConfigError: the config has no ``auto_scale_lr`` entry.
    """
    if 'auto_scale_lr' not in cfg:
        raise RunConfigError('--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=N)` '
                             'in the config')
    cfg.auto_scale_lr.enable = True


def reproducible_workers(cfg: Config) -> None:
    """With ``randomness.deterministic``: training dataloader workers that start afresh every
    epoch, seeded from (seed, epoch), so that ``--resume`` repeats a run exactly (see
    :mod:`hifuse_mm.engine.hooks.epoch_reseed_hook`). The config's own ``worker_init_fn``
    wins."""
    loader = cfg.get('train_dataloader')
    if not (cfg.get('randomness') or {}).get('deterministic') or not loader \
            or not loader.get('num_workers') or 'worker_init_fn' in loader:
        return
    loader['worker_init_fn'] = dict(type='epoch_worker_seed')
    loader['persistent_workers'] = False


def _loop_length(train_cfg: Any) -> Optional[Tuple[bool, int]]:
    """``(by_epoch, max_epochs or max_iters)`` of a ``train_cfg``; None when it is not one of
    mmengine's two train loops or has no length."""
    if not isinstance(train_cfg, dict):
        return None
    kind = train_cfg.get('type')
    if kind is None:
        by_epoch = train_cfg.get('by_epoch', True)
    elif str(kind).split('.')[-1] in ('EpochBasedTrainLoop', 'IterBasedTrainLoop'):
        by_epoch = str(kind).split('.')[-1] == 'EpochBasedTrainLoop'
    else:
        return None
    length = train_cfg.get('max_epochs' if by_epoch else 'max_iters')
    return (by_epoch, length) if isinstance(length, int) and length >= 1 else None


def fit_schedule_to_run(cfg: Config) -> List[str]:
    """Leave out the parameter schedulers that would begin only when the run is over.

    A scheduler without ``end`` ends at the run's end (``max_epochs``, or ``max_iters`` for
    iteration-based ones; mmengine's default), and mmengine refuses one whose ``begin`` is not
    before that end ("end should be larger than begin"). The papers' schedule (one warm-up
    epoch, then cosine from epoch 1 to the end) thus failed for ``max_epochs=1``. Such a
    scheduler would never act in this run, so it is removed from it, with a logged note; a
    short run is then the beginning of the full schedule (``max_epochs=1``: the warm-up epoch
    only). Everything else (explicit ``end`` values, schedulers counted in the other unit than
    the train loop, multi-optimizer dicts) is left as it is.

    Returns:
        The notes logged (one per scheduler left out).
    """
    schedulers = cfg.get('param_scheduler')
    loop = _loop_length(cfg.get('train_cfg'))
    if loop is None or not isinstance(schedulers, (list, tuple, dict)):
        return []
    by_epoch, length = loop
    unit = 'epoch' if by_epoch else 'iteration'
    single = isinstance(schedulers, dict)
    if single and 'type' not in schedulers:
        return []  # one list per optimizer: left to mmengine
    kept, notes = [], []
    for index, scheduler in enumerate([schedulers] if single else schedulers):
        if isinstance(scheduler, dict) and 'end' not in scheduler \
                and bool(scheduler.get('by_epoch', True)) == by_epoch \
                and isinstance(scheduler.get('begin', 0), int) \
                and scheduler.get('begin', 0) >= length:
            name = 'param_scheduler' + ('' if single else f'[{index}]')
            notes.append(f'{name} ({scheduler.get("type")}) begins at {unit} '
                         f'{scheduler["begin"]}, not before the end of this run '
                         f'(train_cfg.max_{unit}s={length}): left out of this run')
            continue
        kept.append(scheduler)
    if notes:
        cfg.param_scheduler = (kept[0] if kept else None) if single else kept
        for note in notes:
            print_log(note, logger='current', level=logging.WARNING)
    return notes


def configure_training(cfg: Config, *, config_file: str, work_dir: Optional[str] = None,
                       launcher: str = 'none', amp: bool = False, resume: Optional[str] = None,
                       validate: bool = True, auto_scale_lr: bool = False,
                       pin_memory: bool = True, persistent_workers: bool = True,
                       compile_model: bool = False, cfg_options: Optional[dict] = None,
                       skip_bad_images: bool = False) -> Config:
    """Turn ``cfg`` (loaded from ``config_file``) into the training config; returns it.

    The options are those of ``tools/train.py`` (``validate=False`` is ``--no-validate``,
    ``pin_memory=False`` ``--no-pin-memory``, ``persistent_workers=False``
    ``--no-persistent-workers``, ``compile_model`` ``--compile``, ``resume`` as
    :func:`set_resume`). Raises :class:`~.run_config.RunConfigError` for an option the config
    cannot take.
    """
    cfg.launcher = launcher
    set_work_dir(cfg, work_dir, config_file)
    if amp:
        amp_optim_wrapper_cfg(cfg.optim_wrapper)
    set_resume(cfg, resume)
    if not validate:
        disable_validation(cfg)
    if auto_scale_lr:
        enable_auto_scale_lr(cfg)
    set_dataloader_defaults(cfg, pin_memory=pin_memory, persistent_workers=persistent_workers)
    prepare_run(cfg, launcher=launcher, compile_model=compile_model, cfg_options=cfg_options,
                skip_bad_images=skip_bad_images)
    reproducible_workers(cfg)
    fit_schedule_to_run(cfg)
    return cfg
