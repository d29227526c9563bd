"""Building blocks shared by HiFuse and HEMF."""
from .batch_norm_2d import BatchNorm2d
from .channel_attention import ChannelAttention
from .checkpoint import run_block
from .conv_bn import conv_bn
from .depthwise_conv import DepthwiseConv2d
from .egf_stage import EGFStage
from .elf_block import ELFBlock
from .external_attention import MultiHeadExternalAttention
from .fusion_block import FusionBlock
from .fusion_path import FusionPath
from .global_block import GlobalBlock, GlobalStage
from .hef_block import HEFBlock
from .hff_block import HFFBlock
from .im2col_conv import Im2colConv2d
from .irmlp import IRMLP, SIRMLP
from .layer_norm_2d import LayerNorm2d
from .local_block import LocalBlock
from .manhattan_attention import ManhattanSelfAttention
from .manhattan_rel_pos import ManhattanRelPos2d, RelPos2d
from .mixed_attention import MixedAttention
from .patch_merging import PatchMerging2x2
from .pointwise_conv import PointwiseConv2d
from .spatial_attention import SpatialAttention
from .stems import conv_stem, downsample_layer
from .window_attention import WindowAttention

__all__ = [
    'BatchNorm2d', 'ChannelAttention', 'run_block', 'conv_bn', 'DepthwiseConv2d',
    'EGFStage', 'ELFBlock', 'MultiHeadExternalAttention', 'FusionBlock', 'FusionPath',
    'GlobalBlock', 'GlobalStage', 'HEFBlock', 'HFFBlock', 'Im2colConv2d',
    'IRMLP', 'SIRMLP', 'LayerNorm2d', 'LocalBlock', 'ManhattanSelfAttention',
    'ManhattanRelPos2d', 'RelPos2d', 'MixedAttention', 'PatchMerging2x2',
    'PointwiseConv2d', 'SpatialAttention', 'conv_stem', 'downsample_layer',
    'WindowAttention'
]
