"""HEMF's enhanced global feature (EGF) stage (HEMF paper eqs. 5-6, Fig. 2)."""
from typing import Sequence

import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath

from .manhattan_attention import ManhattanSelfAttention
from .manhattan_rel_pos import ManhattanRelPos2d
from .memory_format import memory_format_of


class EGFStage(nn.Module):
    """The EGF blocks of one stage, sharing position terms and norms.

    For each of ``depth`` sub-layers (3 in HEMF), on a channels-last map:

    * ``x = LN1(x + MaSA_i(x))`` (eq. 5),
    * ``x = LN2(x + Linear_i(x))`` (eq. 6),

    i.e. post-norm ("add & norm") as the paper describes; the linear layer
    has no activation. As released (and unlike RMT's block, which the paper
    names): the two LayerNorms (eps 1e-6) are **shared by all sub-layers of
    the stage**, the rotary terms and decay masks are computed **once per
    stage** (the paper's "position embedding only once"), and there is no
    CPE, FFN, layer scale or drop path. The released module is one
    ``EGF_block`` per stage holding the ``depth`` sub-layers; so is ours.

    Args:
        embed_dims: Channels ``C``.
        depth: Number of MaSA + linear sub-layers (3).
        num_heads: MaSA heads (8).
        decomposed: Decomposed (released) or full 2-D MaSA, see
            :class:`ManhattanSelfAttention`.
        initial_value: Decay schedule offset (1), see
            :class:`ManhattanRelPos2d`.
        heads_range: Decay schedule range (3).
        drop_path_rates: Stochastic depth of each sub-layer's two residual
            branches (not in the released code: all 0 by default).
    """

    def __init__(self,
                 embed_dims: int,
                 depth: int = 3,
                 num_heads: int = 8,
                 decomposed: bool = True,
                 initial_value: float = 1.,
                 heads_range: float = 3.,
                 drop_path_rates: Sequence[float] = ()) -> None:
        super().__init__()
        rates = list(drop_path_rates) or [0.] * depth
        if len(rates) != depth:
            raise ValueError(f'got {len(rates)} drop-path rates for '
                             f'{depth} sub-layers')
        self.decomposed = decomposed
        self.norm1 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.norm2 = nn.LayerNorm(embed_dims, eps=1e-6)
        self.rel_pos = ManhattanRelPos2d(embed_dims, num_heads, initial_value,
                                         heads_range)
        self.attns = nn.ModuleList([
            ManhattanSelfAttention(embed_dims, num_heads, decomposed)
            for _ in range(depth)
        ])
        self.fcs = nn.ModuleList(
            [nn.Linear(embed_dims, embed_dims) for _ in range(depth)])
        self.drop_paths = nn.ModuleList([DropPath(r) for r in rates])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W] -> [B, C, H, W]``, in the memory format of ``x``."""
        memory_format = memory_format_of(x)
        x = x.permute(0, 2, 3, 1)
        rel_pos = self.rel_pos(x.shape[1:3], self.decomposed)
        for attn, fc, drop_path in zip(self.attns, self.fcs, self.drop_paths):
            x = self.norm1(x + drop_path(attn(x, rel_pos)))
            x = self.norm2(x + drop_path(fc(x)))
        return x.permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
