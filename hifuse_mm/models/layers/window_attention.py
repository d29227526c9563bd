"""(Shifted) window attention with a fused fast path: HiFuse's W-MSA / SW-MSA."""
from functools import lru_cache
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmpretrain.models.utils import ShiftWindowMSA

from .. import fast_paths


@lru_cache(maxsize=64)
def _window_plan(height: int, width: int, window: int, shift: int,
                 device: torch.device) -> Tuple[torch.Tensor, torch.Tensor,
                                                Optional[torch.Tensor]]:
    """Token gathers and shift mask for one padded map size (cached).

    Returns ``(to_windows, from_windows, mask)`` for a padded map of
    ``height x width`` (multiples of ``window``):

    * ``to_windows`` ``[H W]``: flat token index of each window slot, in
      the order of mmpretrain's ``torch.roll(-shift)`` followed by
      ``window_partition`` (windows row-major, tokens row-major inside);
    * ``from_windows`` ``[H W]``: the inverse permutation (window slot of
      each token), i.e. ``window_reverse`` followed by ``torch.roll(+shift)``;
    * ``mask`` ``[nW, N, N]`` float32: Swin's 0 / -100 shift mask, exactly
      :meth:`ShiftWindowMSA.get_attn_mask`, or None without a shift.

    Plans are read-only; they depend only on their arguments.
    """
    index = torch.arange(height * width, device=device).view(height, width)
    if shift:
        index = index.roll((-shift, -shift), dims=(0, 1))
    to_windows = index.view(height // window, window, width // window,
                            window).transpose(1, 2).reshape(-1)
    from_windows = torch.empty_like(to_windows)
    from_windows[to_windows] = torch.arange(
        to_windows.numel(), device=device)
    mask = ShiftWindowMSA.get_attn_mask((height, width), window, shift,
                                        device) if shift else None
    return to_windows, from_windows, mask


class WindowAttention(ShiftWindowMSA):
    """mmpretrain's :class:`ShiftWindowMSA` with a fast path.

    Same constructor, parameters (``w_msa.qkv``, ``w_msa.proj``,
    ``w_msa.relative_position_bias_table``) and state dict as
    ``ShiftWindowMSA`` with its default ``WindowMSA``; with the fast paths
    off (:mod:`~hifuse_mm.models.fast_paths`) ``forward`` is
    ``ShiftWindowMSA.forward``. The fast path computes the same function:

    * the cyclic shift, padding-free window partition and its reverse are
      one cached token gather each way (instead of ``torch.roll`` + a
      permuted copy, twice), and the 0 / -100 shift mask is cached per map
      size instead of rebuilt on every call;
    * without autograd (inference), the attention is one
      :func:`torch.nn.functional.scaled_dot_product_attention` call with
      ``scale = head_dim ** -0.5`` and the additive float mask
      ``relative_position_bias + shift_mask``; with autograd it is
      ``WindowMSA``'s own matmul / softmax sequence (this CPU build's fused
      backward is slower, and a trainable mask is not fused anyway).
    """

    def _shift_for(self, height: int, width: int) -> int:
        """The shift ``ShiftWindowMSA.forward`` uses for this map size."""
        if min(height, width) == self.window_size:
            return self.shift_size if self.pad_small_map else 0
        if min(height, width) < self.window_size:
            assert self.pad_small_map, (
                f'The input shape ({height}, {width}) is smaller than the '
                f'window size ({self.window_size}). Please set '
                '`pad_small_map=True`, or decrease the `window_size`.')
        return self.shift_size

    def forward(self, query: torch.Tensor,
                hw_shape: Sequence[int]) -> torch.Tensor:
        if not fast_paths.enabled():
            return super().forward(query, hw_shape)
        batch, length, channels = query.shape
        height, width = hw_shape
        assert length == height * width, (
            f"The query length {length} doesn't match the input shape "
            f'({height}, {width}).')
        window = self.window_size
        shift = self._shift_for(height, width)
        pad_r = (window - width % window) % window
        pad_b = (window - height % window) % window
        if pad_r or pad_b:
            query = F.pad(
                query.view(batch, height, width, channels),
                (0, 0, 0, pad_r, 0, pad_b))
        padded_h, padded_w = height + pad_b, width + pad_r
        # Under torch.compile, trace the plan (constant-folded) rather than
        # have dynamo step around the lru_cache wrapper (it warns).
        plan = (_window_plan.__wrapped__
                if torch.compiler.is_compiling() else _window_plan)
        to_windows, from_windows, mask = plan(padded_h, padded_w, window,
                                              shift, query.device)

        tokens = query.reshape(batch, padded_h * padded_w, channels)
        windows = tokens.index_select(1, to_windows).view(
            -1, window * window, channels)
        out = self.attend(windows, mask)
        out = out.view(batch, padded_h * padded_w, channels)
        if pad_r or pad_b:
            # Keep only the real tokens: gather their window slots.
            keep = from_windows.view(padded_h, padded_w)[:height, :width]
            out = out.index_select(1, keep.reshape(-1))
        else:
            out = out.index_select(1, from_windows)
        return self.drop(out)

    def attend(self, x: torch.Tensor,
               mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``WindowMSA.forward(x, mask)`` on ``[nW * B, N, C]`` windows."""
        msa = self.w_msa
        windows, tokens, channels = x.shape
        heads = msa.num_heads
        qkv = msa.qkv(x).reshape(windows, tokens, 3, heads,
                                  channels // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        bias = msa.relative_position_bias_table[
            msa.relative_position_index.view(-1)].view(
                tokens, tokens, -1).permute(2, 0, 1)  # heads, N, N
        dropout = msa.attn_drop.p if self.training else 0.
        if dropout or fast_paths.needs_grad(x, msa.qkv.weight, bias):
            out = self._attend_plain(q, k, v, bias, mask)
        else:
            if mask is None:
                attn_mask = bias.unsqueeze(0).to(q.dtype)
            else:
                # Per window, then repeated over the batch (the window
                # index runs fastest in the B * nW dimension).
                attn_mask = (mask.unsqueeze(1) + bias.unsqueeze(0)).to(q.dtype)
                attn_mask = attn_mask.unsqueeze(0).expand(
                    windows // mask.shape[0], -1, -1, -1, -1).reshape(
                        windows, heads, tokens, tokens)
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, scale=msa.scale)
        out = out.transpose(1, 2).reshape(windows, tokens, channels)
        return msa.proj_drop(msa.proj(out))

    def _attend_plain(self, q: torch.Tensor, k: torch.Tensor,
                      v: torch.Tensor, bias: torch.Tensor,
                      mask: Optional[torch.Tensor]) -> torch.Tensor:
        """``WindowMSA``'s attention, op for op; ``[B_, heads, N, d]``.

        (Bit for bit in fp32; under autocast the bias and the mask are added
        in the compute dtype instead of promoting the logits to fp32.)
        """
        msa = self.w_msa
        # Bias and mask in the compute dtype: under autocast a bf16 + fp32
        # broadcast add runs an unvectorised loop (~5x slower).
        attn = (q * msa.scale) @ k.transpose(-2, -1)
        attn = attn + bias.to(attn.dtype).unsqueeze(0)
        if mask is not None:
            windows, heads, tokens, _ = attn.shape
            num_windows = mask.shape[0]
            attn = attn.view(windows // num_windows, num_windows, heads,
                             tokens, tokens) + mask.to(
                                 attn.dtype).unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, heads, tokens, tokens)
        return msa.attn_drop(msa.softmax(attn)) @ v
