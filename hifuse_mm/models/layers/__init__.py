"""Building blocks shared by HiFuse and HEMF."""
from .channel_attention import ChannelAttention
from .checkpoint import run_block
from .conv_bn import conv_bn
from .egf_stage import EGFStage
from .elf_block import ELFBlock
from .external_attention import MultiHeadExternalAttention
from .fusion_path import FusionPath
from .global_block import GlobalBlock, GlobalStage
from .hef_block import HEFBlock
from .hff_block import HFFBlock
from .irmlp import IRMLP, SIRMLP
from .local_block import LocalBlock
from .manhattan_attention import ManhattanSelfAttention
from .manhattan_rel_pos import ManhattanRelPos2d, RelPos2d
from .mixed_attention import MixedAttention
from .spatial_attention import SpatialAttention
from .stems import conv_stem, downsample_layer

__all__ = [
    'ChannelAttention', 'run_block', 'conv_bn', 'EGFStage', 'ELFBlock',
    'MultiHeadExternalAttention', 'FusionPath', 'GlobalBlock', 'GlobalStage',
    'HEFBlock', 'HFFBlock', 'IRMLP', 'SIRMLP', 'LocalBlock',
    'ManhattanSelfAttention', 'ManhattanRelPos2d', 'RelPos2d',
    'MixedAttention', 'SpatialAttention', 'conv_stem', 'downsample_layer'
]
