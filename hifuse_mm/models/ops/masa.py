"""Manhattan self-attention (HEMF's EGF) through fused attention, and its CPU variant.

Two implementations of :class:`~hifuse_mm.models.layers.ManhattanSelfAttention`, both
computing its function with the same parameters:

* ``sdpa``: ``q`` and ``k`` are rotated in the projections' dtype and the decay masks
  cast to it (under autocast the reference promotes to fp32); each softmax attention
  (the row and the column pass, or the full 2-D one) is one batched
  :func:`torch.nn.functional.scaled_dot_product_attention` call with the log-decay mask
  as the additive float mask and ``scale=1`` (``k`` already carries ``head_dim^-0.5``),
  with or without autograd, on every map size.
* ``cpu_tuned``: fused attention only where the CPU kernel pays off, on maps of at
  least :data:`FUSED_MIN_TOKENS` tokens (stage 1 at 224 px) and, with autograd, only in
  fp32; there, without autograd, the decomposed form runs image by image
  (:func:`_decomposed_inference`). Elsewhere the reference's matmuls run, with the
  masks in the compute dtype, and CPU bf16 softmax rows of 16-63 values whose length is
  not a multiple of 32 are computed in fp32 (:func:`bf16_softmax`).
"""
import torch
import torch.nn.functional as F

from ..layers.manhattan_attention import ManhattanSelfAttention
from ..layers.manhattan_rel_pos import RelPos2d, rotate_pairs
from .drop_in import DropIn
from .weight_cache import autocast_param

#: ``cpu_tuned``: fused attention on maps with at least this many tokens.
FUSED_MIN_TOKENS = 48 * 48


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


class _Bf16Softmax(torch.autograd.Function):
    """Softmax over the last dimension of a CPU bf16 tensor, computed in fp32
    one leading index at a time (the fp32 temporaries stay small).

    The backward is the bf16 softmax backward on the bf16 output, as
    autograd's own bf16 softmax keeps; only the forward changes.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)
        for i in range(x.shape[0]):
            out[i] = torch.softmax(x[i].float(), dim=-1)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out, = ctx.saved_tensors
        return torch._softmax_backward_data(grad, out, -1, out.dtype)


def bf16_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``torch.softmax(x, dim=-1)``; CPU bf16 rows of 16 or more values, not a
    multiple of 32 (the vector width), are computed in fp32 (:class:`_Bf16Softmax`).

    The CPU bf16 softmax kernel is slower than fp32 on such rows (HEMF's MaSA
    rows are 56, 28, 14 and 7 long; on the shorter rows the bf16 kernel is the
    faster). The result is the bf16 rounding of the fp32 softmax. Casting the
    whole tensor to fp32 at once page-faults on the fresh fp32 temporaries,
    hence one leading index at a time.
    """
    assert dim == -1
    if (x.dtype == torch.bfloat16 and x.device.type == 'cpu'
            and x.shape[-1] >= 16 and x.shape[-1] % 32 and x.dim() > 1):
        return _Bf16Softmax.apply(x)
    return torch.softmax(x, dim=-1)


