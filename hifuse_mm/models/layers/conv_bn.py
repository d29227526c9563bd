"""Convolution + BatchNorm (+ activation), the authors' ``Conv`` wrapper."""
from collections import OrderedDict
from typing import Optional

import torch.nn as nn


def conv_bn(in_channels: int,
            out_channels: int,
            kernel_size: int = 1,
            bias: bool = True,
            with_bn: bool = True,
            act: Optional[nn.Module] = None,
            groups: int = 1) -> nn.Sequential:
    """``Conv2d`` (stride 1, 'same' padding) -> optional BN -> optional act.

    The released code wraps every HFF/HEF convolution in this pattern; a
    convolution *with* a bias followed by BatchNorm is what it does, so we
    keep the bias (mmcv's ``ConvModule`` would drop it and warn). Unlike the
    released wrapper, ``groups`` is honoured: the released wrapper silently
    ignores it, which is why its IRMLP 3x3 convolution is dense (see
    :class:`~hifuse_mm.models.layers.IRMLP`).
    """
    layers = OrderedDict(conv=nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        padding=(kernel_size - 1) // 2,
        bias=bias,
        groups=groups))
    if with_bn:
        layers['bn'] = nn.BatchNorm2d(out_channels)
    if act is not None:
        layers['act'] = act
    return nn.Sequential(layers)
