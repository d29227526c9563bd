"""HEF neck: HEMF's fusion path and classifier pooling."""
from typing import Optional, Sequence

import torch.nn as nn
from mmpretrain.registry import MODELS

from ..layers import HEFBlock
from ..ops import apply_impl
from .fusion_neck import FusionNeck


@MODELS.register_module()
class HEFNeck(FusionNeck):
    """One :class:`HEFBlock` per stage, then GAP + LayerNorm.

    Consumes the ``(local, global)`` stage maps of :class:`HEMF` and returns
    ``(features,)`` of shape ``[B, C_last]`` for mmpretrain's
    ``LinearClsHead`` (the released head is GAP -> LN(eps 1e-6) -> Linear,
    HEMF paper, "Overview"). The stage-4 fused map, the paper's Grad-CAM++
    target ("the output of the final layer excluding the linear layer"), is
    the output of ``blocks[-1]``.

    Default = the released code, which produced the paper's numbers; the
    fusion blocks keep PyTorch's default init except the MHEA memories
    (N(0, 0.001^2)), as released.

    Args:
        in_channels: Channels of each stage.
        sirmlp_depthwise: Depthwise SIRMLP 3x3 (the paper's text and HEF
            figure: 61.23 M parameters, 8.97 GMACs) or dense (released code
            and the paper's Table 3 / Table 6 numbers). Defaults to False.
        mhea_heads: MHEA heads (8).
        memory_size: MHEA memory slots ``S`` (64).
        reduction: Channel-attention reduction (16).
        drop_path_rate: Stochastic depth in every HEF block (released
            ``HEF_drop_rate``, constant over blocks, 0).
        with_fusion: False skips the HEF path and pools the backbone's last
            map of its only branch (the "ELF only" / "EGF only" rows of the
            paper's Table 10).
        with_mhea: MHEA in the Mixed Attention (Table 10).
        with_spatial_channel: SA and CA in the Mixed Attention (Table 10).
        with_sirmlp: SIRMLP (Table 10); otherwise a 1x1 conv + BN.
        with_cp: Gradient checkpointing of every block.
        norm_eps: Epsilon of the final LayerNorm (1e-6 as released).
        impl: Implementations of the blocks, selected once here (see
            :class:`~hifuse_mm.models.HiFuse`): ``'auto'``, ``'reference'``,
            ``'cpu'`` or ``'cuda'``.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (96, 192, 384, 768),
                 sirmlp_depthwise: bool = False,
                 mhea_heads: int = 8,
                 memory_size: int = 64,
                 reduction: int = 16,
                 drop_path_rate: float = 0.,
                 with_fusion: bool = True,
                 with_mhea: bool = True,
                 with_spatial_channel: bool = True,
                 with_sirmlp: bool = True,
                 with_cp: bool = False,
                 norm_eps: float = 1e-6,
                 init_cfg: Optional[dict] = None,
                 impl: str = 'auto') -> None:
        super().__init__(in_channels, with_fusion, with_cp, norm_eps, init_cfg)
        if with_fusion:
            self.blocks = nn.ModuleList([
                HEFBlock(
                    c,
                    with_previous=i > 0,
                    sirmlp_depthwise=sirmlp_depthwise,
                    mhea_heads=mhea_heads,
                    memory_size=memory_size,
                    reduction=reduction,
                    drop_path_rate=drop_path_rate,
                    with_mhea=with_mhea,
                    with_spatial_channel=with_spatial_channel,
                    with_sirmlp=with_sirmlp)
                for i, c in enumerate(self.in_channels)
            ])
        apply_impl(self, impl)
