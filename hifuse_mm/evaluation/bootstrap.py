"""Bootstrap confidence intervals of accuracy, macro F1 and AUC (percentile method).

Each of ``resamples`` rounds draws ``n`` test samples with replacement (a seeded
``numpy.random.Generator``) and recomputes the metric with the same definitions as the summary
(:mod:`hifuse_mm.evaluation.functional`). The interval is the ``(1 - confidence) / 2`` and
``(1 + confidence) / 2`` percentiles of those values. A resample whose AUC is undefined (it
drew a single class) is left out of the AUC interval; how many were used is reported.
"""
from __future__ import annotations

import math
from typing import Dict

import numpy as np

from .functional import auc_score, macro_f1

BOOTSTRAP_KEYS = ('accuracy', 'f1_macro', 'auc')


def bootstrap_intervals(labels: np.ndarray, preds: np.ndarray, scores: np.ndarray,
                        resamples: int, seed: int = 0, confidence: float = 0.95,
                        pos_label: int = 1) -> Dict[str, object]:
    """Percentile bootstrap intervals of :data:`BOOTSTRAP_KEYS`.

    Returns:
        ``{'resamples', 'seed', 'confidence', <key>: {'low', 'high', 'valid_resamples'}}``
        (``low``/``high`` are NaN when no resample had a defined value).
    """
    if resamples < 1:
        raise ValueError(f'resamples must be >= 1, got {resamples}')
    if not 0 < confidence < 1:
        raise ValueError(f'confidence must be in (0, 1), got {confidence}')
    n = len(labels)
    rng = np.random.default_rng(seed)
    values = {key: [] for key in BOOTSTRAP_KEYS}
    for _ in range(resamples):
        idx = rng.integers(0, n, n) if n else np.zeros(0, np.int64)
        y, p, s = labels[idx], preds[idx], scores[idx]
        values['accuracy'].append(float(np.mean(y == p)) if n else math.nan)
        values['f1_macro'].append(macro_f1(y, p) if n else math.nan)
        values['auc'].append(auc_score(y, s, pos_label) if n else math.nan)
    result: Dict[str, object] = dict(resamples=resamples, seed=seed, confidence=confidence)
    tail = (1 - confidence) / 2 * 100
    for key, samples in values.items():
        finite = np.array([v for v in samples if not math.isnan(v)])
        low, high = (np.percentile(finite, [tail, 100 - tail]) if len(finite)
                     else (math.nan, math.nan))
        result[key] = dict(low=float(low), high=float(high), valid_resamples=len(finite))
    return result
