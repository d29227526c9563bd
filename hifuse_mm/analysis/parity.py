"""The parity files' rules, shared by the parity tests and ``tools/analysis_tools/gpu_check.py``.

The parity files (``../shared/parity/*.pt``: the authors' models' golden outputs) publish how
the authors' weights were made, so that they can be regenerated instead of shipped:
:func:`generate_state_dict` follows that rule. :func:`stage_features` collects the per-stage
maps our model's backbone and neck produce, under the names the files use.
"""
import math
import zlib
from typing import Dict, Iterable, Sequence, Tuple

import torch
import torch.nn as nn


def generate_state_dict(manifest: Iterable[Tuple[str, Sequence[int], str]],
                        salt: str) -> Dict[str, torch.Tensor]:
    """The authors' state dict by the parity files' published rule: every parameter and
    BatchNorm statistic from a normal generator seeded with the CRC32 of ``salt + key``,
    scaled by kind (running mean x0.1, running var 1 + 0.1|.|, matrices / sqrt(fan-in), other
    weights 1 + 0.1 x, biases x0.05). Buffers and ``num_batches_tracked`` are not generated
    (the model computes them; the converter fills them from our model)."""
    out = {}
    for key, shape, kind in manifest:
        if kind not in ('param', 'running_mean', 'running_var'):
            continue
        generator = torch.Generator().manual_seed(zlib.crc32((salt + key).encode('utf-8')))
        t = torch.randn(shape, generator=generator, dtype=torch.float32)
        if kind == 'running_mean':
            t = 0.1 * t
        elif kind == 'running_var':
            t = 1.0 + 0.1 * t.abs()
        elif len(shape) >= 2:
            t = t / math.sqrt(math.prod(shape[1:]))
        elif key.endswith('weight'):
            t = 1.0 + 0.1 * t
        else:
            t = 0.05 * t
        out[key] = t
    return out


def stage_features(model: nn.Module, image: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Per-stage ``local.i`` / ``global.i`` (backbone) and ``fused.i`` (neck blocks) maps of
    the first image of ``image``, as the parity files name them."""
    feats = {}
    hooks = [block.register_forward_hook(
        lambda m, a, out, i=i: feats.__setitem__(f'fused.{i}', out[0]))
        for i, block in enumerate(model.neck.blocks)]
    try:
        with torch.no_grad():
            stages = model.backbone(image[:1])
            model.neck(stages)
    finally:
        for hook in hooks:
            hook.remove()
    for i, maps in enumerate(stages):
        feats[f'local.{i}'] = maps[0][0]
        feats[f'global.{i}'] = maps[1][0]
    return feats
