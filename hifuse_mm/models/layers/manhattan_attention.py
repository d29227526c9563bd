"""Manhattan self-attention (MaSA, RMT), decomposed or full: HEMF's EGF."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import fast_paths
from .autocast_weights import Linear
from .depthwise_conv import DepthwiseConv2d
from .manhattan_rel_pos import RelPos2d, apply_rotary, rotate_pairs


#: Fast path: fused attention on maps with at least this many tokens.
FUSED_MIN_TOKENS = 48 * 48


def softmax_last_dim(x: torch.Tensor) -> torch.Tensor:
    """The plain path's softmax over the last dimension."""
    return torch.softmax(x, dim=-1)


class _Bf16Softmax(torch.autograd.Function):
    """Softmax over the last dimension of a CPU bf16 tensor, computed in
    fp32 one leading index at a time (the fp32 temporaries stay small).

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


def fast_softmax_last_dim(x: torch.Tensor) -> torch.Tensor:
    """:func:`softmax_last_dim`; CPU bf16 rows of 16 or more values, not a
    multiple of 32, are computed in fp32 (:class:`_Bf16Softmax`).

    This stack's CPU bf16 softmax is 1.5-4x slower than fp32 on rows of
    16-56 values unless the length is a multiple of 32 (the vector width;
    HEMF's MaSA rows are 56, 28, 14 and 7 long; on the shorter rows the
    bf16 kernel is the faster). The result is the bf16
    rounding of the fp32 softmax. Casting the whole tensor to fp32 at once
    is slower than the bf16 kernel in training: the fresh fp32 temporaries
    (45 MB each at stage 1) page-fault, hence one leading index at a time.
    """
    if (x.dtype == torch.bfloat16 and x.device.type == 'cpu'
            and x.shape[-1] >= 16 and x.shape[-1] % 32 and x.dim() > 1):
        return _Bf16Softmax.apply(x)
    return softmax_last_dim(x)


def _softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                       mask: torch.Tensor,
                       workspace: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T + mask) v`` of ``[N, L, d]`` operands, with the
    softmax in fp32 in ``workspace`` (at least ``N L^2`` values)."""
    scores = torch.baddbmm(mask, q, k.transpose(1, 2))
    probs = workspace[:scores.numel()].view(scores.shape)
    probs.copy_(scores)
    return torch.bmm(torch.softmax(probs, dim=-1).to(q.dtype), v)


