"""Patchify stem and stage downsampling of the convolutional (local) branch.

Both follow ConvNeXt (and mmpretrain's ``ConvNeXt``): a 4x4/stride-4
convolution followed by a channels-first LayerNorm, and LayerNorm followed by
a 2x2/stride-2 convolution between stages. HiFuse's local branch and both of
HEMF's branches use them (HiFuse paper Table 1, 'stem').
"""
import torch.nn as nn
from mmpretrain.models.utils import build_norm_layer

from .autocast_weights import Conv2d
from .layer_norm_2d import LayerNorm2d  # noqa: F401 (registers HiFuseLN2d)

#: The authors' channels-first LayerNorm uses eps 1e-6 everywhere. It is
#: mmpretrain's ``LN2d`` with a copy-free fast path (:class:`LayerNorm2d`).
LN2D_CFG = dict(type='HiFuseLN2d', eps=1e-6)


def conv_stem(in_channels: int,
              out_channels: int,
              patch_size: int = 4,
              norm_cfg: dict = LN2D_CFG) -> nn.Sequential:
    """Non-overlapping patchify conv -> LayerNorm2d."""
    return nn.Sequential(
        Conv2d(
            in_channels, out_channels, kernel_size=patch_size,
            stride=patch_size),
        build_norm_layer(norm_cfg, out_channels))


def downsample_layer(in_channels: int,
                     out_channels: int,
                     norm_cfg: dict = LN2D_CFG) -> nn.Sequential:
    """LayerNorm2d -> 2x2 stride-2 conv (halves H and W)."""
    return nn.Sequential(
        build_norm_layer(norm_cfg, in_channels),
        Conv2d(in_channels, out_channels, kernel_size=2, stride=2))
