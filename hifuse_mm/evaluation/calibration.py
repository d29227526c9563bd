"""Calibration metrics of class probabilities: ECE, class-wise ECE, Brier score, NLL, and the
data of a reliability diagram. Pure numpy, computed in float64.

Notation: ``n`` samples, ``C`` classes, ``p[i, k]`` the probability of class ``k`` for sample
``i`` (rows are expected to sum to 1, e.g. softmax outputs), ``y[i]`` the true class,
``1[.]`` the indicator.

Bins: ``B`` equal-width confidence bins (default :data:`DEFAULT_ECE_BINS` = 15); bin ``b``
(``b = 0 .. B-1``) holds the confidences in the half-open interval ``(b/B, (b+1)/B]``, and a
confidence of exactly 0 goes to the first bin. For a set of samples ``S`` with confidences
``c`` and outcomes ``o`` (1 = event happened / prediction correct), ``acc(S)`` is the mean of
``o`` over ``S`` and ``conf(S)`` the mean of ``c`` over ``S``.

===================  ==========================================================================
``ece``              top-label expected calibration error: confidence ``c[i] = max_k p[i, k]``,
                     outcome ``o[i] = 1[argmax_k p[i, k] = y[i]]`` (the first maximum on ties);
                     ``ECE = sum_b |S_b| / n * |acc(S_b) - conf(S_b)|`` over the non-empty bins
``classwise_ece``    mean over the ``C`` classes of the same binned error computed with
                     ``c[i] = p[i, k]`` and ``o[i] = 1[y[i] = k]`` (every class counts, also one
                     absent from the labels)
``brier``            multi-class Brier score ``1/n sum_i sum_k (p[i, k] - 1[y[i] = k])^2``
                     (0 = perfect, 2 = worst); the sum of the per-class Brier scores
per-class Brier      ``1/n sum_i (p[i, k] - 1[y[i] = k])^2``, scikit-learn's
                     ``brier_score_loss(y == k, p[:, k])``
``nll``              negative log-likelihood ``-1/n sum_i log(max(p[i, y[i]], eps))`` with
                     ``eps =`` :data:`NLL_EPSILON` (natural log; a zero probability of the true
                     class counts as ``-log(eps)`` ~ 34.5 instead of infinity)
===================  ==========================================================================

With no samples every metric is NaN. The reliability diagram (:func:`reliability_bins`) is the
top-label binning above: per bin its edges, sample count, mean confidence and accuracy (NaN
for an empty bin).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_ECE_BINS = 15
#: Lower clip of the true-class probability in :func:`nll`.
NLL_EPSILON = 1e-15
CALIBRATION_KEYS = ('ece', 'classwise_ece', 'brier', 'nll')


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if scores.ndim != 2 or labels.shape != (scores.shape[0], ):
        raise ValueError(f'scores must be [n, C] and labels [n]; got {scores.shape} and '
                         f'{labels.shape}')
    if len(labels) and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f'a label is outside 0..{scores.shape[1] - 1}')
    return labels, scores


def _check_bins(n_bins: int) -> None:
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f'the number of bins must be a positive integer, got {n_bins}')


def bin_index(confidence: np.ndarray, n_bins: int = DEFAULT_ECE_BINS) -> np.ndarray:
    """Bin of each confidence: ``b`` with ``b/B < c <= (b+1)/B``; 0 for ``c = 0`` (values
    outside [0, 1] go to the first or last bin)."""
    _check_bins(n_bins)
    edges = np.arange(n_bins + 1) / n_bins  # correctly rounded b / B
    index = np.searchsorted(edges, np.asarray(confidence, np.float64), side='left') - 1
    return np.clip(index, 0, n_bins - 1)


def _binned_error(confidence: np.ndarray, outcome: np.ndarray, n_bins: int) -> float:
    """``sum_b |S_b| / n * |mean(outcome) - mean(confidence)|`` over the non-empty bins."""
    n = len(confidence)
    if not n:
        return math.nan
    index = bin_index(confidence, n_bins)
    count = np.bincount(index, minlength=n_bins)
    gap = np.abs(np.bincount(index, outcome, n_bins) - np.bincount(index, confidence, n_bins))
    # |S_b| / n * |sum(o)/|S_b| - sum(c)/|S_b|| = |sum(o) - sum(c)| / n
    return float(gap[count > 0].sum() / n)


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray,
                               n_bins: int = DEFAULT_ECE_BINS) -> float:
    """Top-label ECE (see the module docstring)."""
    labels, scores = _check(labels, scores)
    if not len(labels):
        return math.nan
    correct = (scores.argmax(1) == labels).astype(np.float64)
    return _binned_error(scores.max(1), correct, n_bins)


def classwise_ece(labels: np.ndarray, scores: np.ndarray,
                  n_bins: int = DEFAULT_ECE_BINS) -> float:
    """Class-wise ECE: mean over classes of the binned error of ``p[:, k]`` against
    ``1[y = k]`` (see the module docstring)."""
    labels, scores = _check(labels, scores)
    if not len(labels):
        return math.nan
    return float(np.mean([_binned_error(scores[:, k], (labels == k).astype(np.float64), n_bins)
                          for k in range(scores.shape[1])]))


def class_brier(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-class Brier score ``[C]``: ``mean_i (p[i, k] - 1[y[i] = k])^2`` (NaN without
    samples)."""
    labels, scores = _check(labels, scores)
    if not len(labels):
        return np.full(scores.shape[1], np.nan)
    onehot = np.eye(scores.shape[1])[labels]
    return ((scores - onehot)**2).mean(0)


