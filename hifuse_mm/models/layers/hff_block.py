"""HiFuse's hierarchical feature fusion (HFF) block."""
import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath
from mmpretrain.models.utils import build_norm_layer

from .channel_attention import ChannelAttention
from .conv_bn import conv_bn
from .fusion_block import FusionBlock
from .fusion_path import FusionPath
from .irmlp import IRMLP
from .spatial_attention import SpatialAttention
from .stems import LN2D_CFG


class HFFBlock(FusionBlock):
    """One HFF block (HiFuse eq. 5, Fig. 2).

    ``F_i = IRMLP(LN(Concat[CA(G_i), SA(L_i), F^_i])) + F~_i``: spatial
    attention gates the raw local map, channel attention the raw global
    map, :class:`FusionPath` gives ``F^_i`` and the shortcut ``F~_i``.

    The ``with_*`` flags exist for the paper's Table 3 ablation; all default
    to True (HiFuse).

    Args:
        channels: Channels ``C`` of this stage.
        with_previous: False for stage 1 (no previous fused map, no
            shortcut).
        irmlp_depthwise: Depthwise IRMLP 3x3 (paper, default) or dense
            (released code). See :class:`IRMLP`.
        double_sigmoid: Channel attention's pre-2024 double sigmoid.
        reduction: Channel-attention reduction (16).
        drop_path_rate: Stochastic depth on the IRMLP output (the released
            ``HFF_dp``; 0 by default).
        with_attention: Gate the branch maps with SA / CA. If False, the raw
            maps are concatenated.
        with_irmlp: Use the IRMLP on the concatenation. If False, a 1x1
            conv + BN maps ``3C -> C`` instead.
        with_shortcut: Add ``F~_i``.
    """

    def __init__(self,
                 channels: int,
                 with_previous: bool,
                 irmlp_depthwise: bool = True,
                 double_sigmoid: bool = False,
                 reduction: int = 16,
                 drop_path_rate: float = 0.,
                 with_attention: bool = True,
                 with_irmlp: bool = True,
                 with_shortcut: bool = True) -> None:
        super().__init__()
        self.with_shortcut = with_shortcut
        self.fusion = FusionPath(channels, with_previous)
        if with_attention:
            self.spatial_attn = SpatialAttention(
                7, pool_order=('max', 'mean'), with_norm=True)
            self.channel_attn = ChannelAttention(channels, reduction,
                                                 double_sigmoid)
        else:
            self.spatial_attn = self.channel_attn = nn.Identity()
        self.norm = build_norm_layer(LN2D_CFG, 3 * channels)
        if with_irmlp:
            self.mlp = IRMLP(3 * channels, channels, depthwise=irmlp_depthwise)
        else:
            self.mlp = conv_bn(3 * channels, channels, bias=False)
        self.drop_path = DropPath(drop_path_rate)

    def attend_global(self, x: torch.Tensor) -> torch.Tensor:
        return self.channel_attn(x)

    def attend_local(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial_attn(x)
