"""Convolutions as matrix multiplies, and a depthwise convolution kept in fp32, on the CPU.

:class:`OptimisedConv2d` is the drop-in for ``nn.Conv2d``; which op a convolution is
depends on its shape (:meth:`OptimisedConv2d.op_of`):

* ``pointwise_conv`` (1x1), implementation ``matmul``: a 1x1 convolution is a linear map
  of each pixel's channel vector; on a channels-last map (or a ``[B, C, 1, 1]`` one) the
  pixels' channel vectors are the rows of a contiguous matrix, so it runs as ``F.linear``
  on the NHWC view and returns a channels-last map, with no layout conversion and no
  per-call weight reordering (oneDNN's 1x1 convolution, its bf16 backward above all, is
  slower for several of the fusion blocks' shapes);
* ``dense_conv`` (dense, odd kernel, stride 1, 'same' padding), implementation ``im2col``:
  when the input is channels-last and the batch has fewer pixels than output channels
  (``B * H * W < C_out``, e.g. the 7x7 stage-4 maps with 768-2304 channels), an explicit
  im2col in NHWC (the ``k * k`` shifted windows of the zero-padded map, stacked per
  channel) and one ``F.linear`` with the weight as stored, ``[C_out, C_in * kh * kw]``:
  the same sum of products;
* ``depthwise_conv`` (depthwise, kernel 5x5 or larger: MaSA's LePE), implementation
  ``fp32_bf16_training``: under bf16 autocast with autograd on (mixed-precision training)
  the convolution runs in fp32, because oneDNN's bf16 weight-gradient kernel for it is
  slow; a depthwise convolution is memory-bound, so fp32 costs little in the forward. The
  output is then fp32 (more precise, not less); the next autocast op casts it back.

Other inputs, and the other convolutions, run ``nn.Conv2d``'s convolution. Measurements:
docs/benchmarks.md.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .drop_in import DropIn


def _plain_geometry(conv: nn.Conv2d) -> bool:
    return (conv.stride == (1, 1) and conv.dilation == (1, 1)
            and conv.padding_mode == 'zeros' and isinstance(conv.padding, tuple)
            and conv.padding == tuple(k // 2 for k in conv.kernel_size))


def pointwise_matmul(conv: 'OptimisedConv2d', x: torch.Tensor) -> torch.Tensor:
    """A 1x1 convolution as ``F.linear`` on a channels-last map."""
    if x.dim() != 4 or not x.is_contiguous(memory_format=torch.channels_last):
        return nn.Conv2d.forward(conv, x)
    weight = conv.weight.view(conv.out_channels, conv.in_channels)
    y = F.linear(x.permute(0, 2, 3, 1), weight, conv.bias)
    return y.permute(0, 3, 1, 2)


def im2col_small_maps(conv: 'OptimisedConv2d', x: torch.Tensor) -> torch.Tensor:
    """A dense convolution as im2col + one matmul when ``B * H * W < C_out``."""
    if (x.dim() != 4 or not x.is_contiguous(memory_format=torch.channels_last)
            or x.shape[0] * x.shape[2] * x.shape[3] >= conv.out_channels):
        return nn.Conv2d.forward(conv, x)
    b, c, h, w = x.shape
    kh, kw = conv.kernel_size
    ph, pw = conv.padding
    padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, pw, pw, ph, ph))
    # [B, H, W, C, kh * kw]: the weight's (C, kh, kw) order, so the weight is
    # used as stored (no per-call reordering copy).
    cols = torch.stack([
        padded[:, i:i + h, j:j + w] for i in range(kh) for j in range(kw)
    ], dim=-1).view(b, h, w, c * kh * kw)
    weight = conv.weight.view(conv.out_channels, c * kh * kw)
    return F.linear(cols, weight, conv.bias).permute(0, 3, 1, 2)


def depthwise_fp32_bf16_training(conv: 'OptimisedConv2d',
                                 x: torch.Tensor) -> torch.Tensor:
    """The convolution in fp32 under bf16 autocast with autograd on."""
    device = x.device.type
    if (torch.is_grad_enabled() and torch.is_autocast_enabled(device)
            and torch.get_autocast_dtype(device) == torch.bfloat16
            and (x.requires_grad or conv.weight.requires_grad)):
        with torch.autocast(device, enabled=False):
            return nn.Conv2d.forward(conv, x.float())
    return nn.Conv2d.forward(conv, x)


class OptimisedConv2d(DropIn, nn.Conv2d):
    """Drop-in for ``nn.Conv2d``: the implementation selected for its op on the
    input's device, else ``nn.Conv2d``'s convolution."""

    reference = nn.Conv2d
    implementations = {
        'matmul': pointwise_matmul,
        'im2col': im2col_small_maps,
        'fp32_bf16_training': depthwise_fp32_bf16_training,
    }

    @classmethod
    def op_of(cls, conv: nn.Module) -> Optional[str]:
        kh, kw = conv.kernel_size
        if conv.groups == 1 and _plain_geometry(conv):
            if (kh, kw) == (1, 1):
                return 'pointwise_conv'
            if kh % 2 and kw % 2:
                return 'dense_conv'
        if (conv.groups == conv.in_channels == conv.out_channels
                and min(kh, kw) >= 5):
            return 'depthwise_conv'
        return None
