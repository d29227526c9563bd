"""Base of the fusion necks: per-stage fusion blocks, then GAP + LayerNorm."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from ..layers import run_block

StageMaps = Sequence[Tuple[torch.Tensor, ...]]


class FusionNeck(BaseModule):
    """Run one fusion block per stage and pool the last fused map.

    Subclasses build ``self.blocks`` (one block per stage, called as
    ``block(local, global)`` in stage 1 and ``block(local, global,
    previous_fused)`` after). The output ``(features,)``, ``[B, C_last]``,
    feeds mmpretrain's ``LinearClsHead``: the released heads are GAP ->
    LayerNorm(eps 1e-6) -> Linear. The stage-4 fused map, the papers'
    Grad-CAM target, is the output of ``blocks[-1]`` (and of :meth:`fuse`).

    Args:
        in_channels: Channels of each stage.
        with_fusion: False skips the fusion blocks and pools the backbone's
            last map of its first branch (the single-branch ablation rows).
        with_cp: Gradient checkpointing of every block.
        norm_eps: Epsilon of the final LayerNorm.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 with_fusion: bool = True,
                 with_cp: bool = False,
                 norm_eps: float = 1e-6,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = tuple(in_channels)
        self.with_fusion = with_fusion
        self.with_cp = with_cp
        self.norm = nn.LayerNorm(self.in_channels[-1], eps=norm_eps)

    def fuse(self, inputs: StageMaps) -> torch.Tensor:
        """Return the last stage's fused map ``[B, C, H, W]``."""
        name = type(self).__name__
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'{name} expects {len(self.in_channels)} '
                             f'stages of (local, global) maps, got '
                             f'{len(inputs)}; keep the backbone\'s '
                             'out_indices=(0, 1, 2, 3)')
        if not self.with_fusion:
            return inputs[-1][0]
        fused = None
        for block, maps in zip(self.blocks, inputs):
            if len(maps) != 2:
                raise ValueError(f'{name} needs both branch maps; build the '
                                 'backbone with both branches')
            args = tuple(maps) + (() if fused is None else (fused, ))
            fused = run_block(block, *args, with_cp=self.with_cp)
        return fused

    def forward(self, inputs: StageMaps) -> tuple:
        return (self.norm(self.fuse(inputs).mean(dim=(2, 3))), )
