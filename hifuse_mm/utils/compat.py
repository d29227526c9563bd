"""Compatibility fixes for this stack (torch>=2.6, mmengine 0.10.7, mmcv-lite 2.2, mmpretrain 1.2).

:func:`apply` runs on ``import hifuse_mm`` and is idempotent. It installs the process-wide fixes:

* A. safe checkpoint loading for local files (torch>=2.6 made ``weights_only=True`` the default,
  which mmengine 0.10.7 does not expect), plus atomic saving: :mod:`hifuse_mm.engine`;
* C. the ``CPUAwareAmpOptimWrapper`` (``--amp`` on CPU-only hosts trains under bf16 autocast);
* D. a CPU-aware ``mmengine.dist`` PyTorch initialiser (gloo, no ``torch.cuda.set_device``);
* E. warning filters for known harmless warnings.

The config-side fixes are helpers the tools call on a loaded config:

* B. :func:`fix_persistent_workers` (``persistent_workers`` only when ``num_workers > 0``);
* D. :func:`configure_distributed` (gloo + DDP without ``device_ids`` on CPU-only hosts).

Test-time ``--amp`` (``test_cfg.fp16=True``) needs no fix: ``mmengine.runner.amp.autocast`` already
runs ``torch.autocast('cpu', dtype=torch.bfloat16)`` when the device is the CPU. Note that predicted
scores are then bf16 tensors: metrics must call ``.float()`` before ``.numpy()``.
"""
from __future__ import annotations

import importlib.util
import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Optional, Union

import torch

# MMCV is an optional dependency by name (mmcv-lite or full mmcv, see setup.py); say so clearly
# instead of failing inside `import mmpretrain` with "No module named 'mmcv'".
if importlib.util.find_spec('mmcv') is None:
    raise ImportError('hifuse-mm needs MMCV (2.0.0 <= mmcv < 2.4.0): install '
                      '"hifuse-mm[lite]" (mmcv-lite, pure Python) or the full "mmcv"')

from mmengine.config import Config
from mmengine.device import get_device
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.runner.checkpoint import CheckpointLoader
from mmpretrain.registry import OPTIM_WRAPPERS

DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def on_cpu_only_host() -> bool:
    """True when mmengine found no accelerator (CUDA, NPU, MLU, MUSA, MPS)."""
    return get_device() == 'cpu'


# ---------------------------------------------------------------------------------------------
# A. torch>=2.6 ``torch.load(weights_only=True)`` default.
# mmengine 0.10.7 calls torch.load without ``weights_only``, so full training checkpoints (their
# message_hub pickles HistoryBuffer and numpy objects) fail to load for --resume and testing.
# Upstream: https://github.com/open-mmlab/mmengine/issues/1655, fixed on main by
# https://github.com/open-mmlab/mmengine/pull/1670 (unreleased), which falls back to full
# unpickling. We do not: local files load weights-only with an allowlist of the harmless types
# mmengine pickles, and full unpickling needs trust (hifuse_mm.engine.safe_checkpoint,
# SECURITY.md). Checkpoint writes become atomic there too.
# ---------------------------------------------------------------------------------------------
def load_from_local(filename: str, map_location: Any = None) -> Any:
    """Load a local checkpoint safely (:func:`hifuse_mm.engine.load_checkpoint_file`)."""
    from ..engine.safe_checkpoint import load_checkpoint_file
    return load_checkpoint_file(filename, map_location)


def _register_checkpoint_loader() -> None:
    from .. import engine
    engine.install()
    # The CheckpointLoader scheme for local files is this module's name for the safe loader.
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


# ---------------------------------------------------------------------------------------------
# B. ``persistent_workers`` needs ``num_workers > 0``.
# mmpretrain's tools/train.py defaults ``persistent_workers=True`` for every dataloader, and
# torch's DataLoader raises ValueError when num_workers == 0. Same bug class fixed in mmaction2:
# https://github.com/open-mmlab/mmaction2/pull/1202
# ---------------------------------------------------------------------------------------------
def fix_persistent_workers(cfg: Config) -> None:
    """Set ``persistent_workers=False`` on every dataloader config with ``num_workers == 0``."""
    for key in DATALOADER_KEYS:
        loader = cfg.get(key)
        if loader is not None and loader.get('num_workers', 0) == 0:
            loader['persistent_workers'] = False


