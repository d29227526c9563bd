"""HiFuse local feature block (paper eq. 3)."""
import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath


class LocalBlock(nn.Module):
    """``L_i = f1x1(LN(f_d3x3(L_{i-1}))) + L_{i-1}`` (HiFuse eq. 3).

    A stripped-down ConvNeXt block: depthwise 3x3 conv, LayerNorm,
    pointwise linear, GELU, residual. No MLP expansion and no layer scale.

    Difference from the paper: eq. 3 has no activation; the released code
    applies GELU after the pointwise layer, and so do we (it is what the
    authors trained).

    Args:
        channels: Number of channels.
        drop_path_rate: Stochastic depth rate of the residual branch.
    """

    def __init__(self, channels: int, drop_path_rate: float = 0.) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(
            channels, channels, kernel_size=3, padding=1, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.pwconv = nn.Linear(channels, channels)
        self.act = nn.GELU()
        self.drop_path = DropPath(drop_path_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.dwconv(x).permute(0, 2, 3, 1)  # NHWC for LN + linear
        x = self.act(self.pwconv(self.norm(x)))
        return shortcut + self.drop_path(x.permute(0, 3, 1, 2))
