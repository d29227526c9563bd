"""1x1 convolution that runs as a matrix multiply on channels-last maps."""
import torch
import torch.nn.functional as F

from .. import fast_paths
from .autocast_weights import Conv2d


class PointwiseConv2d(Conv2d):
    """``nn.Conv2d(in_channels, out_channels, 1)`` with a fast path.

    Same parameters (``weight`` ``[out, in, 1, 1]``, ``bias``) and state
    dict as ``nn.Conv2d``. A 1x1 convolution is a linear map of each
    pixel's channel vector; on a channels-last map (or a ``[B, C, 1, 1]``
    one) the pixels' channel vectors are the rows of a contiguous matrix,
    so with the fast paths on (:mod:`~hifuse_mm.models.fast_paths`) it runs
    as ``F.linear`` on the NHWC view and returns a channels-last map: no
    layout conversion and no per-call weight reordering. This matters most
    under bf16 autocast: this stack's oneDNN bf16 1x1-convolution backward
    is 5-70x slower than the matmul's for several of the fusion blocks'
    shapes, and the forward 2-3x slower on the 7x7 and 14x14 maps (see
    docs/benchmarks.md). Other inputs take ``nn.Conv2d.forward``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        bias: Learnable bias. Defaults to True.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (fast_paths.enabled() and x.dim() == 4
                and x.is_contiguous(memory_format=torch.channels_last)):
            weight = self.autocast_param('weight').view(
                self.out_channels, self.in_channels)
            y = F.linear(x.permute(0, 2, 3, 1), weight,
                         self.autocast_param('bias'))
            return y.permute(0, 3, 1, 2)
        return super().forward(x)
