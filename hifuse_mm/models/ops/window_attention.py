"""HiFuse's (shifted) window attention through fused attention (SDPA)."""
from functools import lru_cache
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmpretrain.models.utils import ShiftWindowMSA

from .drop_in import DropIn


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


def _shift_for(attn: ShiftWindowMSA, height: int, width: int) -> int:
    """The shift ``ShiftWindowMSA.forward`` uses for this map size."""
    if min(height, width) == attn.window_size:
        return attn.shift_size if attn.pad_small_map else 0
    if min(height, width) < attn.window_size:
        assert attn.pad_small_map, (
            f'The input shape ({height}, {width}) is smaller than the '
            f'window size ({attn.window_size}). Please set '
            '`pad_small_map=True`, or decrease the `window_size`.')
    return attn.shift_size


def _attend(attn: ShiftWindowMSA, x: torch.Tensor, mask: Optional[torch.Tensor],
            fused: bool) -> torch.Tensor:
    """``WindowMSA.forward(x, mask)`` on ``[nW * B, N, C]`` windows.

    ``fused``: one :func:`torch.nn.functional.scaled_dot_product_attention`
    call with ``scale = head_dim ** -0.5`` and the additive float mask
    ``relative_position_bias + shift_mask``; otherwise ``WindowMSA``'s
    matmul / softmax sequence, op for op (bit for bit in fp32; under autocast
    the bias and the mask are added in the compute dtype instead of promoting
    the logits to fp32).
    """
    msa = attn.w_msa
    windows, tokens, channels = x.shape
    heads = msa.num_heads
    qkv = msa.qkv(x).reshape(windows, tokens, 3, heads,
                              channels // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    bias = msa.relative_position_bias_table[
        msa.relative_position_index.view(-1)].view(
            tokens, tokens, -1).permute(2, 0, 1)  # heads, N, N
    if fused:
        if mask is None:
            attn_mask = bias.unsqueeze(0).to(q.dtype)
        else:
            # Per window, then repeated over the batch (the window index runs
            # fastest in the B * nW dimension).
            attn_mask = (mask.unsqueeze(1) + bias.unsqueeze(0)).to(q.dtype)
            attn_mask = attn_mask.unsqueeze(0).expand(
                windows // mask.shape[0], -1, -1, -1, -1).reshape(
                    windows, heads, tokens, tokens)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask,
            dropout_p=msa.attn_drop.p if attn.training else 0.,
            scale=msa.scale)
    else:
        logits = (q * msa.scale) @ k.transpose(-2, -1)
        logits = logits + bias.to(logits.dtype).unsqueeze(0)
        if mask is not None:
            num_windows = mask.shape[0]
            logits = logits.view(windows // num_windows, num_windows, heads,
                                 tokens, tokens) + mask.to(
                                     logits.dtype).unsqueeze(1).unsqueeze(0)
            logits = logits.view(-1, heads, tokens, tokens)
        out = msa.attn_drop(msa.softmax(logits)) @ v
    out = out.transpose(1, 2).reshape(windows, tokens, channels)
    return msa.proj_drop(msa.proj(out))


def _window_attention(attn: ShiftWindowMSA, query: torch.Tensor,
                      hw_shape: Sequence[int], fused: bool) -> torch.Tensor:
    """``ShiftWindowMSA.forward`` with the cyclic shift, the padding-free window
    partition and its reverse as one cached token gather each way (instead of
    ``torch.roll`` and a permuted copy, twice) and the shift mask cached per
    map size instead of rebuilt on every call."""
    batch, length, channels = query.shape
    height, width = hw_shape
    assert length == height * width, (
        f"The query length {length} doesn't match the input shape "
        f'({height}, {width}).')
    window = attn.window_size
    shift = _shift_for(attn, height, width)
    pad_r = (window - width % window) % window
    pad_b = (window - height % window) % window
    if pad_r or pad_b:
        query = F.pad(
            query.view(batch, height, width, channels),
            (0, 0, 0, pad_r, 0, pad_b))
    padded_h, padded_w = height + pad_b, width + pad_r
    # Under torch.compile, trace the plan (constant-folded) rather than have
    # dynamo step around the lru_cache wrapper.
    plan = (_window_plan.__wrapped__
            if torch.compiler.is_compiling() else _window_plan)
    to_windows, from_windows, mask = plan(padded_h, padded_w, window, shift,
                                          query.device)
    tokens = query.reshape(batch, padded_h * padded_w, channels)
    windows = tokens.index_select(1, to_windows).view(
        -1, window * window, channels)
    out = _attend(attn, windows, mask, fused)
    out = out.view(batch, padded_h * padded_w, channels)
    if pad_r or pad_b:
        # Keep only the real tokens: gather their window slots.
        keep = from_windows.view(padded_h, padded_w)[:height, :width]
        out = out.index_select(1, keep.reshape(-1))
    else:
        out = out.index_select(1, from_windows)
    return attn.drop(out)


def window_attention_sdpa(attn: ShiftWindowMSA, query: torch.Tensor,
                          hw_shape: Sequence[int]) -> torch.Tensor:
    """Fused attention, with and without autograd (``sdpa``)."""
    return _window_attention(attn, query, hw_shape, fused=True)


def window_attention_sdpa_inference(attn: ShiftWindowMSA, query: torch.Tensor,
                                    hw_shape: Sequence[int]) -> torch.Tensor:
    """Fused attention without autograd only (``sdpa_inference``): with it, the
    matmul / softmax sequence (the CPU's fused backward is the slower, and a
    trainable mask, the relative-position bias, is not fused anyway)."""
    msa = attn.w_msa
    grad = torch.is_grad_enabled() and (
        query.requires_grad or msa.qkv.weight.requires_grad
        or msa.relative_position_bias_table.requires_grad)
    dropout = attn.training and msa.attn_drop.p > 0
    return _window_attention(attn, query, hw_shape,
                             fused=not (grad or dropout))


class OptimisedWindowAttention(DropIn, ShiftWindowMSA):
    """Drop-in for mmpretrain's ``ShiftWindowMSA`` (op ``window_attention``)."""

    reference = ShiftWindowMSA
    op = 'window_attention'
    implementations = {
        'sdpa': window_attention_sdpa,
        'sdpa_inference': window_attention_sdpa_inference,
    }
