"""Do a model's predictions change with the precision and the optimised implementations?

:func:`prediction_agreement` runs a classifier over a dataloader once per
*setting* (precision + ``fast``: the optimised implementations,
``impl='auto'``, or the plain reference ones, ``impl='reference'``; see
:mod:`hifuse_mm.models.ops`) and compares the top-1
classes with the reference setting (fp32, plain). Behind
``tools/analysis_tools/precision_agreement.py``.
"""
from typing import Dict, Iterable, List, Sequence, Tuple

import torch

from ..models.ops import use_impl
from ..utils.speed import autocast_context, warn_slow_precision

#: (precision, fast) pairs; the first is the reference.
DEFAULT_SETTINGS: Tuple[Tuple[str, bool], ...] = (
    ('fp32', False), ('fp32', True), ('bf16', True))


def setting_name(precision: str, fast: bool) -> str:
    return f"{precision} {'fast' if fast else 'plain'}"


@torch.no_grad()
def collect_logits(model: torch.nn.Module, batches: Sequence[dict],
                   precision: str, fast: bool,
                   device: str = 'cpu') -> torch.Tensor:
    """Logits (fp32, ``[N, classes]``) of ``model`` over preprocessed batches."""
    model.eval()
    out = []
    with use_impl(model, 'auto' if fast else 'reference'):
        for inputs in batches:
            with autocast_context(device, precision):
                logits = model(inputs, mode='tensor')
            out.append(logits.float().cpu())
    return torch.cat(out)


def prediction_agreement(
        model: torch.nn.Module,
        dataloader: Iterable[dict],
        settings: Sequence[Tuple[str, bool]] = DEFAULT_SETTINGS,
        device: str = 'cpu') -> Dict[str, Dict[str, float]]:
    """Top-1 agreement of each setting with the first one.

    Args:
        model: An mmpretrain classifier (its ``data_preprocessor`` is
            applied once, in fp32).
        dataloader: Yields mmengine data batches (``inputs`` /
            ``data_samples``).
        settings: ``(precision, fast)`` pairs; the first is the reference.
        device: Where the model is.

    Returns:
        ``{name: {'agreement', 'disagreements', 'images',
        'max_abs_logit_diff', 'accuracy'}}`` per setting (``accuracy`` when
        the samples carry labels).
    """
    for precision, _ in settings:
        warn_slow_precision(device, precision)
    batches: List[torch.Tensor] = []
    labels: List[torch.Tensor] = []
    for data in dataloader:
        data = model.data_preprocessor(data, False)
        batches.append(data['inputs'])
        samples = data.get('data_samples') or []
        if samples and 'gt_label' in samples[0]:
            labels.append(torch.cat([s.gt_label for s in samples]).cpu())
    truth = torch.cat(labels) if labels else None
    results: Dict[str, Dict[str, float]] = {}
    reference = None
    for precision, fast in settings:
        logits = collect_logits(model, batches, precision, fast, device)
        pred = logits.argmax(dim=1)
        if reference is None:
            reference = (logits, pred)
        ref_logits, ref_pred = reference
        same = (pred == ref_pred).sum().item()
        entry = dict(
            images=len(pred),
            agreement=same / len(pred),
            disagreements=len(pred) - same,
            max_abs_logit_diff=(logits - ref_logits).abs().max().item())
        if truth is not None and len(truth) == len(pred):
            entry['accuracy'] = (pred == truth).float().mean().item()
        results[setting_name(precision, fast)] = entry
    return results
