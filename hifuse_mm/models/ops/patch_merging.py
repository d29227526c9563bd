"""Swin's 2x2 patch merging with one reshape-copy."""
from typing import Sequence, Tuple

import torch
from mmcv.cnn.bricks.transformer import PatchMerging

from .drop_in import DropIn


def patch_merging_reshape(merge: PatchMerging, x: torch.Tensor,
                          input_size: Sequence[int]
                          ) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """mmcv's 2x2 / stride-2 :class:`PatchMerging` without ``nn.Unfold``.

    mmcv gathers each 2x2 neighbourhood with ``nn.Unfold`` (im2col on a
    permuted view), then transposes, so the LayerNorm copies again. With even
    map sides (no padding) the same ``[B, H/2 * W/2, 4C]`` tensor, in
    ``nn.Unfold``'s channel order ``(c, dy, dx)``, is one reshape-copy of the
    token tensor. Other settings run mmcv's forward.
    """
    height, width = input_size
    # Even sides: mmcv's adaptive ('corner' / 'same') padding adds nothing.
    if (tuple(merge.sampler.kernel_size) != (2, 2)
            or tuple(merge.sampler.stride) != (2, 2)
            or tuple(merge.sampler.padding) != (0, 0)
            or tuple(merge.sampler.dilation) != (1, 1)
            or height % 2 or width % 2):
        return PatchMerging.forward(merge, x, input_size)
    batch, length, channels = x.shape
    assert length == height * width, 'input feature has wrong size'
    out_h, out_w = height // 2, width // 2
    x = x.view(batch, out_h, 2, out_w, 2, channels).permute(
        0, 1, 3, 5, 2, 4).reshape(batch, out_h * out_w, 4 * channels)
    x = merge.norm(x) if merge.norm else x
    return merge.reduction(x), (out_h, out_w)


class OptimisedPatchMerging(DropIn, PatchMerging):
    """Drop-in for mmcv's ``PatchMerging`` (op ``patch_merging``)."""

    reference = PatchMerging
    op = 'patch_merging'
    implementations = {'reshape': patch_merging_reshape}
