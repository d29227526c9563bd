"""Building blocks shared by HiFuse and HEMF: the plain reference implementations.

Each block is built from torch / mmcv / mmpretrain modules and cites the paper
equation it implements. Optimised drop-ins for some of them (same parameters and
state dict) live in :mod:`hifuse_mm.models.ops`; the backbones and necks select them
when they are built.
"""
from .channel_attention import ChannelAttention
from .checkpoint import run_block
from .conv_bn import conv_bn
from .egf_stage import EGFStage
from .elf_block import ELFBlock
from .external_attention import MultiHeadExternalAttention
from .fusion_block import FusionBlock
from .fusion_path import FusionPath
from .global_block import GlobalBlock, GlobalStage
from .hef_block import HEFBlock
from .hff_block import HFFBlock
from .irmlp import IRMLP, SIRMLP
from .local_block import LocalBlock
from .manhattan_attention import ManhattanSelfAttention
from .manhattan_rel_pos import ManhattanRelPos2d, RelPos2d
from .memory_format import memory_format_of
from .mixed_attention import MixedAttention
from .spatial_attention import SpatialAttention
from .stems import LN2D_CFG, conv_stem, downsample_layer

__all__ = [
    'ChannelAttention', 'run_block', 'conv_bn', 'EGFStage', 'ELFBlock',
    'MultiHeadExternalAttention', 'FusionBlock', 'FusionPath', 'GlobalBlock',
    'GlobalStage', 'HEFBlock', 'HFFBlock', 'IRMLP', 'SIRMLP', 'LN2D_CFG',
    'LocalBlock', 'ManhattanSelfAttention', 'ManhattanRelPos2d', 'RelPos2d',
    'memory_format_of', 'MixedAttention', 'SpatialAttention', 'conv_stem',
    'downsample_layer'
]
