"""BatchNorm whose backward gets a channels-last gradient, on the CPU."""
import torch
import torch.nn as nn

from .drop_in import DropIn


def _to_channels_last(grad: torch.Tensor) -> torch.Tensor:
    return grad.contiguous(memory_format=torch.channels_last)


def channels_last_grad(bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """``nn.BatchNorm2d.forward``; in training on a channels-last input, the
    gradient reaching the output is copied to channels-last first.

    A channels-last model's BatchNorm can get its gradient back in NCHW memory
    (from a concatenation, a reshape, a product with an NCHW tensor), and
    oneDNN's CPU BatchNorm backward is much slower with mismatched layouts
    (docs/benchmarks.md). Values are unchanged; only memory layouts differ.
    """
    y = nn.BatchNorm2d.forward(bn, x)
    if (y.requires_grad and not torch.compiler.is_compiling() and x.dim() == 4
            and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last)):
        # A gradient hook, not an identity autograd.Function: the output may
        # be modified in place afterwards (an in-place activation).
        y.register_hook(_to_channels_last)
    return y


class OptimisedBatchNorm2d(DropIn, nn.BatchNorm2d):
    """Drop-in for ``nn.BatchNorm2d`` (op ``batch_norm``)."""

    reference = nn.BatchNorm2d
    op = 'batch_norm'
    implementations = {'channels_last_grad': channels_last_grad}
