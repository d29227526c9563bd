"""HEMF's Mixed Attention: external, spatial and channel attention in a row."""
import torch
import torch.nn as nn
from mmpretrain.models.utils import build_norm_layer

from .channel_attention import ChannelAttention
from .external_attention import MultiHeadExternalAttention
from .spatial_attention import SpatialAttention
from .stems import LN2D_CFG


class MixedAttention(nn.Module):
    """Mixed Attention (HEMF eqs. 14-16, Fig. 3), applied to one branch map.

    As released (and as the HEF figure draws it)::

        x = LN(x);  x = x * MHEA(x)          # eq. 14
        x = LN(x);  x = SA(x)                # eq. 15, x * sigma(f7x7(...))
        x = CA(x)                            # eq. 16, x * sigma(MLP(...))

    Both ``LN`` calls use **the same** channels-first LayerNorm (eps 1e-6,
    one set of parameters). Spatial attention pools the channels as
    ``[mean, max]`` and has no BatchNorm (HiFuse's is ``[max, mean]`` with
    BN); channel attention is HiFuse's (ratio 16, one sigmoid).

    The ``with_*`` flags give the rows of the paper's Table 10 (the
    ablation code is not released; this is our reading): without MHEA the
    first line is skipped; without SA/CA the second and third are; without
    both the module is the identity (no LayerNorm either).

    Args:
        channels: Channels ``C``.
        mhea_heads: MHEA heads (8).
        memory_size: MHEA memory slots ``S`` (64).
        reduction: Channel-attention reduction (16).
        with_mhea: Use the multi-head external attention.
        with_spatial_channel: Use spatial and channel attention.
    """

    def __init__(self,
                 channels: int,
                 mhea_heads: int = 8,
                 memory_size: int = 64,
                 reduction: int = 16,
                 with_mhea: bool = True,
                 with_spatial_channel: bool = True) -> None:
        super().__init__()
        self.with_mhea = with_mhea
        self.with_spatial_channel = with_spatial_channel
        if with_mhea or with_spatial_channel:
            self.norm = build_norm_layer(LN2D_CFG, channels)
        if with_mhea:
            self.mhea = MultiHeadExternalAttention(channels, mhea_heads,
                                                   memory_size)
        if with_spatial_channel:
            self.spatial_attn = SpatialAttention(
                7, pool_order=('mean', 'max'), with_norm=False)
            self.channel_attn = ChannelAttention(channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.with_mhea:
            x = self.norm(x)
            x = x * self.mhea(x)
        if self.with_spatial_channel:
            x = self.channel_attn(self.spatial_attn(self.norm(x)))
        return x