class ManhattanSelfAttention(nn.Module):
    """MaSA on a channels-last map ``[B, H, W, C]`` (HEMF eqs. 3-4; RMT).

    ``q, k, v`` are biased linear maps of ``x``; ``k`` is scaled by
    ``head_dim^-0.5`` (``q`` is not). ``q`` and ``k`` are split into heads
    and rotated with the rotary terms of :class:`ManhattanRelPos2d`. The
    attention is ``Softmax(q k^T + log-decay mask) v``: adding
    ``log(gamma) * distance`` to the logits is eq. 3's
    ``gamma^distance`` weighting, renormalised by the softmax. A 5x5
    depthwise conv of ``v`` (LePE) is added to the attention output before
    the output projection.

    * ``decomposed=True`` (HEMF's released ``VisionRetentionChunk``, every
      stage): a softmax along each row (1-D decay over ``W``), then one
      along each column (1-D decay over ``H``) applied to the row result:
      ``O(HW (H + W))``.
    * ``decomposed=False`` (RMT's ``VisionRetentionAll``, which RMT uses in
      its last stage or two): one softmax over all ``HW`` tokens with the
      2-D Manhattan decay: ``O((HW)^2)``.

    Both have the same parameters, ``4 C^2 + 29 C``. The attention products
    are plain ``torch.matmul`` calls (counted as attention FLOPs by
    :mod:`hifuse_mm.analysis.complexity`).

    Fast path (:mod:`~hifuse_mm.models.fast_paths`), same function:

    * ``q`` and ``k`` are rotated in the compute dtype and the decay masks
      are cast to it (under autocast the plain path promotes to fp32 and
      runs mixed-dtype broadcasts, which are several times slower on the
      CPU);
    * without autograd (inference) and on maps of at least
      :data:`FUSED_MIN_TOKENS` tokens (stage 1 at 224 px), each softmax
      attention is one
      :func:`torch.nn.functional.scaled_dot_product_attention` call with the
      log-decay mask as the additive float mask and ``scale=1`` (``k``
      already carries ``head_dim^-0.5``); the decomposed form runs image by
      image, with ``q``, ``rot(q)``, ``k``, ``rot(k)`` and ``v`` from one
      matmul (:meth:`_decomposed_inference`; HEMF stage 1, batch 8: 62 ms
      instead of 71 per MaSA, fp32 and bf16). With autograd on such maps
      (fp32 training) the two passes are batched fused calls. Elsewhere
      the plain matmuls run: on this CPU build the fused kernel is slower
      on smaller maps (head dimension 24-96, 7-28 tokens per row) and its
      backward is slower in bf16.

    Args:
        embed_dims: Channels ``C``.
        num_heads: Heads (HEMF: 8 in every stage).
        decomposed: Row-then-column attention (released) or full 2-D.
        lepe_kernel: Kernel of the LePE depthwise conv (5).
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 decomposed: bool = True,
                 lepe_kernel: int = 5) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'{embed_dims} channels do not split into '
                             f'{num_heads} heads')
        self.num_heads = num_heads
        self.head_dim = embed_dims // num_heads
        self.scale = self.head_dim**-0.5
        self.decomposed = decomposed
        self.q_proj = Linear(embed_dims, embed_dims)
        self.k_proj = Linear(embed_dims, embed_dims)
        self.v_proj = Linear(embed_dims, embed_dims)
        # nn.Conv2d(C, C, k, padding=k // 2, groups=C), same parameters.
        self.lepe = DepthwiseConv2d(embed_dims, lepe_kernel)
        self.out_proj = Linear(embed_dims, embed_dims)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, W, C] -> [B, heads, H, W, head_dim]``."""
        b, h, w, _ = x.shape
        return x.reshape(b, h, w, self.num_heads,
                         self.head_dim).permute(0, 3, 1, 2, 4)

    def forward(self, x: torch.Tensor, rel_pos: RelPos2d) -> torch.Tensor:
        if fast_paths.enabled():
            return self._forward_fast(x, rel_pos)
        b, h, w, c = x.shape
        v = self.v_proj(x)
        lepe = self.lepe(v.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        q = apply_rotary(self._heads(self.q_proj(x)), rel_pos)
        k = apply_rotary(self._heads(self.k_proj(x) * self.scale), rel_pos)
        v = self._heads(v)
        if self.decomposed:
            out = self._decomposed(q, k, v, *rel_pos.masks)
        else:
            out = self._full(q, k, v, *rel_pos.masks)
        return self.out_proj(out.reshape(b, h, w, c) + lepe)

    def _rotated_qk(self, x: torch.Tensor, rel_pos: RelPos2d):
        """Rotated ``q`` and ``k * scale``, ``[B, H, W, heads, d]`` each.

        As the plain path, but the rotation runs in the projections' dtype:
        under autocast the plain path's fp32 rotary terms promote ``q`` and
        ``k`` to fp32.
        """
        b, h, w, c = x.shape
        q = self.q_proj(x).view(b, h, w, self.num_heads, self.head_dim)
        k = (self.k_proj(x) * self.scale).view(q.shape)
        cos = rel_pos.cos.to(q.dtype).unsqueeze(-2)
        sin = rel_pos.sin.to(q.dtype).unsqueeze(-2)
        return (torch.addcmul(q * cos, rotate_pairs(q), sin),
                torch.addcmul(k * cos, rotate_pairs(k), sin))

    def _forward_fast(self, x: torch.Tensor,
                      rel_pos: RelPos2d) -> torch.Tensor:
        b, h, w, c = x.shape
        if (self.decomposed and h * w >= FUSED_MIN_TOKENS
                and not fast_paths.needs_grad(x, self.q_proj.weight)):
            return self._decomposed_inference(x, rel_pos)
        v = self.v_proj(x)
        lepe = self.lepe(v.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        # The fused kernel only pays off on large maps (stage 1 at 224 px):
        # on this CPU build it is slower than the batched matmuls below
        # 48x48 tokens, and its backward is slower too.
        grad = fast_paths.needs_grad(x, v, self.q_proj.weight)
        fused = h * w >= FUSED_MIN_TOKENS and (not grad
                                               or v.dtype == torch.float32)
        q, k = self._rotated_qk(x, rel_pos)
        v = v.view(b, h, w, self.num_heads, self.head_dim)
        if self.decomposed and fused:
            out = self._decomposed_sdpa(q, k, v, *rel_pos.masks)
            return self.out_proj(out.reshape(b, h, w, c) + lepe)
        # To the plain path's [B, heads, H, W, d] views (no copies), masks in
        # the compute dtype (under autocast a bf16 + fp32 broadcast add
        # runs an unvectorised loop, ~5x slower).
        q, k, v = (t.permute(0, 3, 1, 2, 4) for t in (q, k, v))
        masks = [m.to(q.dtype) for m in rel_pos.masks]
        if self.decomposed:
            out = self._decomposed(
                q, k, v, *masks, softmax=fast_softmax_last_dim)
        elif fused:
            out = self._full_fused(q, k, v, *masks)
        else:
            out = self._full(q, k, v, *masks, softmax=fast_softmax_last_dim)
        return self.out_proj(out.reshape(b, h, w, c) + lepe.to(out.dtype))

    def _projection_with_rotations(self):
        """Weight and bias of ``[q, rot(q), k, rot(k), v]`` (``5C x C``).

        ``rot`` (:func:`rotate_pairs`: ``(a, b) -> (-b, a)`` per channel
        pair) is a signed permutation of the output channels, so the rotated
        projections are the projections with their rows permuted and
        negated: exact, and one matmul gives everything the rotary
        embedding needs.
        """
        projs = (self.q_proj, self.k_proj)
        weights, biases = [], []
        for proj in projs:
            weight = proj.autocast_param('weight')
            bias = proj.autocast_param('bias')
            weights += [weight, rotate_pairs(weight.t()).t()]
            biases += [bias, rotate_pairs(bias)]
        weights.append(self.v_proj.autocast_param('weight'))
        biases.append(self.v_proj.autocast_param('bias'))
        return torch.cat(weights), torch.cat(biases)

    def _decomposed_inference(self, x: torch.Tensor,
                              rel_pos: RelPos2d) -> torch.Tensor:
        """Decomposed MaSA on a large map without autograd, image by image.

        The projections of ``q``, ``rot(q)``, ``k``, ``rot(k)`` and ``v``
        are one matmul (:meth:`_projection_with_rotations`), so the rotary
        embedding is one multiply and one multiply-add per operand (no
        pair shuffling). Then the row pass, the column pass (values: the
        rows' output) and LePE, each a strided view of the image's ``[H,
        W, heads, d]`` layout, so nothing is transposed; the fused kernel
        writes in that layout and the sum with LePE writes the result. The
        masks get a leading batch dimension: this CPU build's fused kernel
        takes only 4-D masks (a 3-D one falls back to the unfused path).
        One image at a time keeps each step's operands in the CPU caches
        (an image's ``[H, W, 5C]`` projections are 3 MB in bf16 at stage 1)
        and allocates little: HEMF's bf16 inference batch takes ~4x fewer
        page faults than with whole-batch temporaries. ``v`` is made
        contiguous (0.6 MB) because the fused kernel is slower on the
        strided one.

        Under CPU bf16 the two passes are instead batched bf16 matmuls
        (:func:`_softmax_attention`: ``baddbmm`` with the mask, the softmax
        in fp32 in one reused buffer, ``bmm``): this stack's fused bf16
        kernel spends most of its time in per-block matmul calls on the
        12-wide heads (HEMF stage 1, batch 8: 22 ms per pass against 13).
        The scores are rounded to bf16 before the softmax, as the plain
        path under autocast does.
        """
        b, h, w, c = x.shape
        n, d = self.num_heads, self.head_dim
        weight, bias = self._projection_with_rotations()
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
            # Per-head masks repeated over the rows / columns of an image,
            # and one fp32 buffer for the softmax of either pass.
            mask_w = mask_w.expand(h, n, w, w).reshape(h * n, w, w)
            mask_h = mask_h.expand(w, n, h, h).reshape(w * n, h, h)
            scores = torch.empty(
                n * h * w * max(h, w), device=x.device, dtype=torch.float32)
        for i in range(b):
            proj = F.linear(x[i], weight, bias)  # [H, W, 5C]
            proj[..., 2 * c:4 * c].mul_(self.scale)  # k * scale, rot(k) * scale
            q, q_rot, k, k_rot, v = (
                proj[..., j * c:(j + 1) * c].view(h, w, n, d)
                for j in range(5))
            v = v.contiguous()
            q = torch.mul(q, cos).addcmul_(q_rot, sin)
            k = torch.mul(k, cos).addcmul_(k_rot, sin)
            if unfused:
                # Rows: batch (H, heads), W tokens; then columns: batch
                # (W, heads), H tokens, values = the rows' output.
                rows = _softmax_attention(
                    *(t.transpose(1, 2).reshape(h * n, w, d)
                      for t in (q, k, v)), mask_w, scores)
                cols = _softmax_attention(
                    *(t.permute(1, 2, 0, 3).reshape(w * n, h, d)
                      for t in (q, k)),
                    rows.view(h, n, w, d).permute(2, 1, 0, 3).reshape(
                        w * n, h, d), mask_h, scores)
                cols = cols.view(w, n, h, d).permute(2, 0, 1, 3)
            else:
                # Rows: batch H, heads, W tokens.
                rows = F.scaled_dot_product_attention(
                    q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                    attn_mask=mask_w, scale=1.)
                # Columns: batch W, heads, H tokens; values = the rows'
                # output.
                cols = F.scaled_dot_product_attention(
                    q.permute(1, 2, 0, 3), k.permute(1, 2, 0, 3),
                    rows.permute(2, 1, 0, 3), attn_mask=mask_h,
                    scale=1.).permute(2, 0, 1, 3)
            lepe = self.lepe(v.reshape(1, h, w, c).permute(0, 3, 1, 2))
            torch.add(cols, lepe[0].permute(1, 2, 0).view(h, w, n, d),
                      out=out[i].view(h, w, n, d))
        return self.out_proj(out)

    @staticmethod
    def _decomposed(q: torch.Tensor,
                    k: torch.Tensor,
                    v: torch.Tensor,
                    mask_h: torch.Tensor,
                    mask_w: torch.Tensor,
                    softmax=softmax_last_dim) -> torch.Tensor:
        """Row pass then column pass; returns ``[B, H, W, heads, d]``."""
        # Rows: [B, H, heads, W, d], attention over W.
        q_r, k_r, v_r = (t.transpose(1, 2) for t in (q, k, v))
        attn = softmax(q_r @ k_r.transpose(-1, -2) + mask_w)
        rows = attn @ v_r
        # Columns: [B, W, heads, H, d], attention over H.
        q_c, k_c = (t.permute(0, 3, 1, 2, 4) for t in (q, k))
        attn = softmax(q_c @ k_c.transpose(-1, -2) + mask_h)
        out = attn @ rows.permute(0, 3, 2, 1, 4)
        return out.permute(0, 3, 1, 2, 4)

    @staticmethod
    def _full(q: torch.Tensor,
              k: torch.Tensor,
              v: torch.Tensor,
              mask: torch.Tensor,
              softmax=softmax_last_dim) -> torch.Tensor:
        """Attention over all ``HW`` tokens; ``[B, H, W, heads, d]``."""
        b, n, h, w, d = q.shape
        q, k, v = (t.flatten(2, 3) for t in (q, k, v))
        out = softmax(q @ k.transpose(-1, -2) + mask) @ v
        return out.transpose(1, 2).reshape(b, h, w, n, d)

    @staticmethod
    def _decomposed_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                         mask_h: torch.Tensor,
                         mask_w: torch.Tensor) -> torch.Tensor:
        """:meth:`_decomposed` as two batched fused calls (differentiable).

        ``q``, ``k``, ``v``: ``[B, H, W, heads, d]``; returns ``[B, H, W,
        heads, d]``.
        """
        b, h, w, n, d = q.shape
        # Rows: [B * H, heads, W, d] (views).
        rows = F.scaled_dot_product_attention(
            *(t.transpose(2, 3).reshape(b * h, n, w, d) for t in (q, k, v)),
            attn_mask=mask_w.to(q.dtype)[None], scale=1.).view(b, h, n, w, d)
        # Columns: [B * W, heads, H, d].
        q_c, k_c = (t.permute(0, 2, 3, 1, 4).reshape(b * w, n, h, d)
                    for t in (q, k))
        v_c = rows.permute(0, 3, 2, 1, 4).reshape(b * w, n, h, d)
        out = F.scaled_dot_product_attention(
            q_c, k_c, v_c, attn_mask=mask_h.to(q.dtype)[None], scale=1.)
        return out.view(b, w, n, h, d).permute(0, 3, 1, 2, 4)

    @staticmethod
    def _full_fused(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
        """:meth:`_full` through one fused attention call."""
        b, n, h, w, d = q.shape
        q, k, v = (t.flatten(2, 3) for t in (q, k, v))
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask.to(q.dtype)[None], scale=1.)
        return out.transpose(1, 2).reshape(b, h, w, n, d)
