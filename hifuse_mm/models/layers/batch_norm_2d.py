"""BatchNorm2d whose backward always gets a channels-last gradient."""
import torch
import torch.nn as nn

from .. import fast_paths


def _to_channels_last(grad: torch.Tensor) -> torch.Tensor:
    return grad.contiguous(memory_format=torch.channels_last)


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same parameters, buffers and state dict) with a fast path.

    With the fast paths on (:mod:`~hifuse_mm.models.fast_paths`) the backbones run
    channels-last, but the gradient that reaches a BatchNorm's output can come back in NCHW
    memory (from a concatenation, a reshape, an elementwise product with an NCHW tensor).
    This stack's CPU BatchNorm backward with a channels-last input and an NCHW gradient is
    6-8x slower than with matching layouts (fp32 and bf16, ``[8, 96, 56, 56]``: ~31 ms
    against ~4 ms, see docs/benchmarks.md), so in training the gradient is first copied to
    channels-last (~1 ms). Values are unchanged; only memory layouts differ.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        if (fast_paths.enabled() and y.requires_grad and x.dim() == 4
                and not x.is_contiguous()
                and x.is_contiguous(memory_format=torch.channels_last)):
            # A gradient hook, not an identity autograd.Function: the output may be
            # modified in place afterwards (an in-place activation).
            y.register_hook(_to_channels_last)
        return y
