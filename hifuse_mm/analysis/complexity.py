"""Parameter and FLOP counts of a model, and of the model a config describes.

FLOPs count one fused multiply-add as one FLOP (fvcore / mmengine
convention; papers in this field call these "FLOPs", thop and ptflops call
them MACs). Attention matmuls (``q @ k^T``, ``attn @ v``) are ``aten::matmul``
/ ``aten::bmm`` / ``aten::einsum`` calls, while every projection is an
``aten::linear`` or a convolution, so the two totals differ exactly by the
attention matmuls. The HiFuse paper's Table 4 reports the count without
them (ptflops-style hooks cannot see them).

* :func:`model_complexity` -- ``params``, ``flops`` and ``flops_no_attention`` of a built
  model (``tools/analysis_tools/get_flops.py`` shows both counts). The count runs the models'
  plain reference implementation (``impl='reference'``, :func:`hifuse_mm.models.ops.use_impl`):
  ``F.scaled_dot_product_attention``, which the optimised implementations use, is not counted
  by mmengine's FlopAnalyzer. Both compute the same thing.
* :func:`config_complexity` / :func:`run_complexity` -- the same count for the model a config
  (or a run's config) describes, at the config's test input size, taken *without* attention
  matmuls as in the papers' tables. Used by ``results_table`` for runs whose results do not
  record them. Models from MMPretrain that call ``F.scaled_dot_product_attention`` leave
  those matmuls out of either count anyway.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn

if TYPE_CHECKING:
    from .run_results import RunResult

ATTENTION_OPS = ('aten::matmul', 'aten::bmm', 'aten::einsum')
DEFAULT_SHAPE = (224, 224)


class ClassifierLogits(nn.Module):
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

    from ..models.ops import use_impl

    was_training = model.training
    model.eval()
    try:
        with use_impl(model, 'reference'):
            x = torch.zeros(1, in_channels, *shape)
            analyzer = FlopAnalyzer(ClassifierLogits(model), (x, ))
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


def _pair(value: Any) -> Optional[Tuple[int, int]]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, (list, tuple)) and len(value) == 2 \
            and all(isinstance(v, int) for v in value):
        # MMPretrain's Resize/CenterCrop sizes are (w, h).
        return int(value[1]), int(value[0])
    return None


def config_input_shape(cfg: Any) -> Tuple[int, int]:
    """``(H, W)`` of the images the test pipeline produces (its last crop or resize).

    Falls back to 224 x 224 when the pipeline has no fixed-size crop or resize.
    """
    loader = cfg.get('test_dataloader') or {}
    pipeline = (loader.get('dataset') or {}).get('pipeline') or []
    shape = None
    for step in pipeline:
        kind = step.get('type') if isinstance(step, dict) else None
        if kind in ('CenterCrop', 'RandomCrop'):
            shape = _pair(step.get('crop_size')) or shape
        elif kind in ('Resize', 'RandomResizedCrop'):
            shape = _pair(step.get('scale')) or shape
    return shape or DEFAULT_SHAPE


def config_complexity(config: Path, shape: Optional[Tuple[int, int]] = None,
                      cache: Optional[Dict[str, Dict[str, float]]] = None) -> Dict[str, float]:
    """``{'params', 'flops', 'shape'}`` of ``config``'s model (FLOPs without attention matmuls).

    Args:
        config: Config file (e.g. the run's dumped ``vis_data/config.py``).
        shape: Input ``(H, W)``; default :func:`config_input_shape`.
        cache: Results by model settings and shape, shared between calls (runs of the same
            model are counted once).
    """
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from .. import models  # noqa: F401  (registers the models)

    cfg = Config.fromfile(str(config))
    shape = tuple(shape) if shape else config_input_shape(cfg)
    key = json.dumps([cfg.model.to_dict(), shape], sort_keys=True, default=str)
    if cache is not None and key in cache:
        return cache[key]
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmpretrain')):
        model = MODELS.build(cfg.model)
    with torch.no_grad():
        counted = model_complexity(model, shape)
    result = dict(params=float(counted['params']), flops=float(counted['flops_no_attention']),
                  shape=shape)
    if cache is not None:
        cache[key] = result
    return result


def run_complexity(run: 'RunResult', shape: Optional[Tuple[int, int]] = None,
                   cache: Optional[Dict[str, Dict[str, float]]] = None) -> Dict[str, float]:
    """:func:`config_complexity` of a run's config; raises ``FileNotFoundError`` without one."""
    if run.config is None:
        raise FileNotFoundError(f'no config for {run.source} (neither the report\'s '
                                'vis_data/config.py nor the config path it records exists)')
    return config_complexity(run.config, shape, cache)
