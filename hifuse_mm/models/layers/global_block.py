"""HiFuse's global feature block and stage (a modified Swin stage)."""
from typing import Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath
from mmcv.cnn.bricks.transformer import PatchMerging
from mmpretrain.models.utils import ShiftWindowMSA

from .checkpoint import run_block

Shape = Tuple[int, int]


class GlobalBlock(nn.Module):
    """``G = f1x1(SW-MSA(LN(G_prev))) + G_prev`` (HiFuse eq. 2).

    (Shifted) window attention with relative position bias, then a linear
    layer with GELU, and a single residual: there is no MLP and no second
    residual (the released code builds a ``norm2`` it never calls; we do not
    build it). The attention is mmpretrain's :class:`ShiftWindowMSA` with
    ``pad_small_map=True``: maps whose sides are not multiples of the window
    are padded to whole windows (the released code only accepts 224x224),
    and a shifted block keeps its shift even when the map is a single window,
    as the released stage 4 does; the 0 / -100 shift mask is Swin's.

    Args:
        embed_dims: Channels.
        num_heads: Attention heads.
        window_size: Window side (7).
        shift: Use a shifted window (SW-MSA, shift ``window_size // 2``).
        qkv_bias: Bias in the qkv projection.
        attn_drop_rate: Attention dropout.
        drop_rate: Dropout after the attention projection.
        drop_path_rate: Stochastic depth of the residual branch.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 window_size: int = 7,
                 shift: bool = False,
                 qkv_bias: bool = True,
                 attn_drop_rate: float = 0.,
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.) -> None:
        super().__init__()
        # eps 1e-5: the released global branch uses nn.LayerNorm defaults.
        self.norm = nn.LayerNorm(embed_dims)
        self.attn = ShiftWindowMSA(
            embed_dims=embed_dims,
            num_heads=num_heads,
            window_size=window_size,
            shift_size=window_size // 2 if shift else 0,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop_rate,
            proj_drop=drop_rate,
            pad_small_map=True)
        self.fc = nn.Linear(embed_dims, embed_dims)
        self.act = nn.GELU()
        self.drop_path = DropPath(drop_path_rate)

    def forward(self, x: torch.Tensor, hw_shape: Shape) -> torch.Tensor:
        y = self.act(self.fc(self.attn(self.norm(x), hw_shape)))
        return x + self.drop_path(y)


class GlobalStage(nn.Module):
    """Patch merging (stages 2-4, at the *start* of the stage) + blocks.

    Blocks alternate W-MSA and SW-MSA (odd blocks shifted) when ``shift``
    is True.

    Args:
        embed_dims: Output channels of the stage.
        depth: Number of :class:`GlobalBlock`.
        num_heads: Heads of every block.
        downsample: Merge 2x2 patches first (``embed_dims // 2`` in).
        shift: Whether odd blocks use shifted windows.
        drop_path_rates: One rate per block.
        with_cp: Gradient checkpointing of every block.
        **block_kwargs: Passed to every :class:`GlobalBlock`.
    """

    def __init__(self,
                 embed_dims: int,
                 depth: int,
                 num_heads: int,
                 downsample: bool,
                 shift: bool = True,
                 drop_path_rates: Sequence[float] = (),
                 with_cp: bool = False,
                 **block_kwargs) -> None:
        super().__init__()
        self.with_cp = with_cp
        rates = list(drop_path_rates) or [0.] * depth
        if len(rates) != depth:
            raise ValueError(f'got {len(rates)} drop-path rates for '
                             f'{depth} blocks')
        # Swin's 2x2 merge: LN(4C) -> Linear(4C -> 2C, no bias). mmcv orders
        # the 4 neighbours as nn.Unfold does; the official converter permutes
        # the released weights to match.
        self.downsample = PatchMerging(
            embed_dims // 2, embed_dims, bias=False) if downsample else None
        self.blocks = nn.ModuleList([
            GlobalBlock(
                embed_dims,
                num_heads,
                shift=shift and i % 2 == 1,
                drop_path_rate=rates[i],
                **block_kwargs) for i in range(depth)
        ])

    def forward(self, x: torch.Tensor,
                hw_shape: Shape) -> Tuple[torch.Tensor, Shape]:
        if self.downsample is not None:
            x, hw_shape = self.downsample(x, hw_shape)
        for block in self.blocks:
            x = run_block(block, x, hw_shape, with_cp=self.with_cp)
        return x, tuple(hw_shape)
