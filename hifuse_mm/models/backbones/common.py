"""Pieces shared by the HiFuse and HEMF backbones."""
from typing import Callable, Dict, List, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models.backbones.base_backbone import BaseBackbone

#: The released code's init, applied before the fusion blocks exist, so it
#: reaches the two branches only: trunc-normal 0.02 on linears, trunc-normal
#: **0.2** on convs (ten times ConvNeXt's), LayerNorms 1 / 0. Relative
#: position tables get trunc-normal 0.02 from mmpretrain's ``WindowMSA``.
RELEASED_INIT = [
    dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.),
    dict(type='TruncNormal', layer='Conv2d', std=0.2, bias=0.),
    dict(type='Constant', layer='LayerNorm', val=1., bias=0.),
]


def linear_drop_path_rates(rate: float, depths: Sequence[int]) -> List[List[float]]:
    """Stochastic-depth rates growing linearly over all blocks of a branch."""
    flat = torch.linspace(0, rate, sum(depths)).tolist()
    out, start = [], 0
    for d in depths:
        out.append(flat[start:start + d])
        start += d
    return out


def parse_out_indices(out_indices: Union[int, Sequence[int]],
                      num_stages: int) -> Tuple[int, ...]:
    """Normalise ``out_indices`` (negative indices allowed) and check them."""
    if isinstance(out_indices, int):
        out_indices = [out_indices]
    out = []
    for i in out_indices:
        j = i % num_stages if i < 0 else i
        if not 0 <= j < num_stages:
            raise ValueError(f'out_indices {i} out of range for '
                             f'{num_stages} stages')
        out.append(j)
    return tuple(out)


class TwoBranchBackbone(BaseBackbone):
    """Stage freezing, input checks and input layout shared by the two-branch
    backbones.

    Subclasses set ``self.frozen_stages``, implement :meth:`_stage_modules`
    and call :func:`~hifuse_mm.models.ops.apply_impl` on themselves at the end
    of ``__init__``, which also sets :attr:`impls`.
    """

    #: Input sides must be multiples of this (the total downsampling).
    size_divisor = 32
    frozen_stages: int = -1
    #: The op of :mod:`hifuse_mm.models.ops` the backbone selects in place: its
    #: input's memory layout.
    selectable_op = 'channels_last'
    #: Device type -> ``fn(backbone, x)`` laying out the input (none: as given).
    impls: Dict[str, Callable] = {}

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        fn = self.impls.get(x.device.type)
        return x if fn is None else fn(self, x)

    def _stage_modules(self, index: int) -> List[nn.Module]:
        """Every module of stage ``index``, stems included for stage 0."""
        raise NotImplementedError

    def _freeze_stages(self) -> None:
        for i in range(self.frozen_stages + 1):
            for module in self._stage_modules(i):
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True) -> 'TwoBranchBackbone':
        super().train(mode)
        self._freeze_stages()
        return self

    def _check_input(self, x: torch.Tensor) -> None:
        height, width = x.shape[-2:]
        if height % self.size_divisor or width % self.size_divisor:
            raise ValueError(
                f'{type(self).__name__} needs input sides that are multiples '
                f'of {self.size_divisor}, got {height}x{width}')
