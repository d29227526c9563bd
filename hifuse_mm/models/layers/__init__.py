"""Building blocks shared by HiFuse and HEMF."""
from .channel_attention import ChannelAttention
from .checkpoint import run_block
from .conv_bn import conv_bn
from .fusion_path import FusionPath
from .global_block import GlobalBlock, GlobalStage
from .hff_block import HFFBlock
from .irmlp import IRMLP, SIRMLP
from .local_block import LocalBlock
from .spatial_attention import SpatialAttention
from .stems import conv_stem, downsample_layer

__all__ = [
    'ChannelAttention', 'run_block', 'conv_bn', 'FusionPath', 'GlobalBlock', 'GlobalStage',
    'HFFBlock', 'IRMLP', 'SIRMLP', 'LocalBlock', 'SpatialAttention',
    'conv_stem', 'downsample_layer'
]