def brier_score(labels: np.ndarray, scores: np.ndarray) -> float:
    """Multi-class Brier score: ``mean_i sum_k (p[i, k] - 1[y[i] = k])^2``."""
    return float(class_brier(labels, scores).sum())


def nll(labels: np.ndarray, scores: np.ndarray, eps: float = NLL_EPSILON) -> float:
    """Mean negative log-likelihood of the true class, probabilities clipped below at ``eps``."""
    labels, scores = _check(labels, scores)
    if not len(labels):
        return math.nan
    true = scores[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(true, eps, None)).mean())


def calibration_metrics(labels: np.ndarray, scores: np.ndarray,
                        n_bins: int = DEFAULT_ECE_BINS) -> dict:
    """:data:`CALIBRATION_KEYS` -> float."""
    return dict(ece=expected_calibration_error(labels, scores, n_bins),
                classwise_ece=classwise_ece(labels, scores, n_bins),
                brier=brier_score(labels, scores), nll=nll(labels, scores))


@dataclass
class ReliabilityBins:
    """Top-label reliability diagram data, one entry per bin.

    Attributes:
        edges: ``[B + 1]`` bin edges ``b / B``.
        count: ``[B]`` samples per bin.
        confidence: ``[B]`` mean top-label confidence (NaN for an empty bin).
        accuracy: ``[B]`` fraction of correct predictions (NaN for an empty bin).
        ece: Top-label ECE of the same binning.
    """
    edges: np.ndarray
    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    ece: float


def reliability_bins(labels: np.ndarray, scores: np.ndarray,
                     n_bins: int = DEFAULT_ECE_BINS) -> ReliabilityBins:
    """Per-bin count, mean confidence and accuracy of the top-label prediction."""
    labels, scores = _check(labels, scores)
    _check_bins(n_bins)
    confidence = scores.max(1) if len(labels) else np.zeros(0)
    correct = (scores.argmax(1) == labels).astype(np.float64) if len(labels) else np.zeros(0)
    index = bin_index(confidence, n_bins)
    count = np.bincount(index, minlength=n_bins)
    with np.errstate(invalid='ignore', divide='ignore'):
        mean_conf = np.where(count > 0, np.bincount(index, confidence, n_bins) / count, np.nan)
        accuracy = np.where(count > 0, np.bincount(index, correct, n_bins) / count, np.nan)
    return ReliabilityBins(np.arange(n_bins + 1) / n_bins, count, mean_conf, accuracy,
                           _binned_error(confidence, correct, n_bins))
