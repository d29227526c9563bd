"""HEMF's hierarchical enhanced feature (HEF) fusion block."""
import torch
from mmcv.cnn.bricks import DropPath
from mmpretrain.models.utils import build_norm_layer

from .conv_bn import conv_bn
from .fusion_block import FusionBlock
from .fusion_path import FusionPath
from .irmlp import SIRMLP
from .mixed_attention import MixedAttention
from .stems import LN2D_CFG


class HEFBlock(FusionBlock):
    """One HEF block (HEMF eqs. 7-9, Fig. 3).

    ``F_i = SIRMLP(LN(Concat[MA_g(G_i), MA_l(L_i), F^_i])) + F~_i``:
    :class:`MixedAttention` on each branch map (separate weights), the
    fusion path ``F^_i`` and shortcut ``F~_i`` of HiFuse's HFF block
    (:class:`FusionPath`, identical in the released code), a channels-first
    LayerNorm on the ``3C`` concatenation and :class:`SIRMLP` ``3C -> C``.
    Stage 1 has no previous map and no shortcut.

    Args:
        channels: Channels ``C`` of this stage.
        with_previous: False for stage 1.
        sirmlp_depthwise: Depthwise SIRMLP 3x3, as the paper's text and
            figure say; the released code (which produced the paper's
            numbers, Table 3) is dense. Defaults to False (released).
        mhea_heads: MHEA heads (8).
        memory_size: MHEA memory slots (64).
        reduction: Channel-attention reduction (16).
        drop_path_rate: Stochastic depth on the SIRMLP output (released
            ``HEF_drop_rate``, 0).
        with_mhea: MHEA in the Mixed Attention (paper Table 10).
        with_spatial_channel: SA and CA in the Mixed Attention (Table 10).
        with_sirmlp: SIRMLP (Table 10); otherwise a 1x1 conv + BN maps
            ``3C -> C``.
    """

    def __init__(self,
                 channels: int,
                 with_previous: bool,
                 sirmlp_depthwise: bool = False,
                 mhea_heads: int = 8,
                 memory_size: int = 64,
                 reduction: int = 16,
                 drop_path_rate: float = 0.,
                 with_mhea: bool = True,
                 with_spatial_channel: bool = True,
                 with_sirmlp: bool = True) -> None:
        super().__init__()
        self.fusion = FusionPath(channels, with_previous)
        attn_kwargs = dict(
            mhea_heads=mhea_heads,
            memory_size=memory_size,
            reduction=reduction,
            with_mhea=with_mhea,
            with_spatial_channel=with_spatial_channel)
        self.local_attn = MixedAttention(channels, **attn_kwargs)
        self.global_attn = MixedAttention(channels, **attn_kwargs)
        self.norm = build_norm_layer(LN2D_CFG, 3 * channels)
        if with_sirmlp:
            self.mlp = SIRMLP(
                3 * channels, channels, depthwise=sirmlp_depthwise)
        else:
            self.mlp = conv_bn(3 * channels, channels, bias=False)
        self.drop_path = DropPath(drop_path_rate)

    def attend_global(self, x: torch.Tensor) -> torch.Tensor:
        return self.global_attn(x)

    def attend_local(self, x: torch.Tensor) -> torch.Tensor:
        return self.local_attn(x)
