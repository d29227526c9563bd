"""``MedicalMetrics``: the registered metric behind every dataset config's evaluator.

::

    val_evaluator = dict(type='MedicalMetrics')            # prefix 'medical'
    val_evaluator = dict(type='MedicalMetrics', pos_label=0)  # binary AUC of class 0
    val_evaluator = dict(type='MedicalMetrics', ece_bins=10)  # 10 calibration bins

Returns plain floats ``medical/accuracy``, ``medical/balanced_accuracy``,
``medical/precision_macro``, ``medical/recall_macro``, ``medical/f1_macro``, ``medical/mcc``,
``medical/kappa`` and ``medical/auc`` (fractions in [0, 1]; definitions in
:mod:`hifuse_mm.evaluation.functional`), and the calibration metrics ``medical/ece``,
``medical/classwise_ece``, ``medical/brier`` and ``medical/nll`` (lower is better;
definitions in :mod:`hifuse_mm.evaluation.calibration`), so
``CheckpointHook(save_best='medical/f1_macro', rule='greater')`` and the loggers take them as
they are.

The per-class table, the confusion matrix and the predictions themselves are not metric
values; after an evaluation they are on the metric object, rank 0 only, as
:attr:`MedicalMetrics.last` (a :class:`LastEvaluation`), which ``tools/test.py`` turns into
``metrics.json``, ``predictions.csv`` and the plots. The per-class table is also written to
the log at every evaluation.

Distributed: ``process`` keeps small CPU items per sample; MMEngine's ``BaseMetric.evaluate``
gathers them from every rank (dropping the sampler's padding) and calls
:meth:`compute_metrics` on rank 0 only, then broadcasts the values.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log
from mmpretrain.registry import METRICS

from .calibration import DEFAULT_ECE_BINS
from .functional import PER_CLASS_KEYS, Evaluation, evaluate_predictions


class MedicalMetricWarning(UserWarning):
    """A metric is undefined or degenerate for these predictions (a defined value is used)."""


@dataclass
class LastEvaluation:
    """What the last :meth:`MedicalMetrics.compute_metrics` saw and computed (rank 0).

    Attributes:
        evaluation: Summary, per-class table, confusion matrix, warnings.
        labels: ``[n]`` true classes, in dataset order.
        preds: ``[n]`` predicted classes.
        scores: ``[n, C]`` class probabilities (float64).
        images: ``[n]`` image paths (``''`` when the samples carry none).
        ece_bins: Confidence bins of the ECEs and the reliability diagram.
    """
    evaluation: Evaluation
    labels: np.ndarray
    preds: np.ndarray
    scores: np.ndarray
    images: List[str]
    ece_bins: int = DEFAULT_ECE_BINS


def _to_int(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return int(value.reshape(-1)[0].item())
    return int(np.asarray(value).reshape(-1)[0])


def format_per_class(evaluation: Evaluation) -> str:
    """The per-class table as aligned text."""
    width = max(len(c) for c in [*evaluation.classes, 'class'])
    header = f'{"class":<{width}}' + ''.join(f' {k:>11}' for k in PER_CLASS_KEYS)
    rows = [header]
    for name, values in evaluation.per_class.items():
        cells = [f'{values[k]:>11d}' if k == 'support' else f'{values[k]:>11.4f}'
                 for k in PER_CLASS_KEYS]
        rows.append(f'{name:<{width}}' + ''.join(f' {c}' for c in cells))
    return '\n'.join(rows)


@METRICS.register_module()
class MedicalMetrics(BaseMetric):
    """Accuracy, balanced accuracy, macro P/R/F1, MCC, kappa, AUC and the calibration metrics
    (ECE, class-wise ECE, Brier, NLL), with a per-class table.

    Args:
        num_classes: Expected number of classes (checked against the score width);
            default: the width of ``pred_score``.
        pos_label: Positive class for the binary AUC (default 1).
        log_per_class: Write the per-class table to the log at every evaluation.
        ece_bins: Equal-width confidence bins of the ECEs and the reliability diagram
            (default 15).
        collect_device: ``'cpu'`` or ``'gpu'``, how ranks exchange results.
        prefix: Key prefix (default ``'medical'``).
    """

    default_prefix: Optional[str] = 'medical'

    def __init__(self,
                 num_classes: Optional[int] = None,
                 pos_label: int = 1,
                 log_per_class: bool = True,
                 ece_bins: int = DEFAULT_ECE_BINS,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_classes = num_classes
        self.pos_label = pos_label
        self.log_per_class = log_per_class
        if isinstance(ece_bins, bool) or not isinstance(ece_bins, int) or ece_bins < 1:
            raise ValueError(f'MedicalMetrics(ece_bins=...) must be a positive integer, got '
                             f'{ece_bins!r}')
        self.ece_bins = ece_bins
        self.last: Optional[LastEvaluation] = None

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep the score, label, prediction and image path of every sample (on the CPU)."""
        for sample in data_samples:
            if 'pred_score' not in sample:
                raise KeyError('MedicalMetrics needs pred_score in the data samples (a '
                               'classification head that outputs class scores)')
            score = sample['pred_score']
            # float(): under --amp on CPU the scores are bf16, which numpy cannot hold.
            score = score.detach().float().cpu().numpy() if isinstance(score, torch.Tensor) \
                else np.asarray(score, np.float64)
            pred = sample.get('pred_label')
            self.results.append(dict(
                score=score.astype(np.float64),
                label=_to_int(sample['gt_label']),
                pred=int(score.argmax()) if pred is None else _to_int(pred),
                image=str(sample.get('img_path', '') or ''),
            ))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Metrics of the gathered results (rank 0 only)."""
        classes = (self.dataset_meta or {}).get('classes')
        if results:
            scores = np.stack([r['score'] for r in results])
        else:
            width = self.num_classes or (len(classes) if classes else 0)
            scores = np.zeros((0, width))
        if self.num_classes is not None and scores.shape[1] != self.num_classes:
            raise ValueError(f'MedicalMetrics(num_classes={self.num_classes}) got scores for '
                             f'{scores.shape[1]} classes')
        if classes is not None and len(classes) != scores.shape[1]:
            classes = None
        labels = np.array([r['label'] for r in results], np.int64)
        preds = np.array([r['pred'] for r in results], np.int64)
        evaluation = evaluate_predictions(labels, scores, preds, classes, self.pos_label,
                                          self.ece_bins)
        for message in evaluation.warnings:
            warnings.warn(f'MedicalMetrics: {message}', MedicalMetricWarning, stacklevel=2)
        self.last = LastEvaluation(evaluation, labels, preds, scores,
                                   [r['image'] for r in results], self.ece_bins)
        if self.log_per_class and len(results):
            print_log('Per-class results (NaN = undefined):\n' + format_per_class(evaluation),
                      logger='current', level=logging.INFO)
        return {key: float(value) for key, value in evaluation.summary.items()}
