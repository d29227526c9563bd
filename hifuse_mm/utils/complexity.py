"""Parameter and FLOP counts, with and without attention matmuls.

FLOPs count one fused multiply-add as one FLOP (fvcore / mmengine
convention; papers in this field call these "FLOPs", thop and ptflops call
them MACs). Attention matmuls (``q @ k^T``, ``attn @ v``) are ``aten::matmul``
/ ``aten::bmm`` / ``aten::einsum`` calls, while every projection is an
``aten::linear`` or a convolution, so the two totals differ exactly by the
attention matmuls. The HiFuse paper's Table 4 reports the count without
them (ptflops-style hooks cannot see them).

The count runs the models' plain path (:mod:`hifuse_mm.models.fast_paths`
off): ``F.scaled_dot_product_attention``, which the fast path uses, is not
counted by mmengine's FlopAnalyzer. Both paths compute the same thing.
"""
from typing import Dict, Sequence

import torch
import torch.nn as nn

ATTENTION_OPS = ('aten::matmul', 'aten::bmm', 'aten::einsum')


class _Logits(nn.Module):
    """Whole classifier, image -> logits, as a plain traceable module."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, mode='tensor')


def model_complexity(model: nn.Module,
                     shape: Sequence[int] = (224, 224),
                     in_channels: int = 3) -> Dict[str, float]:
    """Return ``params``, ``flops`` and ``flops_no_attention`` of a model.

    ``model`` is an mmpretrain classifier (``forward(x, mode='tensor')``);
    it is traced in eval mode on one ``in_channels x H x W`` image.
    """
    from mmengine.analysis import FlopAnalyzer

    from ..models.fast_paths import fast_paths

    was_training = model.training
    model.eval()
    try:
        with fast_paths(False):
            x = torch.zeros(1, in_channels, *shape)
            analyzer = FlopAnalyzer(_Logits(model), (x, ))
            analyzer.unsupported_ops_warnings(False)
            analyzer.uncalled_modules_warnings(False)
            by_op = analyzer.by_operator()
            total = analyzer.total()
    finally:
        model.train(was_training)
    attention = sum(by_op.get(op.split('::')[1], 0) for op in ATTENTION_OPS)
    return dict(
        params=sum(p.numel() for p in model.parameters()),
        flops=float(total),
        flops_no_attention=float(total - attention),
    )
