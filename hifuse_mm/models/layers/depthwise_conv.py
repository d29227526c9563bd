"""Depthwise convolution that keeps fp32 when bf16 training is slow on CPU."""
import torch

from .. import fast_paths
from .autocast_weights import Conv2d


class DepthwiseConv2d(Conv2d):
    """Depthwise ``nn.Conv2d`` (``groups = channels``) with a CPU fast path.

    Same parameters and state dict as ``nn.Conv2d(channels, channels, k,
    padding=k // 2, groups=channels)``. Under CPU bf16 autocast with
    autograd on (mixed-precision training) and the fast paths on
    (:mod:`~hifuse_mm.models.fast_paths`), the convolution runs in fp32:
    this stack's oneDNN bf16 weight-gradient kernel for 5x5 depthwise
    convolutions is ~4x slower than the fp32 one (see docs/benchmarks.md),
    and a depthwise convolution is memory-bound, so fp32 costs little in
    the forward. The output is then fp32 (more precise, not less); the next
    autocast op casts it back. Inference and other devices are unchanged.

    Args:
        channels: Input and output channels.
        kernel_size: Odd kernel side.
        bias: Learnable bias. Defaults to True.
    """

    def __init__(self, channels: int, kernel_size: int,
                 bias: bool = True) -> None:
        super().__init__(
            channels,
            channels,
            kernel_size,
            padding=kernel_size // 2,
            groups=channels,
            bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (fast_paths.enabled() and x.device.type == 'cpu'
                and torch.is_autocast_enabled('cpu')
                and torch.get_autocast_dtype('cpu') == torch.bfloat16
                and fast_paths.needs_grad(x, self.weight)):
            with torch.autocast('cpu', enabled=False):
                return super().forward(x.float())
        return super().forward(x)