def _softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                       mask: torch.Tensor,
                       workspace: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T + mask) v`` of ``[N, L, d]`` operands, with the
    softmax in fp32 in ``workspace`` (at least ``N L^2`` values)."""
    scores = torch.baddbmm(mask, q, k.transpose(1, 2))
    probs = workspace[:scores.numel()].view(scores.shape)
    probs.copy_(scores)
    return torch.bmm(torch.softmax(probs, dim=-1).to(q.dtype), v)


def _projection_with_rotations(attn: ManhattanSelfAttention):
    """Weight and bias of ``[q, rot(q), k, rot(k), v]`` (``5C x C``).

    ``rot`` (``(a, b) -> (-b, a)`` per channel pair) is a signed permutation
    of the output channels, so the rotated projections are the projections
    with their rows permuted and negated: exact, and one matmul gives
    everything the rotary embedding needs.
    """
    weights, biases = [], []
    for proj in (attn.q_proj, attn.k_proj):
        weight = autocast_param(proj, 'weight')
        bias = autocast_param(proj, 'bias')
        weights += [weight, rotate_pairs(weight.t()).t()]
        biases += [bias, rotate_pairs(bias)]
    weights.append(autocast_param(attn.v_proj, 'weight'))
    biases.append(autocast_param(attn.v_proj, 'bias'))
    return torch.cat(weights), torch.cat(biases)


def _decomposed_inference(attn: ManhattanSelfAttention, x: torch.Tensor,
                          rel_pos: RelPos2d) -> torch.Tensor:
    """Decomposed MaSA on a large map without autograd, image by image.

    The projections of ``q``, ``rot(q)``, ``k``, ``rot(k)`` and ``v`` are one
    matmul (:func:`_projection_with_rotations`), so the rotary embedding is
    one multiply and one multiply-add per operand. Then the row pass, the
    column pass (values: the rows' output) and LePE, each a strided view of
    the image's ``[H, W, heads, d]`` layout, so nothing is transposed; the
    fused kernel writes in that layout and the sum with LePE writes the
    result. The masks get a leading batch dimension (the CPU fused kernel
    takes only 4-D masks; a 3-D one falls back to the unfused path). One
    image at a time keeps each step's operands in the CPU caches and
    allocates little. ``v`` is made contiguous because the fused kernel is
    slower on the strided one.

    Under CPU bf16 the two passes are instead batched bf16 matmuls
    (:func:`_softmax_attention`: ``baddbmm`` with the mask, the softmax in
    fp32 in one reused buffer, ``bmm``): the fused bf16 kernel spends most of
    its time in per-block matmul calls on the 12-wide heads. The scores are
    rounded to bf16 before the softmax, as the reference under autocast does.
    """
    b, h, w, c = x.shape
    n, d = attn.num_heads, attn.head_dim
    weight, bias = _projection_with_rotations(attn)
    dtype = torch.promote_types(x.dtype, weight.dtype) if not (
        torch.is_autocast_enabled(x.device.type)) else (
            torch.get_autocast_dtype(x.device.type))
    cos = rel_pos.cos.to(dtype).unsqueeze(-2)  # [H, W, 1, d]
    sin = rel_pos.sin.to(dtype).unsqueeze(-2)
    mask_w = rel_pos.masks[1].to(dtype)[None]
    mask_h = rel_pos.masks[0].to(dtype)[None]
    out = torch.empty(b, h, w, c, device=x.device, dtype=dtype)
    # CPU bf16: batched matmuls, the softmax in fp32 (see the docstring).
    unfused = dtype == torch.bfloat16 and x.device.type == 'cpu'
    if unfused:
        # Per-head masks repeated over the rows / columns of an image, and
        # one fp32 buffer for the softmax of either pass.
        mask_w = mask_w.expand(h, n, w, w).reshape(h * n, w, w)
        mask_h = mask_h.expand(w, n, h, h).reshape(w * n, h, h)
        scores = torch.empty(
            n * h * w * max(h, w), device=x.device, dtype=torch.float32)
    for i in range(b):
        proj = F.linear(x[i], weight, bias)  # [H, W, 5C]
        proj[..., 2 * c:4 * c].mul_(attn.scale)  # k * scale, rot(k) * scale
        q, q_rot, k, k_rot, v = (
            proj[..., j * c:(j + 1) * c].view(h, w, n, d) for j in range(5))
        v = v.contiguous()
        q = torch.mul(q, cos).addcmul_(q_rot, sin)
        k = torch.mul(k, cos).addcmul_(k_rot, sin)
        if unfused:
            # Rows: batch (H, heads), W tokens; then columns: batch
            # (W, heads), H tokens, values = the rows' output.
            rows = _softmax_attention(
                *(t.transpose(1, 2).reshape(h * n, w, d) for t in (q, k, v)),
                mask_w, scores)
            cols = _softmax_attention(
                *(t.permute(1, 2, 0, 3).reshape(w * n, h, d) for t in (q, k)),
                rows.view(h, n, w, d).permute(2, 1, 0, 3).reshape(w * n, h, d),
                mask_h, scores)
            cols = cols.view(w, n, h, d).permute(2, 0, 1, 3)
        else:
            # Rows: batch H, heads, W tokens.
            rows = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                attn_mask=mask_w, scale=1.)
            # Columns: batch W, heads, H tokens; values = the rows' output.
            cols = F.scaled_dot_product_attention(
                q.permute(1, 2, 0, 3), k.permute(1, 2, 0, 3),
                rows.permute(2, 1, 0, 3), attn_mask=mask_h,
                scale=1.).permute(2, 0, 1, 3)
        lepe = attn.lepe(v.reshape(1, h, w, c).permute(0, 3, 1, 2))
        torch.add(cols, lepe[0].permute(1, 2, 0).view(h, w, n, d),
                  out=out[i].view(h, w, n, d))
    return attn.out_proj(out)


def masa_cpu_tuned(attn: ManhattanSelfAttention, x: torch.Tensor,
                   rel_pos: RelPos2d) -> torch.Tensor:
    """``cpu_tuned`` (see the module docstring)."""
    b, h, w, c = x.shape
    large = h * w >= FUSED_MIN_TOKENS
    grad = torch.is_grad_enabled() and (
        x.requires_grad or attn.q_proj.weight.requires_grad
        or attn.v_proj.weight.requires_grad)
    if attn.decomposed and large and not grad:
        return _decomposed_inference(attn, x, rel_pos)
    v = attn.v_proj(x)
    lepe = attn.lepe(v.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    fused = large and (not grad or v.dtype == torch.float32)
    q, k = rotated_qk(attn, x, rel_pos)
    v = v.view(b, h, w, attn.num_heads, attn.head_dim)
    if fused:
        out = (decomposed_sdpa if attn.decomposed else full_sdpa)(
            q, k, v, *rel_pos.masks)
        return attn.out_proj(out.reshape(b, h, w, c) + lepe)
    # The reference's [B, heads, H, W, d] views (no copies), masks in the
    # compute dtype (under autocast a bf16 + fp32 broadcast add runs an
    # unvectorised loop on the CPU).
    q, k, v = (t.permute(0, 3, 1, 2, 4) for t in (q, k, v))
    masks = [m.to(q.dtype) for m in rel_pos.masks]
    attend = attn._decomposed if attn.decomposed else attn._full
    out = attend(q, k, v, *masks, softmax=bf16_softmax)
    return attn.out_proj(out.reshape(b, h, w, c) + lepe.to(out.dtype))


class OptimisedManhattanSelfAttention(DropIn, ManhattanSelfAttention):
    """Drop-in for :class:`~hifuse_mm.models.layers.ManhattanSelfAttention`
    (op ``masa``)."""

    reference = ManhattanSelfAttention
    op = 'masa'
    implementations = {'sdpa': masa_sdpa, 'cpu_tuned': masa_cpu_tuned}
