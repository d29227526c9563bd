"""Channels-last (NHWC) memory end to end.

Op ``channels_last``: the backbones convert their input to channels-last memory
(:func:`channels_last_input`), convolutions keep that layout, the blocks that work on
``[B, H, W, C]`` tokens return their output in their input's memory format
(:func:`~hifuse_mm.models.layers.memory_format_of`), and mmpretrain's channels-first
LayerNorm (``LN2d``), which permutes to NHWC, normalises, permutes back and then copies
the result into NCHW memory, skips that copy (:class:`OptimisedLN2d`): on a channels-last
input the whole call is copy-free. Same values; only memory layouts differ.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.models.utils.norm import LayerNorm2d as LN2d

from .drop_in import DropIn


def channels_last_input(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The backbone's input in channels-last memory."""
    return x.contiguous(memory_format=torch.channels_last)


def layer_norm_no_copy(norm: LN2d, x: torch.Tensor,
                       data_format: str = 'channel_first') -> torch.Tensor:
    """``LN2d`` over the channels of ``[B, C, H, W]``, output left in NHWC memory."""
    if data_format != 'channel_first' or x.dim() != 4:
        return LN2d.forward(norm, x, data_format)
    x = F.layer_norm(
        x.permute(0, 2, 3, 1), norm.normalized_shape, norm.weight, norm.bias,
        norm.eps)
    return x.permute(0, 3, 1, 2)


class OptimisedLN2d(DropIn, LN2d):
    """Drop-in for mmpretrain's ``LN2d`` (op ``channels_last``)."""

    reference = LN2d
    op = 'channels_last'
    implementations = {'channels_last': layer_norm_no_copy}


#: The backbones' input conversion (op ``channels_last``), selected in place.
INPUT_IMPLEMENTATIONS = {'channels_last': channels_last_input}
