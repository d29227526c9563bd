"""Distributed runs on CPU-only hosts (gloo).

mmengine's ``_init_dist_pytorch`` calls ``torch.cuda.set_device(LOCAL_RANK)`` unconditionally
and ``Runner.wrap_model`` passes ``device_ids=[LOCAL_RANK]`` to DDP; both fail without CUDA, and
NCCL needs CUDA. mmengine has no upstream fix. The config side (gloo backend, DDP without
``device_ids``) is :func:`hifuse_mm.engine.run_config.configure_distributed`; this module makes
the process-group initialisation CPU-aware.
"""
from __future__ import annotations

from typing import Any

import torch

from ..utils import device


def install() -> None:
    """Make mmengine's PyTorch process-group initialiser use gloo on CPU-only hosts."""
    from mmengine.dist import utils as dist_utils

    original = dist_utils._init_dist_pytorch
    if getattr(original, '_hifuse_cpu_aware', False):
        return

    def init_dist_pytorch(backend: str, init_backend: str = 'torch', **kwargs: Any) -> None:
        if not device.on_cpu_only_host() or init_backend != 'torch':
            return original(backend, init_backend=init_backend, **kwargs)
        torch.distributed.init_process_group(
            backend='gloo' if backend == 'nccl' else backend, **kwargs)

    init_dist_pytorch._hifuse_cpu_aware = True  # type: ignore[attr-defined]
    init_dist_pytorch.__wrapped__ = original  # type: ignore[attr-defined]
    dist_utils._init_dist_pytorch = init_dist_pytorch
