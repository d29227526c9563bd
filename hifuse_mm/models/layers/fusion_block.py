"""The merge step HiFuse's HFF and HEMF's HEF blocks share."""
from typing import Optional

import torch
import torch.nn as nn


class FusionBlock(nn.Module):
    """Base of :class:`HFFBlock` and :class:`HEFBlock`.

    Both compute ``F_i = MLP(LN(Concat[A_g(G_i), A_l(L_i), F^_i])) + F~_i``
    (HiFuse eq. 5, HEMF eqs. 7-9); they differ in the branch attentions
    ``A_g`` / ``A_l`` and the MLP. Subclasses build ``fusion``
    (:class:`FusionPath`), ``norm``, ``mlp`` and ``drop_path`` and define
    :meth:`attend_global` / :meth:`attend_local` (their attention modules
    keep their own names, so the state dicts match the released code's).
    """

    fusion: nn.Module
    norm: nn.Module
    mlp: nn.Module
    drop_path: nn.Module
    #: Add the shortcut ``F~_i`` (stages 2-4). HiFuse's ablation turns it off.
    with_shortcut: bool = True

    def attend_global(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def attend_local(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self,
                local_feat: torch.Tensor,
                global_feat: torch.Tensor,
                prev: Optional[torch.Tensor] = None) -> torch.Tensor:
        fused, shortcut = self.fusion(local_feat, global_feat, prev)
        x = torch.cat([
            self.attend_global(global_feat),
            self.attend_local(local_feat), fused
        ], dim=1)
        x = self.drop_path(self.mlp(self.norm(x)))
        if self.with_shortcut and shortcut is not None:
            x = x + shortcut
        return x
