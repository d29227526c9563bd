"""Multi-head external attention (MHEA) as HEMF's Mixed Attention uses it."""
import torch
import torch.nn as nn


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
        self.key_memory = nn.Linear(head_dim, memory_size, bias=False)
        self.value_memory = nn.Linear(memory_size, head_dim, bias=False)
        self.drop = nn.Dropout(dropout)
        self.init_memories()

    def init_memories(self) -> None:
        """The released init: N(0, 0.001^2) for both memories."""
        nn.init.normal_(self.key_memory.weight, std=0.001)
        nn.init.normal_(self.value_memory.weight, std=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        # [B, C, H, W] -> [B, heads, HW, C / heads]
        tokens = x.reshape(b, self.num_heads, c // self.num_heads,
                           h * w).transpose(-1, -2)
        attn = torch.softmax(self.key_memory(tokens), dim=2)  # over tokens
        attn = attn / attn.sum(dim=-1, keepdim=True)  # over memory slots
        out = self.value_memory(attn)  # [B, heads, HW, C / heads]
        return self.drop(out.transpose(-1, -2).reshape(b, c, h, w))
