"""Channels-first LayerNorm that leaves its output in channels-last memory."""
import torch
import torch.nn.functional as F
from mmpretrain.models.utils.norm import LayerNorm2d as _MMPretrainLN2d
from mmpretrain.registry import MODELS

from .. import fast_paths


@MODELS.register_module('HiFuseLN2d')
class LayerNorm2d(_MMPretrainLN2d):
    """LayerNorm over the channels of a ``[B, C, H, W]`` map.

    mmpretrain's ``LN2d`` (same parameters, same state dict, same result),
    which permutes to NHWC, normalises and permutes back, then copies the
    result into NCHW memory (``.contiguous()``). Fast path
    (:mod:`~hifuse_mm.models.fast_paths`): the copy back is skipped, so
    the output is a ``[B, C, H, W]`` tensor in channels-last memory; on a
    channels-last input the whole call is copy-free. Convolutions, linear
    layers on permuted maps and elementwise ops all take channels-last
    tensors, which is how the backbones run when the fast paths are on.

    Args:
        num_channels: Channels ``C``.
        **kwargs: ``eps`` and ``elementwise_affine`` of ``nn.LayerNorm``.
    """

    def forward(self,
                x: torch.Tensor,
                data_format: str = 'channel_first') -> torch.Tensor:
        if data_format != 'channel_first' or not fast_paths.enabled():
            return super().forward(x, data_format)
        if x.dim() != 4:
            raise ValueError('LayerNorm2d only supports inputs with shape '
                             f'(N, C, H, W), but got {tuple(x.shape)}')
        x = F.layer_norm(
            x.permute(0, 2, 3, 1), self.normalized_shape, self.weight,
            self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
