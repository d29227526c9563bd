"""Parameters and FLOPs of the model a config describes, at the config's test input size.

Used by ``results_table`` for runs whose results do not record them. The count is
:func:`hifuse_mm.utils.complexity.model_complexity` (one multiply-add = one FLOP), taken
*without* attention matmuls as in the papers' tables (``tools/analysis_tools/get_flops.py``
shows both). Models from MMPretrain that call ``F.scaled_dot_product_attention`` leave those
matmuls out of either count anyway.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

if TYPE_CHECKING:
    from .run_results import RunResult

DEFAULT_SHAPE = (224, 224)


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
    import torch
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import hifuse_mm  # noqa: F401  (registers the models)
    from hifuse_mm.utils.complexity import model_complexity

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
