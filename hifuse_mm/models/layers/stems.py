"""Patchify stem and stage downsampling of the convolutional (local) branch.

Both follow ConvNeXt (and mmpretrain's ``ConvNeXt``): a 4x4/stride-4
convolution followed by a channels-first LayerNorm, and LayerNorm followed by
a 2x2/stride-2 convolution between stages. HiFuse's local branch and both of
HEMF's branches use them (HiFuse paper Table 1, 'stem').
"""
import torch.nn as nn
from mmpretrain.models.utils import build_norm_layer

#: The authors' channels-first LayerNorm uses eps 1e-6 everywhere: mmpretrain's
#: ``LN2d`` (LayerNorm over the channels of a ``[B, C, H, W]`` map).
LN2D_CFG = dict(type='LN2d', eps=1e-6)


def conv_stem(in_channels: int,
              out_channels: int,
              patch_size: int = 4,
              norm_cfg: dict = LN2D_CFG) -> nn.Sequential:
    """Non-overlapping patchify conv -> LayerNorm2d."""
    return nn.Sequential(
        nn.Conv2d(
            in_channels, out_channels, kernel_size=patch_size,
            stride=patch_size),
        build_norm_layer(norm_cfg, out_channels))


def downsample_layer(in_channels: int,
                     out_channels: int,
                     norm_cfg: dict = LN2D_CFG) -> nn.Sequential:
    """LayerNorm2d -> 2x2 stride-2 conv (halves H and W)."""
    return nn.Sequential(
        build_norm_layer(norm_cfg, in_channels),
        nn.Conv2d(in_channels, out_channels, kernel_size=2, stride=2))
