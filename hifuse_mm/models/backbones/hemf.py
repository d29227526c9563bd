"""HEMF backbone: parallel enhanced local (ELF) and global (EGF) branches.

He et al., "HEMF: an adaptive hierarchical enhanced multi-attention feature
fusion framework for cross-scale medical image classification", PeerJ
Computer Science 11:e3181 (2025). The HEF fusion blocks and the classifier's
pooling live in :class:`~hifuse_mm.models.HEFNeck`.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from ..layers import (EGFStage, ELFBlock, conv_stem, downsample_layer,
                      run_block)
from ..ops import apply_impl
from .common import (RELEASED_INIT, TwoBranchBackbone, linear_drop_path_rates,
                     parse_out_indices)

Scalar = Union[float, bool]


def _per_stage(value: Union[Scalar, Sequence[Scalar]], num_stages: int,
               name: str) -> tuple:
    """Broadcast a scalar to every stage, or check a per-stage sequence."""
    if isinstance(value, (int, float, bool)):
        return (value, ) * num_stages
    value = tuple(value)
    if len(value) != num_stages:
        raise ValueError(f'{name} needs one entry per stage '
                         f'({num_stages}), got {value}')
    return value


@MODELS.register_module()
class HEMF(TwoBranchBackbone):
    """HEMF's two branches; returns the per-stage local and global maps.

    * Local branch (HEMF eqs. 1-2): 4x4/4 conv stem + LN, then 4 stages of
      :class:`ELFBlock` (4 each) with LN + 2x2/2 conv downsampling between
      stages.
    * Global branch (eqs. 3-6): **its own** stem and downsampling layers
      (same design, separate weights), then one :class:`EGFStage` of 3
      decomposed-MaSA sub-layers per stage.

    Channels 96-192-384-768; MaSA has 8 heads in every stage (head
    dimensions 12, 24, 48, 96). The default is the released code
    (``Esgjgd/HEMF``, factory ``HEMF``), with which the paper's numbers
    were produced.

    Paper vs released code, each behind a flag (default = released):

    * ``shared_stem``: the paper's text and overview figure have one stem
      feeding both branches; the code gives each branch its own stem and
      downsampling layers (+1.56 M parameters in all). True shares the
      stem only (the paper says nothing about the downsampling). False.
    * ``decomposed_masa``: the paper names MaSA (eq. 3, 2-D Manhattan
      decay); the code uses RMT's decomposed form (row then column) in
      every stage, while RMT itself uses full MaSA in its last stage(s).
      True for every stage.
    * ``arch['num_heads']``: 8 in every stage as released; RMT-T/S use
      (4, 4, 8, 16) heads.
    * ``masa_initial_value`` / ``masa_heads_range``: the decay schedule;
      HEMF keeps RMT's class defaults 1 and 3 in every stage (RMT's models
      use 2 and 4-6). 1 and 3.

    The EGF's post-norm with LayerNorms shared across a stage, the linear
    layer without activation and the absence of RMT's CPE and FFN are
    what both the paper's eqs. 5-6 and the code do; they are not flags.

    Any input whose sides are multiples of 32 works, square or not.

    Args:
        arch: ``'default'`` or a dict overriding some of ``embed_dims``,
            ``local_depths`` (4, 4, 4, 4), ``global_depths`` (3, 3, 3, 3)
            and ``num_heads`` (8, 8, 8, 8).
        in_channels: Image channels.
        local_drop_path_rate: Max stochastic depth of the ELF blocks,
            growing linearly over the 16 blocks (released
            ``ELF_drop_path_rate``, 0).
        global_drop_path_rate: Max stochastic depth of the EGF sub-layers,
            linear over the 12 (the released EGF has none: 0).
        decomposed_masa: Decomposed (True) or full 2-D (False) MaSA, one
            bool for all stages or one per stage.
        masa_initial_value: MaSA decay offset, scalar or per stage.
        masa_heads_range: MaSA decay range over the heads, scalar or per
            stage.
        shared_stem: Feed the global branch from the local branch's stem
            (paper figure) instead of its own (released).
        with_local_branch: Build the ELF branch (False: the "EGF only" row
            of the paper's Table 10).
        with_global_branch: Build the EGF branch (False: "ELF only").
        with_cp: Gradient checkpointing of every ELF block and EGF stage.
        out_indices: Stages whose maps are returned.
        frozen_stages: Stages (from the stems) whose parameters are frozen.
        init_cfg: Defaults to the released init
            (:data:`~hifuse_mm.models.backbones.common.RELEASED_INIT`):
            trunc-normal 0.02 on linears (so the MaSA projections lose RMT's
            Xavier init), trunc-normal 0.2 on every conv (stems, ELF convs,
            LePE), LayerNorms 1 / 0.
        impl: Implementations of the blocks, selected once here:
            ``'auto'`` (the per-device table of :mod:`hifuse_mm.models.ops`),
            ``'reference'`` (the plain layers), or ``'cpu'`` / ``'cuda'``
            (that device type's selections on every device). Same
            parameters and state dict whatever the choice.

    Returns (from ``forward``):
        A tuple with one entry per ``out_indices`` stage, each a tuple
        ``(local_map, global_map)`` of ``[B, C_i, H/2^(i+2), W/2^(i+2)]``
        tensors (a 1-tuple when one branch is not built).
    """

    arch_zoo: Dict[str, dict] = {
        **dict.fromkeys(['d', 'default'], {
            'embed_dims': 96,
            'local_depths': (4, 4, 4, 4),
            'global_depths': (3, 3, 3, 3),
            'num_heads': (8, 8, 8, 8)
        }),
    }

    def __init__(self,
                 arch: Union[str, dict] = 'default',
                 in_channels: int = 3,
                 local_drop_path_rate: float = 0.,
                 global_drop_path_rate: float = 0.,
                 decomposed_masa: Union[bool, Sequence[bool]] = True,
                 masa_initial_value: Union[float, Sequence[float]] = 1.,
                 masa_heads_range: Union[float, Sequence[float]] = 3.,
                 shared_stem: bool = False,
                 with_local_branch: bool = True,
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
        self.local_depths = tuple(arch['local_depths'])
        self.global_depths = tuple(arch['global_depths'])
        self.num_stages = num_stages = len(self.local_depths)
        self.num_heads = _per_stage(arch['num_heads'], num_stages,
                                    'num_heads')
        if len(self.global_depths) != num_stages:
            raise ValueError('arch: local_depths and global_depths must have '
                             'one entry per stage')
        if not (with_local_branch or with_global_branch):
            raise ValueError('HEMF needs at least one branch')
        if shared_stem and not with_local_branch:
            raise ValueError('shared_stem needs the local branch (it owns '
                             'the stem)')
        self.decomposed_masa = _per_stage(decomposed_masa, num_stages,
                                          'decomposed_masa')
        initial_values = _per_stage(masa_initial_value, num_stages,
                                    'masa_initial_value')
        heads_ranges = _per_stage(masa_heads_range, num_stages,
                                  'masa_heads_range')
        self.channels = tuple(self.embed_dims * 2**i
                              for i in range(num_stages))
        self.out_indices = parse_out_indices(out_indices, num_stages)
        self.with_local_branch = with_local_branch
        self.with_global_branch = with_global_branch
        self.shared_stem = shared_stem
        self.with_cp = with_cp
        self.frozen_stages = frozen_stages

        if with_local_branch:
            self.local_downsamples = self._downsamples(in_channels)
            rates = linear_drop_path_rates(local_drop_path_rate, self.local_depths)
            self.local_stages = nn.ModuleList([
                nn.Sequential(*[
                    ELFBlock(self.channels[i], rates[i][j])
                    for j in range(self.local_depths[i])
                ]) for i in range(num_stages)
            ])
        if with_global_branch:
            self.global_downsamples = self._downsamples(in_channels)
            if shared_stem:
                self.global_downsamples[0] = nn.Identity()
            rates = linear_drop_path_rates(global_drop_path_rate, self.global_depths)
            self.global_stages = nn.ModuleList([
                EGFStage(
                    self.channels[i],
                    self.global_depths[i],
                    self.num_heads[i],
                    decomposed=self.decomposed_masa[i],
                    initial_value=initial_values[i],
                    heads_range=heads_ranges[i],
                    drop_path_rates=rates[i]) for i in range(num_stages)
            ])
        self._freeze_stages()
        apply_impl(self, impl)

    def _downsamples(self, in_channels: int) -> nn.ModuleList:
        """Stem, then LN + 2x2/2 conv before stages 2-4."""
        return nn.ModuleList([conv_stem(in_channels, self.channels[0])] + [
            downsample_layer(self.channels[i - 1], self.channels[i])
            for i in range(1, self.num_stages)
        ])

    def _parse_arch(self, arch: Union[str, dict]) -> dict:
        default = self.arch_zoo['default']
        if isinstance(arch, str):
            key = arch.lower()
            if key not in self.arch_zoo:
                raise KeyError(f'HEMF arch {arch!r} is not one of '
                               f'{sorted(set(self.arch_zoo))}; or pass a '
                               'dict overriding ' + ', '.join(default))
            return dict(self.arch_zoo[key])
        unknown = set(arch) - set(default)
        if unknown:
            raise KeyError(f'HEMF arch dict has unknown keys '
                           f'{sorted(unknown)}; known: {sorted(default)}')
        return {**default, **arch}

    def _stage_modules(self, index: int) -> List[nn.Module]:
        modules = []
        if self.with_local_branch:
            modules += [self.local_downsamples[index], self.local_stages[index]]
        if self.with_global_branch:
            modules += [
                self.global_downsamples[index], self.global_stages[index]
            ]
        return modules

    def forward(self, x: torch.Tensor) -> tuple:
        self._check_input(x)
        x = self._layout(x)
        outs = []
        local_x = global_x = x
        for i in range(self.num_stages):
            maps = ()
            if self.with_local_branch:
                local_x = self.local_downsamples[i](local_x)
                if i == 0 and self.shared_stem:
                    global_x = local_x
                for block in self.local_stages[i]:
                    local_x = run_block(block, local_x, with_cp=self.with_cp)
                maps += (local_x, )
            if self.with_global_branch:
                global_x = self.global_downsamples[i](global_x)
                global_x = run_block(
                    self.global_stages[i], global_x, with_cp=self.with_cp)
                maps += (global_x, )
            if i in self.out_indices:
                outs.append(maps)
        return tuple(outs)
