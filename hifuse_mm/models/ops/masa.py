"""Manhattan self-attention (HEMF's EGF) through fused attention.

Two implementations of :class:`~hifuse_mm.models.layers.ManhattanSelfAttention`, both
computing its function with the same parameters:

* ``sdpa``: ``q`` and ``k`` are rotated in the projections' dtype and the decay masks
  cast to it (under autocast the reference promotes to fp32); each softmax attention
  (the row and the column pass, or the full 2-D one) is one batched
  :func:`torch.nn.functional.scaled_dot_product_attention` call with the log-decay mask
  as the additive float mask and ``scale=1`` (``k`` already carries ``head_dim^-0.5``),
  with or without autograd, on every map size.
* ``matmul_low_precision_training`` (CPU): ``sdpa``, except with autograd in low
  precision (bf16 / fp16 autocast), where the CPU fused kernel's backward is the slower:
  there the reference's matmuls, with the masks in the compute dtype.
"""
import torch
import torch.nn.functional as F

from ..layers.manhattan_attention import ManhattanSelfAttention
from ..layers.manhattan_rel_pos import RelPos2d, rotate_pairs
from .drop_in import DropIn

def rotated_qk(attn: ManhattanSelfAttention, x: torch.Tensor,
               rel_pos: RelPos2d):
    """Rotated ``q`` and ``k * scale``, ``[B, H, W, heads, d]`` each, rotated
    in the projections' dtype."""
    b, h, w, c = x.shape
    q = attn.q_proj(x).view(b, h, w, attn.num_heads, attn.head_dim)
    k = (attn.k_proj(x) * attn.scale).view(q.shape)
    cos = rel_pos.cos.to(q.dtype).unsqueeze(-2)
    sin = rel_pos.sin.to(q.dtype).unsqueeze(-2)
    return (torch.addcmul(q * cos, rotate_pairs(q), sin),
            torch.addcmul(k * cos, rotate_pairs(k), sin))


def decomposed_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    mask_h: torch.Tensor, mask_w: torch.Tensor) -> torch.Tensor:
    """The row then the column pass as two batched fused calls.

    ``q``, ``k``, ``v``: ``[B, H, W, heads, d]``; returns the same layout.
    """
    b, h, w, n, d = q.shape
    # Rows: [B * H, heads, W, d].
    rows = F.scaled_dot_product_attention(
        *(t.transpose(2, 3).reshape(b * h, n, w, d) for t in (q, k, v)),
        attn_mask=mask_w.to(q.dtype)[None], scale=1.).view(b, h, n, w, d)
    # Columns: [B * W, heads, H, d]; values: the rows' output.
    q_c, k_c = (t.permute(0, 2, 3, 1, 4).reshape(b * w, n, h, d)
                for t in (q, k))
    v_c = rows.permute(0, 3, 2, 1, 4).reshape(b * w, n, h, d)
    out = F.scaled_dot_product_attention(
        q_c, k_c, v_c, attn_mask=mask_h.to(q.dtype)[None], scale=1.)
    return out.view(b, w, n, h, d).permute(0, 3, 1, 2, 4)


def full_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              mask: torch.Tensor) -> torch.Tensor:
    """Attention over all ``HW`` tokens in one fused call; ``[B, H, W, heads, d]``
    in and out."""
    b, h, w, n, d = q.shape
    q, k, v = (t.reshape(b, h * w, n, d).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask.to(q.dtype)[None], scale=1.)
    return out.transpose(1, 2).reshape(b, h, w, n, d)


def masa_sdpa(attn: ManhattanSelfAttention, x: torch.Tensor,
              rel_pos: RelPos2d) -> torch.Tensor:
    """``sdpa``: batched fused attention everywhere (see the module docstring)."""
    b, h, w, c = x.shape
    v = attn.v_proj(x)
    lepe = attn.lepe(v.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    q, k = rotated_qk(attn, x, rel_pos)
    v = v.view(b, h, w, attn.num_heads, attn.head_dim)
    fused = decomposed_sdpa if attn.decomposed else full_sdpa
    out = fused(q, k, v, *rel_pos.masks)
    return attn.out_proj(out.reshape(b, h, w, c) + lepe)


def masa_matmul_low_precision_training(
        attn: ManhattanSelfAttention, x: torch.Tensor,
        rel_pos: RelPos2d) -> torch.Tensor:
    """``matmul_low_precision_training`` (see the module docstring)."""
    grad = torch.is_grad_enabled() and (
        x.requires_grad or attn.q_proj.weight.requires_grad
        or attn.v_proj.weight.requires_grad)
    if not grad or (x.dtype == torch.float32
                    and not torch.is_autocast_enabled(x.device.type)):
        return masa_sdpa(attn, x, rel_pos)
    b, h, w, c = x.shape
    v = attn.v_proj(x)
    lepe = attn.lepe(v.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    q, k = rotated_qk(attn, x, rel_pos)
    # The reference's [B, heads, H, W, d] views, masks in the compute dtype
    # (a bf16 + fp32 broadcast add runs an unvectorised loop on the CPU).
    q, k, v = (t.permute(0, 3, 1, 2, 4) for t in (
        q, k, v.view(b, h, w, attn.num_heads, attn.head_dim)))
    masks = [m.to(q.dtype) for m in rel_pos.masks]
    attend = attn._decomposed if attn.decomposed else attn._full
    out = attend(q, k, v, *masks)
    return attn.out_proj(out.reshape(b, h, w, c) + lepe.to(out.dtype))


class OptimisedManhattanSelfAttention(DropIn, ManhattanSelfAttention):
    """Drop-in for :class:`~hifuse_mm.models.layers.ManhattanSelfAttention`
    (op ``masa``)."""

    reference = ManhattanSelfAttention
    op = 'masa'
    implementations = {
        'sdpa': masa_sdpa,
        'matmul_low_precision_training': masa_matmul_low_precision_training,
    }
