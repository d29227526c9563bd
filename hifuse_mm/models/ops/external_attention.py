"""HEMF's multi-head external attention with fewer passes over its attention map.

Two implementations of :class:`~hifuse_mm.models.layers.MultiHeadExternalAttention`:

* ``double_norm``: the double normalisation (softmax over the tokens, then division by
  the sum over the memory slots) is one autograd node, :class:`DoubleNormalization`,
  whose backward makes half the passes over the ``[B, heads, HW, S]`` map that
  autograd's softmax + division make (the map is memory-bound).
* ``per_image``: without autograd, one image at a time (:func:`_per_image`); with it,
  ``double_norm``.
"""
import torch

from ..layers.external_attention import MultiHeadExternalAttention
from .drop_in import DropIn


class DoubleNormalization(torch.autograd.Function):
    """``a = softmax(x, dim) / softmax(x, dim).sum(-1)`` with a hand-written backward.

    Autograd's version makes ~10 passes over the map in the backward (the
    division's two gradients, then the softmax's); with ``p = a * s``,
    ``s = sum_S p``, the gradient is ``a * (d - s * sum_dim(d * a))`` with
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


def mhea_double_norm(mhea: MultiHeadExternalAttention,
                     x: torch.Tensor) -> torch.Tensor:
    """``double_norm``: the reference with :class:`DoubleNormalization`."""
    b, c, h, w = x.shape
    tokens = x.reshape(b, mhea.num_heads, c // mhea.num_heads,
                       h * w).transpose(-1, -2)
    attn = DoubleNormalization.apply(mhea.key_memory(tokens), 2)
    out = mhea.value_memory(attn)  # [B, heads, HW, C / heads]
    return mhea.drop(out.transpose(-1, -2).reshape(b, c, h, w))


def _per_image(mhea: MultiHeadExternalAttention, x: torch.Tensor) -> torch.Tensor:
    """Without autograd, one image at a time.

    The map is computed transposed, ``[heads, S, HW]``, straight from the
    channels of ``x`` (one matmul, no token transpose), and the division by
    the sum over the slots moves after ``M_v``: with ``p`` the token softmax,
    ``sum_s p_s M_v[:, s] / sum_s p_s`` is one matmul of ``p`` with
    ``[M_v; 1]`` (the extra row gives the denominators) and a division of the
    small ``[heads, C / heads + 1, HW]`` result. In fp32 the softmax runs in
    place (``exp(l - max)``, the column sums folded into ``[M_v; 1]``). One
    image at a time keeps the ``[heads, S, HW]`` map in the CPU caches and
    out of fresh page-faulting allocations.
    """
    b, c, h, w = x.shape
    head_dim = c // mhea.num_heads
    # detach(): torch.matmul picks a copying path for an operand that
    # requires grad, even under no_grad.
    key = mhea.key_memory.weight.detach()  # [S, d]
    value = mhea.value_memory.weight.detach()
    value_and_ones = torch.cat([value, value.new_ones(1, value.shape[1])])
    channels = x.reshape(b, mhea.num_heads, head_dim, h * w)
    out = None
    for i in range(b):
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
            out = sums.new_empty(b, mhea.num_heads, head_dim, h * w)
        torch.div(sums[:, :head_dim], sums[:, head_dim:], out=out[i])
    return mhea.drop(out.view(b, c, h, w))


def mhea_per_image(mhea: MultiHeadExternalAttention,
                   x: torch.Tensor) -> torch.Tensor:
    """``per_image`` (see the module docstring)."""
    if torch.is_grad_enabled() and (x.requires_grad
                                    or mhea.key_memory.weight.requires_grad
                                    or mhea.value_memory.weight.requires_grad):
        return mhea_double_norm(mhea, x)
    return _per_image(mhea, x)


class OptimisedExternalAttention(DropIn, MultiHeadExternalAttention):
    """Drop-in for :class:`~hifuse_mm.models.layers.MultiHeadExternalAttention`
    (op ``external_attention``)."""

    reference = MultiHeadExternalAttention
    op = 'external_attention'
    implementations = {'double_norm': mhea_double_norm,
                       'per_image': mhea_per_image}
