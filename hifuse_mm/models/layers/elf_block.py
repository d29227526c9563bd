"""HEMF's enhanced local feature (ELF) block (HEMF paper eqs. 1-2, Fig. 2)."""
import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath
from mmpretrain.models.utils import build_norm_layer

from .stems import LN2D_CFG


class ELFBlock(nn.Module):
    """``L_i = GELU(f1x1(f_d3x3(LN(f3x3(L_{i-1}))))) + L_{i-1}``.

    HiFuse's :class:`LocalBlock` with a dense 3x3 convolution in front
    (HEMF eqs. 1-2): dense 3x3 conv (bias), channels-first LayerNorm,
    depthwise 3x3 conv (bias), pointwise linear, GELU, residual. There is no
    activation between the depthwise and pointwise layers. This is what the
    paper describes and the released code does; ``10 C^2 + 14 C``
    parameters.

    Args:
        channels: Number of channels ``C``.
        drop_path_rate: Stochastic depth of the residual branch (released
            ``ELF_drop_path_rate`` grows linearly over the 16 blocks; 0).
    """

    def __init__(self, channels: int, drop_path_rate: float = 0.) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.norm = build_norm_layer(LN2D_CFG, channels)
        self.dwconv = nn.Conv2d(
            channels, channels, kernel_size=3, padding=1, groups=channels)
        self.pwconv = nn.Linear(channels, channels)
        self.act = nn.GELU()
        self.drop_path = DropPath(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(self.norm(self.conv(x)))
        y = self.pwconv(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x + self.drop_path(self.act(y))
