"""CBAM-style spatial attention, in HiFuse's and HEMF's released forms."""
from typing import Sequence

import torch
import torch.nn as nn

_POOLS = {
    'max': lambda x: x.amax(dim=1, keepdim=True),
    'mean': lambda x: x.mean(dim=1, keepdim=True),
}


class SpatialAttention(nn.Module):
    """``SA(x) = sigma(f7x7(Concat[pool_c(x), ...])) * x`` (HiFuse eq. 4/5).

    The module returns the *gated* input, ``x * SA(x)``.

    Args:
        kernel_size: Size of the gating conv (7 in both papers; the HEMF
            figure's "k7, s7" is stride 1, padding 3 in the code).
        pool_order: Order of the channel-pooled maps fed to the conv. The
            papers write [Avg, Max]; HiFuse's released code uses
            ``('max', 'mean')``, HEMF's ``('mean', 'max')``.
        with_norm: BatchNorm after the (bias-free) conv: True in HiFuse's
            released code, False in HEMF's.
    """

    def __init__(self,
                 kernel_size: int = 7,
                 pool_order: Sequence[str] = ('max', 'mean'),
                 with_norm: bool = True) -> None:
        super().__init__()
        unknown = set(pool_order) - set(_POOLS)
        if unknown:
            raise ValueError(f'pool_order entries must be in {sorted(_POOLS)}'
                             f', got {sorted(unknown)}')
        self.pool_order = tuple(pool_order)
        self.conv = nn.Conv2d(
            len(self.pool_order),
            1,
            kernel_size,
            padding=(kernel_size - 1) // 2,
            bias=False)
        self.bn = nn.BatchNorm2d(1) if with_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([_POOLS[p](x) for p in self.pool_order], dim=1)
        return x * torch.sigmoid(self.bn(self.conv(pooled)))
