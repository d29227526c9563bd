"""HiFuse backbone: parallel local (CNN) and global (window attention) branches.

Huo et al., "HiFuse: Hierarchical multi-scale feature fusion network for
medical image classification", BSPC 2024 (arXiv:2209.10218). The HFF fusion
blocks and the classifier's pooling live in :class:`~hifuse_mm.models.HFFNeck`.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmcv.cnn.bricks.transformer import PatchEmbed
from mmpretrain.registry import MODELS

from ..layers import (GlobalStage, LocalBlock, conv_stem, downsample_layer,
                      memory_format_of, run_block)
from ..ops import apply_impl
from .common import (RELEASED_INIT, TwoBranchBackbone, linear_drop_path_rates,
                     parse_out_indices)

@MODELS.register_module()
class HiFuse(TwoBranchBackbone):
    """HiFuse's two branches; returns the per-stage local and global maps.

    Local branch (HiFuse eq. 3): 4x4/4 conv stem + LN, then 4 stages of
    :class:`LocalBlock` with LN + 2x2/2 conv downsampling between stages.
    Global branch (eq. 2): 4x4 patch embedding + LN, then 4
    :class:`GlobalStage` (patch merging at the start of stages 2-4, then
    alternating W-MSA / SW-MSA :class:`GlobalBlock`).

    Sizes (``arch``; the released factories give both branches the same
    depths; channels 96-192-384-768, heads 3-6-12-24, window 7):

    ========  ==============
    arch      depths
    ========  ==============
    tiny      (2, 2, 2, 2)
    small     (2, 2, 6, 2)
    base      (2, 2, 18, 2)
    ========  ==============

    Any input whose sides are multiples of 32 works; feature maps are padded
    to whole attention windows (the released code accepts only 224x224).

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'`` or a dict with
            ``embed_dims``, ``depths`` and ``num_heads`` (and optionally
            ``local_depths`` when the local branch should differ).
        in_channels: Image channels.
        window_size: Attention window side.
        qkv_bias: Bias of the qkv projections.
        drop_rate: Dropout after the attention projection.
        attn_drop_rate: Attention-map dropout.
        local_drop_path_rate: Max stochastic depth, local branch (released
            ``conv_drop_path_rate``, 0).
        global_drop_path_rate: Max stochastic depth, global branch
            (released ``drop_path_rate``, 0).
        shift_last_stage: Keep the SW-MSA shift in the last stage, where a
            224 input gives a single 7x7 window. The released code keeps it
            (Swin turns it off). Defaults to True.
        with_global_branch: Build the global branch. False gives the
            "local path" row of the paper's Table 3 ablation.
        with_cp: Gradient checkpointing in every block.
        out_indices: Stages whose ``(local, global)`` maps are returned.
        frozen_stages: Stages (from the stems) whose parameters are frozen.
        init_cfg: Defaults to the released init (:data:`RELEASED_INIT`).
        impl: Implementations of the blocks, selected once here:
            ``'auto'`` (the per-device table of :mod:`hifuse_mm.models.ops`),
            ``'reference'`` (the plain layers), or ``'cpu'`` / ``'cuda'``
            (that device type's selections on every device). Same
            parameters and state dict whatever the choice.

    Returns (from ``forward``):
        A tuple with one entry per ``out_indices`` stage, each a tuple
        ``(local_map, global_map)`` of ``[B, C_i, H/2^(i+2), W/2^(i+2)]``
        tensors (``(local_map,)`` without the global branch).
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['t', 'tiny'], {
            'embed_dims': 96,
            'depths': (2, 2, 2, 2),
            'num_heads': (3, 6, 12, 24)
        }),
        **dict.fromkeys(['s', 'small'], {
            'embed_dims': 96,
            'depths': (2, 2, 6, 2),
            'num_heads': (3, 6, 12, 24)
        }),
        **dict.fromkeys(['b', 'base'], {
            'embed_dims': 96,
            'depths': (2, 2, 18, 2),
            'num_heads': (3, 6, 12, 24)
        }),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 in_channels: int = 3,
                 window_size: int = 7,
                 qkv_bias: bool = True,
                 drop_rate: float = 0.,
                 attn_drop_rate: float = 0.,
                 local_drop_path_rate: float = 0.,
                 global_drop_path_rate: float = 0.,
                 shift_last_stage: bool = True,
                 with_global_branch: bool = True,
                 with_cp: bool = False,
                 out_indices: Sequence[int] = (0, 1, 2, 3),
                 frozen_stages: int = -1,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 impl: str = 'auto') -> None:
        super().__init__(init_cfg=RELEASED_INIT if init_cfg is None else
                         init_cfg)
        arch = self._parse_arch(arch)
        self.embed_dims = arch['embed_dims']
        self.depths = tuple(arch['depths'])
        self.local_depths = tuple(arch.get('local_depths', self.depths))
        self.num_heads = tuple(arch['num_heads'])
        num_stages = len(self.depths)
        if len(self.local_depths) != num_stages or len(
                self.num_heads) != num_stages:
            raise ValueError('arch: depths, local_depths and num_heads must '
                             'have one entry per stage')
        self.channels = tuple(self.embed_dims * 2**i
                              for i in range(num_stages))
        self.out_indices = parse_out_indices(out_indices, num_stages)
        self.with_global_branch = with_global_branch
        self.with_cp = with_cp
        self.frozen_stages = frozen_stages

        # Local branch.
        self.local_downsamples = nn.ModuleList([
            conv_stem(in_channels, self.channels[0])
        ] + [
            downsample_layer(self.channels[i - 1], self.channels[i])
            for i in range(1, num_stages)
        ])
        local_rates = linear_drop_path_rates(local_drop_path_rate, self.local_depths)
        self.local_stages = nn.ModuleList([
            nn.Sequential(*[
                LocalBlock(self.channels[i], local_rates[i][j])
                for j in range(self.local_depths[i])
            ]) for i in range(num_stages)
        ])

        # Global branch.
        if with_global_branch:
            self.patch_embed = PatchEmbed(
                in_channels=in_channels,
                embed_dims=self.channels[0],
                kernel_size=4,
                stride=4,
                norm_cfg=dict(type='LN'))  # eps 1e-5, as released
            global_rates = linear_drop_path_rates(global_drop_path_rate, self.depths)
            self.global_stages = nn.ModuleList([
                GlobalStage(
                    self.channels[i],
                    self.depths[i],
                    self.num_heads[i],
                    downsample=i > 0,
                    shift=shift_last_stage or i < num_stages - 1,
                    drop_path_rates=global_rates[i],
                    with_cp=with_cp,
                    window_size=window_size,
                    qkv_bias=qkv_bias,
                    attn_drop_rate=attn_drop_rate,
                    drop_rate=drop_rate) for i in range(num_stages)
            ])
        self._freeze_stages()
        apply_impl(self, impl)

    def _parse_arch(self, arch: Union[str, dict]) -> dict:
        if isinstance(arch, str):
            key = arch.lower()
            if key not in self.arch_zoo:
                raise KeyError(f'HiFuse arch {arch!r} is not one of '
                               f'{sorted(set(self.arch_zoo))}; or pass a '
                               'dict with embed_dims, depths, num_heads')
            return dict(self.arch_zoo[key])
        missing = {'embed_dims', 'depths', 'num_heads'} - set(arch)
        if missing:
            raise KeyError(f'HiFuse arch dict lacks {sorted(missing)}')
        return dict(arch)

    def _stage_modules(self, index: int) -> List[nn.Module]:
        modules = [self.local_downsamples[index], self.local_stages[index]]
        if self.with_global_branch:
            modules.append(self.global_stages[index])
            if index == 0:
                modules.append(self.patch_embed)
        return modules

    def forward(self, x: torch.Tensor) -> tuple:
        self._check_input(x)
        x = self._layout(x)
        outs = []
        local_x = x
        if self.with_global_branch:
            tokens, hw_shape = self.patch_embed(x)
        for i, stage in enumerate(self.local_stages):
            local_x = self.local_downsamples[i](local_x)
            for block in stage:
                local_x = run_block(block, local_x, with_cp=self.with_cp)
            maps = (local_x, )
            if self.with_global_branch:
                tokens, hw_shape = self.global_stages[i](tokens, hw_shape)
                global_x = tokens.view(-1, *hw_shape, tokens.shape[-1])
                maps += (global_x.permute(0, 3, 1, 2).contiguous(
                    memory_format=memory_format_of(x)), )
            if i in self.out_indices:
                outs.append(maps)
        return tuple(outs)
