"""HFF neck: HiFuse's fusion path and classifier pooling."""
from typing import Optional, Sequence

import torch.nn as nn
from mmpretrain.registry import MODELS

from ..layers import HFFBlock
from ..ops import apply_impl
from .fusion_neck import FusionNeck


@MODELS.register_module()
class HFFNeck(FusionNeck):
    """One :class:`HFFBlock` per stage, then GAP + LayerNorm.

    Consumes the ``(local, global)`` stage maps of :class:`HiFuse` and
    returns ``(features,)`` of shape ``[B, C_last]`` for mmpretrain's
    ``LinearClsHead`` (the released head is GAP -> LN(eps 1e-6) -> Linear).
    The stage-4 fused map, the paper's Grad-CAM target ("the last layer
    except the linear layer"), is the output of ``blocks[-1]``.

    Default = the paper's design; ``irmlp_depthwise=False`` gives the
    released code exactly (see docs/models.md, "Paper vs released code").

    Args:
        in_channels: Channels of each stage.
        irmlp_depthwise: Depthwise IRMLP 3x3 (paper Table 1, default) or
            dense (released code).
        double_sigmoid: Channel attention's sigmoid applied twice (released
            code before 2024-01-16). Defaults to False.
        drop_path_rate: Stochastic depth in every HFF block (released
            ``HFF_dp``, constant over blocks, 0).
        with_fusion: False skips the HFF path and pools the backbone's last
            local map (the "local path" row of the paper's Table 3).
        with_attention: Spatial / channel attention (Table 3 row 3).
        with_irmlp: IRMLP (Table 3 row 4); otherwise a 1x1 conv + BN.
        with_shortcut: Shortcut from the previous stage (Table 3 row 5).
        with_cp: Gradient checkpointing of every block.
        norm_eps: Epsilon of the final LayerNorm (1e-6 as released).
        impl: Implementations of the blocks, selected once here (see
            :class:`~hifuse_mm.models.HiFuse`): ``'auto'``, ``'reference'``,
            ``'cpu'`` or ``'cuda'``.
    """

    def __init__(self,
                 in_channels: Sequence[int] = (96, 192, 384, 768),
                 irmlp_depthwise: bool = True,
                 double_sigmoid: bool = False,
                 drop_path_rate: float = 0.,
                 with_fusion: bool = True,
                 with_attention: bool = True,
                 with_irmlp: bool = True,
                 with_shortcut: bool = True,
                 with_cp: bool = False,
                 norm_eps: float = 1e-6,
                 init_cfg: Optional[dict] = None,
                 impl: str = 'auto') -> None:
        super().__init__(in_channels, with_fusion, with_cp, norm_eps, init_cfg)
        if with_fusion:
            self.blocks = nn.ModuleList([
                HFFBlock(
                    c,
                    with_previous=i > 0,
                    irmlp_depthwise=irmlp_depthwise,
                    double_sigmoid=double_sigmoid,
                    drop_path_rate=drop_path_rate,
                    with_attention=with_attention,
                    with_irmlp=with_irmlp,
                    with_shortcut=with_shortcut)
                for i, c in enumerate(self.in_channels)
            ])
        apply_impl(self, impl)
