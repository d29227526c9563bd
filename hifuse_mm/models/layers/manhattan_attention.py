"""Manhattan self-attention (MaSA, RMT), decomposed or full: HEMF's EGF."""
import torch
import torch.nn as nn

from .manhattan_rel_pos import RelPos2d, apply_rotary


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
        self.q_proj = nn.Linear(embed_dims, embed_dims)
        self.k_proj = nn.Linear(embed_dims, embed_dims)
        self.v_proj = nn.Linear(embed_dims, embed_dims)
        self.lepe = nn.Conv2d(
            embed_dims,
            embed_dims,
            lepe_kernel,
            padding=lepe_kernel // 2,
            groups=embed_dims)
        self.out_proj = nn.Linear(embed_dims, embed_dims)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H, W, C] -> [B, heads, H, W, head_dim]``."""
        b, h, w, _ = x.shape
        return x.reshape(b, h, w, self.num_heads,
                         self.head_dim).permute(0, 3, 1, 2, 4)

    def forward(self, x: torch.Tensor, rel_pos: RelPos2d) -> torch.Tensor:
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

    @staticmethod
    def _decomposed(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    mask_h: torch.Tensor, mask_w: torch.Tensor,
                    softmax=torch.softmax) -> torch.Tensor:
        """Row pass then column pass; returns ``[B, H, W, heads, d]``.

        The values are made contiguous: the 5-D matmul would copy them anyway,
        and then torch.compile's attention-pattern rewrite, written for 4-D
        tensors, leaves these 5-D ones alone (it fails on them otherwise).
        """
        # Rows: [B, H, heads, W, d], attention over W.
        q_r, k_r, v_r = (t.transpose(1, 2) for t in (q, k, v))
        attn = softmax(q_r @ k_r.transpose(-1, -2) + mask_w, dim=-1)
        rows = attn @ v_r.contiguous()
        # Columns: [B, W, heads, H, d], attention over H.
        q_c, k_c = (t.permute(0, 3, 1, 2, 4) for t in (q, k))
        attn = softmax(q_c @ k_c.transpose(-1, -2) + mask_h, dim=-1)
        out = attn @ rows.permute(0, 3, 2, 1, 4).contiguous()
        return out.permute(0, 3, 1, 2, 4)

    @staticmethod
    def _full(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              mask: torch.Tensor, softmax=torch.softmax) -> torch.Tensor:
        """Attention over all ``HW`` tokens; ``[B, H, W, heads, d]``."""
        b, n, h, w, d = q.shape
        q, k, v = (t.flatten(2, 3) for t in (q, k, v))
        out = softmax(q @ k.transpose(-1, -2) + mask, dim=-1) @ v
        return out.transpose(1, 2).reshape(b, h, w, n, d)
