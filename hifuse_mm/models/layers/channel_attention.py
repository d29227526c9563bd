"""CBAM-style channel attention shared by HiFuse and HEMF."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class ChannelAttention(nn.Module):
    """``CA(x) = sigma(MLP(AvgPool(x)) + MLP(MaxPool(x))) * x`` (HiFuse eq. 4).

    The MLP is shared between the two pooled vectors: a bias-free 1x1 conv
    ``C -> C / reduction``, ReLU, a bias-free 1x1 conv back to ``C``. The
    module returns the *gated* input.

    Args:
        channels: Number of channels.
        reduction: Hidden width divisor (16 in both papers).
        double_sigmoid: Apply the sigmoid twice, as HiFuse's released code
            did before 2024-01-16 (the version the paper's results were
            probably produced with). Defaults to False (the fixed code).
    """

    def __init__(self,
                 channels: int,
                 reduction: int = 16,
                 double_sigmoid: bool = False) -> None:
        super().__init__()
        hidden = channels // reduction
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)
        self.double_sigmoid = double_sigmoid

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(
            self._mlp(F.adaptive_max_pool2d(x, 1)) +
            self._mlp(F.adaptive_avg_pool2d(x, 1)))
        if self.double_sigmoid:
            gate = torch.sigmoid(gate)
        return x * gate
