"""The memory format a map arrives in, so that a block can return its output in it."""
import torch


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """``torch.channels_last`` for a channels-last ``[B, C, H, W]`` map, else
    ``torch.contiguous_format`` (also when both apply, e.g. ``H = W = 1``).

    Blocks that work on ``[B, H, W, C]`` tokens internally return
    ``out.contiguous(memory_format=memory_format_of(x))``: a channels-last
    model (the backbones' ``impl``, :mod:`hifuse_mm.models.ops`) stays
    channels-last without copies, an NCHW one stays NCHW.
    """
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
            memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format
