"""The training config from a loaded config and the train tool's options (pure transforms).

:func:`configure_training` is what ``tools/train.py`` applies, in MMPretrain 1.2's order: work
dir and launcher, ``--amp`` (:func:`~.run_config.amp_optim_wrapper_cfg`), ``--resume``
(:func:`set_resume`), ``--no-validate`` (:func:`disable_validation`), ``--auto-scale-lr``
(:func:`enable_auto_scale_lr`), the dataloader defaults, the shared tail
(:func:`~.run_config.prepare_run`) and :func:`reproducible_workers`.
"""
from __future__ import annotations

from typing import Optional

from mmengine.config import Config

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
    return cfg
