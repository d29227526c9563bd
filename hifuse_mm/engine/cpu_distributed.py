"""Distributed runs on CPU-only hosts (gloo).

mmengine's ``_init_dist_pytorch`` calls ``torch.cuda.set_device(LOCAL_RANK)`` unconditionally
and ``Runner.wrap_model`` passes ``device_ids=[LOCAL_RANK]`` to DDP; both fail without CUDA, and
NCCL needs CUDA. mmengine has no upstream fix. The config side (gloo backend, DDP without
``device_ids``) is :func:`hifuse_mm.engine.run_config.configure_distributed`; this module starts
the process group itself on a CPU-only host:
:meth:`hifuse_mm.engine.runner.HiFuseRunner.setup_env` calls :func:`init_cpu_process_group`
before mmengine's ``setup_env`` (which then finds the group started and skips ``init_dist``),
and :func:`hifuse_mm.engine.install` makes mmengine's own initialiser do the same for the
whole process (:func:`hifuse_mm.engine.mmengine_patches.install_cpu_gloo_init`).
"""
from __future__ import annotations

import datetime
from typing import Any, Dict, Mapping

import torch

from ..utils import device


def needs_cpu_process_group(launcher: str, dist_cfg: Mapping[str, Any]) -> bool:
    """Whether this host must start the process group itself: a PyTorch launcher (torchrun),
    no CUDA and torch's own initialisation (mmengine's ``init_backend='torch'``)."""
    return (launcher == 'pytorch' and dist_cfg.get('init_backend', 'torch') == 'torch'
            and device.on_cpu_only_host())


def gloo_process_group_args(backend: str = 'nccl', **kwargs: Any) -> Dict[str, Any]:
    """``init_process_group`` arguments for mmengine's ``dist_cfg`` on a CPU-only host: NCCL
    becomes gloo; ``timeout`` in seconds becomes a ``timedelta`` (as mmengine's ``init_dist``
    does); ``init_backend`` (mmengine's own key) is dropped."""
    kwargs.pop('init_backend', None)
    timeout = kwargs.get('timeout')
    if timeout is not None and not isinstance(timeout, datetime.timedelta):
        kwargs['timeout'] = datetime.timedelta(seconds=timeout)
    return dict(backend='gloo' if backend == 'nccl' else backend, **kwargs)


def init_cpu_process_group(dist_cfg: Mapping[str, Any]) -> None:
    """Start the process group for a ``torchrun`` launch on a CPU-only host (rank, world size
    and address come from the environment, as with mmengine's initialiser)."""
    torch.distributed.init_process_group(**gloo_process_group_args(**dict(dist_cfg)))
