"""Inverted residual MLPs of the fusion blocks: HiFuse's IRMLP, HEMF's SIRMLP."""
import torch
import torch.nn as nn

from .conv_bn import conv_bn


class IRMLP(nn.Module):
    """Inverted residual MLP (HiFuse eq. 4, ``IRMLP``; Table 1, HFF column).

    As released: ``t = GELU(f3x3(x)) + x -> BN -> f1x1 (expand x4) -> GELU
    -> f1x1 -> BN``. The paper's formula ``f1x1(f1x1(f3x3(LN x) + LN x))``
    omits the activations and BatchNorms and puts the LayerNorm outside (the
    HFF block applies it before calling us); we implement the released
    order. There is no residual around the whole module: the HFF shortcut
    provides it.

    Args:
        in_channels: Input width (3C in an HFF block).
        out_channels: Output width (C).
        expand_ratio: Hidden width = ``expand_ratio * in_channels`` (4).
        depthwise: Make the 3x3 conv depthwise, as the paper's Table 1
            (``d3x3``) and the code's ``group`` argument intend. The released
            ``Conv`` wrapper ignores ``group``, so the released model's 3x3
            conv is **dense** (``depthwise=False``; +63.4 M parameters and
            +9.35 GMACs for HiFuse-T). Defaults to True.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 expand_ratio: int = 4,
                 depthwise: bool = True) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.spatial_conv = nn.Conv2d(
            in_channels,
            in_channels,
            3,
            padding=1,
            bias=False,
            groups=in_channels if depthwise else 1)
        self.act = nn.GELU()
        self.norm = nn.BatchNorm2d(in_channels)
        self.expand = nn.Conv2d(in_channels, hidden, 1, bias=False)
        self.project = conv_bn(hidden, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.act(self.spatial_conv(x)) + x)
        return self.project(self.act(self.expand(x)))


class SIRMLP(nn.Module):
    """Squeezed IRMLP of HEMF's HEF block.

    A 1x1 conv (with bias) + BN squeezes the ``3C`` concatenation to ``C``,
    then an :class:`IRMLP` runs on ``C`` channels (expansion 4 on the
    squeezed width). This is 4-5x cheaper than HiFuse's IRMLP on ``3C``.

    Args:
        in_channels: Input width (3C).
        out_channels: Squeezed and output width (C).
        depthwise: Depthwise 3x3 conv, as HEMF's text and figure say. The
            released code (which produced the paper's numbers) uses a dense
            3x3, so HEMF defaults to ``False``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 expand_ratio: int = 4,
                 depthwise: bool = False) -> None:
        super().__init__()
        self.squeeze = conv_bn(in_channels, out_channels, 1, bias=True)
        self.irmlp = IRMLP(out_channels, out_channels, expand_ratio, depthwise)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.irmlp(self.squeeze(x))
