"""Bootstrap resampling: the shared core, and confidence intervals of accuracy, macro F1, AUC
and the calibration metrics (ECE, class-wise ECE, Brier, NLL).

The core (also behind :func:`hifuse_mm.analysis.paired_bootstrap`): each of ``resamples``
rounds draws ``n`` test samples with replacement, row ``r`` being
``rng.integers(0, n, n)`` of a seeded ``numpy.random.Generator`` (:func:`resample_indices`;
drawing several rows at once consumes the generator exactly as row by row, so how the rounds
are chunked never changes the result), and an interval is the ``(1 - confidence) / 2`` and
``(1 + confidence) / 2`` percentiles of a statistic's finite values over the rounds
(:func:`percentile_interval`).

:func:`bootstrap_intervals` recomputes each metric on every resample with the same definitions
as the summary (:mod:`hifuse_mm.evaluation.functional`). A resample whose AUC is undefined (it
drew a single class) is left out of the AUC interval; how many were used is reported. The
calibration metrics (:mod:`hifuse_mm.evaluation.calibration`) are computed on the same resamples
(the same rows of the generator, so adding them changed no other interval).
"""
from __future__ import annotations

import math
from typing import Dict, Iterator, Tuple

import numpy as np

from .calibration import CALIBRATION_KEYS, DEFAULT_ECE_BINS, calibration_metrics
from .functional import auc_score, macro_f1

BOOTSTRAP_KEYS = ('accuracy', 'f1_macro', 'auc', *CALIBRATION_KEYS)


def check_bootstrap_args(resamples: int, confidence: float) -> None:
    """Raise ``ValueError`` unless ``resamples >= 1`` and ``0 < confidence < 1``."""
    if resamples < 1:
        raise ValueError(f'resamples must be >= 1, got {resamples}')
    if not 0 < confidence < 1:
        raise ValueError(f'confidence must be in (0, 1), got {confidence}')


def resample_indices(rng: np.random.Generator, n: int, rounds: int,
                     rows_per_chunk: int = 1) -> Iterator[np.ndarray]:
    """Indices of ``rounds`` resamples of ``n`` samples, ``[rows, n]`` arrays of at most
    ``rows_per_chunk`` rounds each; with ``n = 0`` empty rows (the generator is not used)."""
    rows_per_chunk = max(1, rows_per_chunk)
    done = 0
    while done < rounds:
        rows = min(rows_per_chunk, rounds - done)
        yield rng.integers(0, n, (rows, n)) if n else np.zeros((rows, 0), np.int64)
        done += rows


def percentile_interval(values: np.ndarray, confidence: float) -> Tuple[float, float, int]:
    """``(low, high, valid)``: the percentile interval of the finite ``values`` and their count
    (``low``/``high`` are NaN when there is none)."""
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return math.nan, math.nan, 0
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high), len(finite)


def bootstrap_intervals(labels: np.ndarray, preds: np.ndarray, scores: np.ndarray,
                        resamples: int, seed: int = 0, confidence: float = 0.95,
                        pos_label: int = 1,
                        ece_bins: int = DEFAULT_ECE_BINS) -> Dict[str, object]:
    """Percentile bootstrap intervals of :data:`BOOTSTRAP_KEYS` (``ece_bins``: the ECEs' bins).

    Returns:
        ``{'resamples', 'seed', 'confidence', <key>: {'low', 'high', 'valid_resamples'}}``
        (``low``/``high`` are NaN when no resample had a defined value).
    """
    check_bootstrap_args(resamples, confidence)
    n = len(labels)
    values = {key: [] for key in BOOTSTRAP_KEYS}
    for chunk in resample_indices(np.random.default_rng(seed), n, resamples):
        for idx in chunk:
            y, p, s = labels[idx], preds[idx], scores[idx]
            values['accuracy'].append(float(np.mean(y == p)) if n else math.nan)
            values['f1_macro'].append(macro_f1(y, p) if n else math.nan)
            values['auc'].append(auc_score(y, s, pos_label) if n else math.nan)
            calibration = calibration_metrics(y, s, ece_bins)
            for key in CALIBRATION_KEYS:
                values[key].append(calibration[key])
    result: Dict[str, object] = dict(resamples=resamples, seed=seed, confidence=confidence)
    for key, samples in values.items():
        low, high, valid = percentile_interval(np.array(samples), confidence)
        result[key] = dict(low=low, high=high, valid_resamples=valid)
    return result
