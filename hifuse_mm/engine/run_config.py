"""Config transforms the tools apply to a loaded config (pure functions of the config).

* ``persistent_workers`` needs ``num_workers > 0``: mmpretrain's tools/train.py defaults
  ``persistent_workers=True`` for every dataloader, and torch's DataLoader raises ValueError when
  num_workers == 0 (same bug class fixed in mmaction2:
  https://github.com/open-mmlab/mmaction2/pull/1202): :func:`fix_persistent_workers`.
* ``--launcher`` on a CPU-only host: gloo and DDP without ``device_ids``:
  :func:`configure_distributed` (the process-group side is :mod:`.cpu_distributed`).
* ``--amp``: :func:`amp_optim_wrapper_cfg` selects :class:`.CPUAwareAmpOptimWrapper`.
"""
from __future__ import annotations

from typing import Optional

from mmengine.config import Config

from ..utils import device

DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def fix_persistent_workers(cfg: Config) -> None:
    """Set ``persistent_workers=False`` on every dataloader config with ``num_workers == 0``."""
    for key in DATALOADER_KEYS:
        loader = cfg.get(key)
        if loader is not None and loader.get('num_workers', 0) == 0:
            loader['persistent_workers'] = False


def amp_optim_wrapper_cfg(optim_wrapper: dict) -> None:
    """Switch an ``optim_wrapper`` config to mixed precision (``tools/train.py --amp``)."""
    if optim_wrapper.get('type', 'OptimWrapper') in ('OptimWrapper', 'AmpOptimWrapper'):
        optim_wrapper['type'] = 'CPUAwareAmpOptimWrapper'
    optim_wrapper.setdefault('loss_scale', 'dynamic')


def configure_distributed(cfg: Config, launcher: str) -> None:
    """Adapt a config for ``launcher`` on a CPU-only host: gloo backend, DDP without device_ids.

    Does nothing for ``launcher == 'none'`` or when an accelerator is present.
    """
    if launcher == 'none' or not device.on_cpu_only_host():
        return
    dist_cfg = (cfg.get('env_cfg') or {}).get('dist_cfg') or {}
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        cfg.merge_from_dict({'env_cfg.dist_cfg.backend': 'gloo'})
    wrapper: Optional[dict] = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        # The same defaults mmengine uses when no wrapper config is given, minus device_ids.
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        wrapper = cfg.model_wrapper_cfg
    if wrapper.get('type', 'MMDistributedDataParallel') == 'MMDistributedDataParallel':
        wrapper['device_ids'] = None


def configure(cfg: Config, launcher: str = 'none') -> None:
    """Apply every config-side fix; what ``tools/train.py`` and ``tools/test.py`` call."""
    fix_persistent_workers(cfg)
    configure_distributed(cfg, launcher)
