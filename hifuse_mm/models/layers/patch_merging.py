"""Swin's 2x2 patch merging with a copy-light fast path."""
from typing import Sequence, Tuple

import torch
from mmcv.cnn.bricks.transformer import PatchMerging

from .. import fast_paths


class PatchMerging2x2(PatchMerging):
    """mmcv's :class:`PatchMerging` (2x2 / stride 2) with a fast path.

    Same constructor, parameters (``norm``, ``reduction``) and state dict.
    mmcv gathers each 2x2 neighbourhood with ``nn.Unfold`` (im2col on a
    permuted view), then transposes, so the LayerNorm copies again. With
    the fast paths on (:mod:`~hifuse_mm.models.fast_paths`) and even map
    sides (no padding), the same ``[B, H/2 * W/2, 4C]`` tensor, in
    ``nn.Unfold``'s channel order ``(c, dy, dx)``, is built with one
    reshape-copy of the token tensor.
    """

    def forward(self, x: torch.Tensor, input_size: Sequence[int]
                ) -> Tuple[torch.Tensor, Tuple[int, int]]:
        height, width = input_size
        # Even sides: mmcv's adaptive ('corner' / 'same') padding adds nothing.
        if (not fast_paths.enabled()
                or tuple(self.sampler.kernel_size) != (2, 2)
                or tuple(self.sampler.stride) != (2, 2)
                or tuple(self.sampler.padding) != (0, 0)
                or tuple(self.sampler.dilation) != (1, 1)
                or height % 2 or width % 2):
            return super().forward(x, input_size)
        batch, length, channels = x.shape
        assert length == height * width, 'input feature has wrong size'
        out_h, out_w = height // 2, width // 2
        x = x.view(batch, out_h, 2, out_w, 2, channels).permute(
            0, 1, 3, 5, 2, 4).reshape(batch, out_h * out_w, 4 * channels)
        x = self.norm(x) if self.norm else x
        return self.reduction(x), (out_h, out_w)
