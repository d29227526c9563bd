"""The fusion path shared by HiFuse's HFF and HEMF's HEF blocks."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmpretrain.models.utils import build_norm_layer

from .conv_bn import conv_bn
from .stems import LN2D_CFG


class FusionPath(nn.Module):
    """Fuse the two branches with the previous stage's fused map.

    Implements HiFuse eq. 5's ``F~_i`` and ``F^_i`` as released:

    * ``W_l = BN(f1x1(L_i))`` and ``W_g = BN(f1x1(G_i))`` (no activation);
    * ``F~_i = AvgPool(ReLU(BN(f1x1(F_{i-1}))))`` (the paper omits BN and
      ReLU); ``F~_i`` is also returned as the block's shortcut;
    * ``F^_i = GELU(BN(f1x1(LN(Concat[F~_i, W_l, W_g]))))``: the paper
      writes a 3x3 conv on the raw inputs; the code uses a 1x1 conv on the
      projections.

    The first stage has no previous map: it fuses ``Concat[W_l, W_g]`` and
    returns no shortcut (the paper does not describe this case). Unlike the
    released code, each stage builds only the modules it calls.

    Args:
        channels: Channels ``C`` of this stage's branch maps.
        with_previous: Whether a previous fused map (``C/2`` channels at
            twice the resolution) is given.
    """

    def __init__(self, channels: int, with_previous: bool) -> None:
        super().__init__()
        self.with_previous = with_previous
        self.local_proj = conv_bn(channels, channels)
        self.global_proj = conv_bn(channels, channels)
        if with_previous:
            self.prev_proj = conv_bn(
                channels // 2, channels, act=nn.ReLU(inplace=True))
            self.pool = nn.AvgPool2d(kernel_size=2, stride=2)
        in_channels = channels * (3 if with_previous else 2)
        self.norm = build_norm_layer(LN2D_CFG, in_channels)
        self.merge = conv_bn(in_channels, channels, act=nn.GELU())

    def forward(
        self,
        local_feat: torch.Tensor,
        global_feat: torch.Tensor,
        prev: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Return ``(F^_i, shortcut)``; ``shortcut`` is None in stage 1."""
        parts = [self.local_proj(local_feat), self.global_proj(global_feat)]
        shortcut = None
        if self.with_previous:
            if prev is None:
                raise ValueError('this fusion stage needs the previous '
                                 'stage\'s fused map')
            shortcut = self.pool(self.prev_proj(prev))
            parts.insert(0, shortcut)
        return self.merge(self.norm(torch.cat(parts, dim=1))), shortcut
