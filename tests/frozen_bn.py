"""Test-only hook for the distributed-equivalence test: BatchNorm layers use fixed statistics.

In training mode a BatchNorm layer normalises with the statistics of the batch it sees, so one
process with batch 2b and two processes with batch b each compute different things (PyTorch's
SyncBatchNorm, which would share the statistics, needs a GPU). Keeping every BatchNorm in eval
mode (running statistics, still-trained affine weights) removes exactly that difference and
nothing else.
"""
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS
from torch.nn.modules.batchnorm import _BatchNorm


@HOOKS.register_module()
class FrozenBatchNormHook(Hook):
    """Put every BatchNorm layer in eval mode before each training iteration."""

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        for module in runner.model.modules():
            if isinstance(module, _BatchNorm):
                module.eval()
