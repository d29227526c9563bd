"""``--amp`` on a CPU-only host: :class:`CPUAwareAmpOptimWrapper`.

mmengine's AmpOptimWrapper asserts a CUDA/NPU/MLU/MUSA device and uses a CUDA GradScaler. On a
CPU-only host this wrapper instead runs the forward under bf16 autocast (the only CPU autocast
dtype mmengine supports) without a GradScaler (bf16 has fp32's exponent range, no loss scaling
needed). With an accelerator it is exactly AmpOptimWrapper. Upstream deprecation work in this
area: https://github.com/open-mmlab/mmengine/pull/1564, /1675 (closed, unmerged).

Test-time ``--amp`` (``test_cfg.fp16=True``) needs no wrapper: ``mmengine.runner.amp.autocast``
already runs ``torch.autocast('cpu', dtype=torch.bfloat16)`` when the device is the CPU. Note that
predicted scores are then bf16 tensors: metrics must call ``.float()`` before ``.numpy()``.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Any, Iterator, Union

import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmpretrain.registry import OPTIM_WRAPPERS

from ..utils import device


@OPTIM_WRAPPERS.register_module()
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
        if not device.on_cpu_only_host():
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
