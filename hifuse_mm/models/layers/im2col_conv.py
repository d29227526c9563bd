"""Dense k x k convolution that runs as im2col + one matmul on small maps."""
import torch
import torch.nn.functional as F

from .. import fast_paths
from .autocast_weights import Conv2d


class Im2colConv2d(Conv2d):
    """Dense ``nn.Conv2d`` (stride 1, odd kernel, 'same' padding) with a
    fast path for maps with few pixels and many channels.

    Same constructor, parameters and state dict as ``nn.Conv2d``. When the
    fast paths are on (:mod:`~hifuse_mm.models.fast_paths`), the input is
    channels-last and the batch has fewer pixels than output channels
    (``B * H * W < C_out``, e.g. the 7x7 stage-4 maps of a batch of 8
    with 768-2304 channels), the convolution is computed as an
    explicit im2col in NHWC (the ``k * k`` shifted windows of the
    zero-padded map, stacked per channel) followed by one ``F.linear``
    with the weight as stored, ``[C_out, C_in * kh * kw]``. This is
    the same sum of products; here oneDNN's direct convolution is 1.5-3x
    slower for these shapes in fp32, and its bf16 weight-gradient kernel
    up to 5x slower (see docs/benchmarks.md). Other inputs take
    ``nn.Conv2d.forward``.
    """

    def _use_im2col(self, x: torch.Tensor) -> bool:
        kh, kw = self.kernel_size
        return (fast_paths.enabled() and self.groups == 1 and x.dim() == 4
                and self.stride == (1, 1) and self.dilation == (1, 1)
                and kh % 2 == 1 and kw % 2 == 1
                and self.padding == (kh // 2, kw // 2)
                and self.padding_mode == 'zeros'
                and x.is_contiguous(memory_format=torch.channels_last)
                and x.shape[0] * x.shape[2] * x.shape[3] < self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._use_im2col(x):
            return super().forward(x)
        b, c, h, w = x.shape
        kh, kw = self.kernel_size
        ph, pw = self.padding
        padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, pw, pw, ph, ph))
        # [B, H, W, C, kh * kw]: the weight's (C, kh, kw) order, so the
        # weight is used as stored (no per-call reordering copy).
        cols = torch.stack([
            padded[:, i:i + h, j:j + w] for i in range(kh) for j in range(kw)
        ], dim=-1).view(b, h, w, c * kh * kw)
        weight = self.autocast_param('weight').view(self.out_channels,
                                                    c * kh * kw)
        return F.linear(cols, weight,
                        self.autocast_param('bias')).permute(0, 3, 1, 2)
