"""Multi-head external attention (MHEA) as HEMF's Mixed Attention uses it."""
import torch
import torch.nn as nn

from .. import fast_paths
from .autocast_weights import Linear


class _DoubleNormalization(torch.autograd.Function):
    """``a = softmax(x, dim) / softmax(x, dim).sum(-1)`` with a hand-written backward.

    Memory-bound on the large ``[B, heads, HW, S]`` map: autograd's version makes ~10 passes
    over it in the backward (the division's two gradients, then the softmax's); with
    ``p = a * s``, ``s = sum_S p``, the gradient is ``a * (d - s * sum_dim(d * a))`` with
    ``d = g - sum_S(g * a)``: five passes, and only ``a`` and ``s`` are kept.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, dim: int) -> torch.Tensor:
        probs = torch.softmax(logits, dim=dim)
        sums = probs.sum(dim=-1, keepdim=True)
        attn = probs.div_(sums)
        ctx.save_for_backward(attn, sums)
        ctx.dim = dim
        return attn

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        attn, sums = ctx.saved_tensors
        d = grad - (grad * attn).sum(dim=-1, keepdim=True)
        d.addcmul_(sums, (d * attn).sum(dim=ctx.dim, keepdim=True), value=-1)
        return d.mul_(attn), None


class MultiHeadExternalAttention(nn.Module):
    """``MHEA(x) = Concat_h[M_v(Norm(M_k(x_h)))]`` (HEMF eqs. 12-13).

    The tokens of ``x`` ``[B, C, H, W]`` are split into ``num_heads`` heads
    of ``C / num_heads`` channels; every head uses the **same** two external
    memories, ``M_k`` (Linear ``C/heads -> S``) and ``M_v`` (Linear ``S ->
    C/heads``), both without bias. ``Norm`` is Guo et al.'s double
    normalisation: a softmax over the **tokens**, then division by the sum
    over the ``S`` memory slots (no epsilon, as released). The result is
    returned (``[B, C, H, W]``); the caller multiplies it with its input
    (:class:`MixedAttention`, eq. 14).

    As released, and unlike Guo et al.'s reference MHEA, there is no input
    projection (``trans_dims``, 4x heads), no output projection, and the
    memories are unbiased. The released code asserts a square map; any
    ``H x W`` works here (the double normalisation does not depend on the
    layout). Memories are initialised from N(0, 0.001^2), as released.

    Fast paths (:mod:`~hifuse_mm.models.fast_paths`), same function:

    * with autograd, the double normalisation is one autograd node
      (:class:`_DoubleNormalization`) whose backward makes half the passes
      over the ``[B, heads, HW, S]`` map that autograd's softmax + division
      do (fp32 HEMF stage 1, forward + backward: 82 ms instead of 137 ms);
    * without autograd (inference), one image at a time, the map is
      computed transposed, ``[heads, S, HW]``, straight from the channels
      of ``x`` (one matmul, no token transpose), and the division by the
      sum over the slots moves after ``M_v``: with ``p`` the token
      softmax, ``sum_s p_s M_v[:, s] / sum_s p_s`` is one matmul of ``p``
      with ``[M_v; 1]`` (the extra row gives the denominators) and a
      division of the small ``[heads, C / heads + 1, HW]`` result. In fp32
      the softmax runs in place (``exp(l - max)``, the column sums folded
      into ``[M_v; 1]``). One image at a time keeps the ``[heads, S, HW]``
      map (6.4 MB in fp32 at stage 1) in the caches and out of fresh
      page-faulting allocations (the whole batch's is 51 MB). HEMF stage 1,
      batch 8: fp32 9 ms instead of 43-51, bf16 8 instead of 25-33.

    Args:
        embed_dims: Channels ``C``.
        num_heads: Heads (8).
        memory_size: Memory slots ``S`` (64).
        dropout: Dropout on the output (0).
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int = 8,
                 memory_size: int = 64,
                 dropout: float = 0.) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'{embed_dims} channels do not split into '
                             f'{num_heads} heads')
        self.num_heads = num_heads
        head_dim = embed_dims // num_heads
        self.key_memory = Linear(head_dim, memory_size, bias=False)
        self.value_memory = Linear(memory_size, head_dim, bias=False)
        self.drop = nn.Dropout(dropout)
        self.init_memories()

    def init_memories(self) -> None:
        """The released init: N(0, 0.001^2) for both memories."""
        nn.init.normal_(self.key_memory.weight, std=0.001)
        nn.init.normal_(self.value_memory.weight, std=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fast_paths.enabled() and not fast_paths.needs_grad(
                x, self.key_memory.weight, self.value_memory.weight):
            return self.drop(self._forward_inference(x))
        b, c, h, w = x.shape
        # [B, C, H, W] -> [B, heads, HW, C / heads]
        tokens = x.reshape(b, self.num_heads, c // self.num_heads,
                           h * w).transpose(-1, -2)
        if fast_paths.enabled():
            attn = _DoubleNormalization.apply(self.key_memory(tokens), 2)
        else:
            attn = torch.softmax(self.key_memory(tokens), dim=2)  # over tokens
            attn = attn / attn.sum(dim=-1, keepdim=True)  # over memory slots
        out = self.value_memory(attn)  # [B, heads, HW, C / heads]
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return self.drop(out)

    def _forward_inference(self, x: torch.Tensor) -> torch.Tensor:
        """The fast path without autograd (see the class docstring)."""
        b, c, h, w = x.shape
        head_dim = c // self.num_heads
        # detach(): torch.matmul picks a copying path for an operand that
        # requires grad, even under no_grad.
        key = self.key_memory.autocast_param('weight').detach()  # [S, d]
        value = self.value_memory.autocast_param('weight').detach()
        value_and_ones = torch.cat([value, value.new_ones(1, value.shape[1])])
        channels = x.reshape(b, self.num_heads, head_dim, h * w)
        out = None
        for i in range(b):  # one image at a time: see the class docstring
            # [S, d] @ [heads, d, HW] -> [heads, S, HW]
            logits = torch.matmul(key, channels[i])
            if logits.dtype == torch.float32:
                exps = logits.sub_(logits.amax(dim=-1, keepdim=True)).exp_()
                sums = torch.matmul(value_and_ones / exps.sum(dim=-1)[:, None],
                                    exps)
            else:
                sums = torch.matmul(value_and_ones, torch.softmax(logits, -1))
            # [heads, d + 1, HW]: the numerators over the denominators.
            if out is None:
                out = sums.new_empty(b, self.num_heads, head_dim, h * w)
            torch.div(sums[:, :head_dim], sums[:, head_dim:], out=out[i])
        return out.view(b, c, h, w)