# ---------------------------------------------------------------------------------------------
# C. ``--amp`` on a CPU-only host.
# mmengine's AmpOptimWrapper asserts a CUDA/NPU/MLU/MUSA device and uses a CUDA GradScaler. On a
# CPU-only host this wrapper instead runs the forward under bf16 autocast (the only CPU autocast
# dtype mmengine supports) without a GradScaler (bf16 has fp32's exponent range, no loss scaling
# needed). With an accelerator it is exactly AmpOptimWrapper. Upstream deprecation work in this
# area: https://github.com/open-mmlab/mmengine/pull/1564, /1675 (closed, unmerged).
# ---------------------------------------------------------------------------------------------
@OPTIM_WRAPPERS.register_module(force=True)
class CPUAwareAmpOptimWrapper(AmpOptimWrapper):
    """``AmpOptimWrapper`` that falls back to bf16 autocast on CPU-only hosts.

    Args:
        loss_scale: GradScaler setting, used only with an accelerator.
        dtype: autocast dtype. On CPU anything but ``bfloat16`` is replaced by it (with a warning).
        **kwargs: passed on to :class:`AmpOptimWrapper` / :class:`OptimWrapper`.
    """

    def __init__(self,
                 loss_scale: Union[str, float, dict] = 'dynamic',
                 dtype: Union[str, torch.dtype, None] = None,
                 **kwargs: Any) -> None:
        if not on_cpu_only_host():
            super().__init__(loss_scale=loss_scale, dtype=dtype, **kwargs)
            return
        kwargs.pop('use_fsdp', None)
        OptimWrapper.__init__(self, **kwargs)
        if dtype not in (None, 'bfloat16', torch.bfloat16):
            warnings.warn(f'CPU autocast supports only bfloat16; ignoring dtype={dtype}.')
        self.cast_dtype = torch.bfloat16
        self.loss_scaler = None
        self._scale_update_param = None

    def backward(self, loss: torch.Tensor, **kwargs: Any) -> None:
        if self.loss_scaler is None:
            OptimWrapper.backward(self, loss, **kwargs)
        else:
            super().backward(loss, **kwargs)

    def step(self, **kwargs: Any) -> None:
        if self.loss_scaler is None:
            OptimWrapper.step(self, **kwargs)
        else:
            super().step(**kwargs)

    def state_dict(self) -> dict:
        if self.loss_scaler is None:
            return OptimWrapper.state_dict(self)
        return super().state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        if self.loss_scaler is None:
            # A checkpoint written on a GPU host carries a GradScaler state: not used on CPU.
            state_dict.pop('loss_scaler', None)
        super().load_state_dict(state_dict)

    @contextmanager
    def optim_context(self, model: torch.nn.Module) -> Iterator[None]:
        if self.loss_scaler is not None:
            with super().optim_context(model):
                yield
            return
        with OptimWrapper.optim_context(self, model), \
                torch.autocast(device_type='cpu', dtype=self.cast_dtype):
            yield


def amp_optim_wrapper_cfg(optim_wrapper: dict) -> None:
    """Switch an ``optim_wrapper`` config to mixed precision (``tools/train.py --amp``)."""
    if optim_wrapper.get('type', 'OptimWrapper') in ('OptimWrapper', 'AmpOptimWrapper'):
        optim_wrapper['type'] = 'CPUAwareAmpOptimWrapper'
    optim_wrapper.setdefault('loss_scale', 'dynamic')


# ---------------------------------------------------------------------------------------------
# D. Distributed runs on CPU-only hosts (gloo).
# mmengine's ``_init_dist_pytorch`` calls ``torch.cuda.set_device(LOCAL_RANK)`` unconditionally
# and ``Runner.wrap_model`` passes ``device_ids=[LOCAL_RANK]`` to DDP; both fail without CUDA, and
# NCCL needs CUDA. Recipe verified in the project notes (section 4.4); mmengine has no upstream fix.
# ---------------------------------------------------------------------------------------------
def _patch_dist_init() -> None:
    from mmengine.dist import utils as dist_utils

    original = dist_utils._init_dist_pytorch
    if getattr(original, '_hifuse_cpu_aware', False):
        return

    def init_dist_pytorch(backend: str, init_backend: str = 'torch', **kwargs: Any) -> None:
        if not on_cpu_only_host() or init_backend != 'torch':
            return original(backend, init_backend=init_backend, **kwargs)
        torch.distributed.init_process_group(
            backend='gloo' if backend == 'nccl' else backend, **kwargs)

    init_dist_pytorch._hifuse_cpu_aware = True  # type: ignore[attr-defined]
    init_dist_pytorch.__wrapped__ = original  # type: ignore[attr-defined]
    dist_utils._init_dist_pytorch = init_dist_pytorch


def configure_distributed(cfg: Config, launcher: str) -> None:
    """Adapt a config for ``launcher`` on a CPU-only host: gloo backend, DDP without device_ids.

    Does nothing for ``launcher == 'none'`` or when an accelerator is present.
    """
    if launcher == 'none' or not on_cpu_only_host():
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


# ---------------------------------------------------------------------------------------------
# E. Known harmless warnings.
# mmcv-lite has no compiled ops, so mmcv.cnn.bricks.transformer warns that it cannot import
# MultiScaleDeformableAttention (never used by classifiers; notes section 4.2). mmengine's AMP code
# uses the deprecated torch.cuda.amp.{GradScaler,autocast} and torch.get_autocast_gpu_dtype()
# (https://github.com/open-mmlab/mmengine/pull/1564, /1675).
# ---------------------------------------------------------------------------------------------
HARMLESS_WARNINGS = (
    (UserWarning, r'Fail to import ``MultiScaleDeformableAttention``'),
    (FutureWarning, r'`torch\.cuda\.amp\.(GradScaler|autocast)\(args\.\.\.\)` is deprecated'),
    (DeprecationWarning, r'torch\.get_autocast_gpu_dtype\(\) is deprecated'),
)


def _filter_warnings() -> None:
    for category, message in HARMLESS_WARNINGS:
        warnings.filterwarnings('ignore', message=message, category=category)


def apply() -> None:
    """Install the process-wide fixes (safe to call any number of times)."""
    _filter_warnings()
    _register_checkpoint_loader()
    _patch_dist_init()


def configure(cfg: Config, launcher: str = 'none') -> None:
    """Apply every config-side fix; what ``tools/train.py`` and ``tools/test.py`` call."""
    fix_persistent_workers(cfg)
    configure_distributed(cfg, launcher)
