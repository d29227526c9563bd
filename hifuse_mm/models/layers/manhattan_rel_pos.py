"""Rotary terms and Manhattan decay masks of MaSA (RMT's RetNetRelPos2d)."""
from typing import NamedTuple, Sequence, Tuple

import torch
import torch.nn as nn


class RelPos2d(NamedTuple):
    """What :class:`ManhattanRelPos2d` computes for one ``H x W`` map.

    ``sin`` and ``cos`` are ``[H, W, head_dim]``. ``masks`` holds the
    log-decay masks added to the attention logits: ``(mask_h, mask_w)`` of
    ``[heads, H, H]`` and ``[heads, W, W]`` for the decomposed attention, or
    ``(mask_2d,)`` of ``[heads, HW, HW]`` for the full one.
    """
    sin: torch.Tensor
    cos: torch.Tensor
    masks: Tuple[torch.Tensor, ...]


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """Rotate each consecutive channel pair: ``(a, b) -> (-b, a)``."""
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((-odd, even), dim=-1).flatten(-2)


def apply_rotary(x: torch.Tensor, rel_pos: RelPos2d) -> torch.Tensor:
    """RoPE-style ``x cos + rot(x) sin`` of ``[..., H, W, head_dim]``."""
    return x * rel_pos.cos + rotate_pairs(x) * rel_pos.sin


class ManhattanRelPos2d(nn.Module):
    """Position terms of Manhattan self-attention (HEMF eqs. 3-4; RMT).

    Holds no parameters, only two persistent buffers (they are in the
    released state dict, so a converted checkpoint is checked against them):

    * ``angle`` ``[head_dim]``: ``10000^-linspace(0, 1, head_dim / 2)``, each
      value twice (one per channel of a rotated pair);
    * ``decay`` ``[heads]``: ``log(1 - 2^(-initial_value - heads_range * h /
      heads))``, the log of head ``h``'s spatial decay ``gamma_h`` (eq. 3).
      HEMF uses RMT's class defaults 1 and 3 in every stage, i.e.
      ``gamma = 0.5 ... 0.919`` whatever the stage (RMT's own models use
      2 and 4-6 per stage).

    ``forward`` computes, once per EGF stage (the paper's "position
    embedding only once"), the rotary terms of the *flattened* token index
    ``n = y * W + x`` (as released; not a 2-D rotary code) and the decay
    masks: ``decay_h * |i - j|`` per axis for the decomposed attention, or
    ``decay_h * (|dy| + |dx|)`` (the Manhattan distance, eq. 3) over all
    token pairs for the full one. Adding them to the logits before the
    softmax equals multiplying the attention by ``gamma^distance`` and
    renormalising.

    Args:
        embed_dims: Channels ``C``.
        num_heads: Heads; ``C / num_heads`` must be even.
        initial_value: Decay schedule offset (1).
        heads_range: Decay schedule range over the heads (3).
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 initial_value: float = 1.,
                 heads_range: float = 3.) -> None:
        super().__init__()
        head_dim = embed_dims // num_heads
        if embed_dims % num_heads or head_dim % 2:
            raise ValueError(f'{embed_dims} channels over {num_heads} heads '
                             'must give an even head dimension')
        angle = 1.0 / (10000**torch.linspace(0, 1, head_dim // 2))
        decay = torch.log(1 - 2**(-initial_value - heads_range * torch.arange(
            num_heads, dtype=torch.float) / num_heads))
        self.register_buffer('angle', angle.repeat_interleave(2))
        self.register_buffer('decay', decay)

    def _axis_distance(self, length: int) -> torch.Tensor:
        index = torch.arange(length).to(self.decay)
        return (index[:, None] - index[None, :]).abs()

    def forward(self, hw_shape: Sequence[int], decomposed: bool) -> RelPos2d:
        height, width = hw_shape
        # Phases in fp32 even for a half-precision model: token indices
        # above 2048 are not exact in fp16.
        index = torch.arange(
            height * width, dtype=torch.float32, device=self.angle.device)
        phase = index[:, None] * self.angle.float()[None, :]
        sin = torch.sin(phase).reshape(height, width, -1).to(self.angle)
        cos = torch.cos(phase).reshape(height, width, -1).to(self.angle)
        decay = self.decay[:, None, None]
        if decomposed:
            masks = (self._axis_distance(height) * decay,
                     self._axis_distance(width) * decay)
        else:
            dy = self._axis_distance(height)[:, None, :, None]
            dx = self._axis_distance(width)[None, :, None, :]
            distance = (dy + dx).reshape(height * width, height * width)
            masks = (distance * decay, )
        return RelPos2d(sin, cos, masks)
