"""Paired significance tests of two classifiers on the same test images.

* :func:`mcnemar_exact` — McNemar's exact test of equal accuracy. Of the images exactly one
  of the two models classifies correctly, ``b`` are right only for model A and ``c`` only for
  model B; under the null hypothesis (equal accuracy) each such image is A's with probability
  1/2, so ``b ~ Binomial(b + c, 1/2)``. The two-sided p-value is
  ``min(1, 2 * P(X <= min(b, c)))``, ``X ~ Binomial(b + c, 1/2)`` (1 when ``b + c = 0``),
  computed exactly with integers; it equals ``scipy.stats.binomtest(b, b + c, 0.5).pvalue``.
* :func:`paired_bootstrap` — the paired (percentile) bootstrap of a metric difference
  ``A - B``. Each of ``resamples`` rounds draws ``n`` test images with replacement (a seeded
  ``numpy.random.Generator``, the same images for both models) and recomputes accuracy, macro
  F1 and AUC of both models on them (the resampling and the percentile interval are those of
  :mod:`hifuse_mm.evaluation.bootstrap`), with the definitions of
  :mod:`hifuse_mm.evaluation.functional` (checked against it in the tests). It reports the
  observed difference on the whole test set, the percentile confidence interval of the
  resampled differences and the two-sided p-value

      p = (1 + #{rounds with |d* - d| >= |d|}) / (1 + valid rounds)

  where ``d`` is the observed difference and ``d*`` a resampled one: the bootstrap
  distribution shifted to the null hypothesis ``A - B = 0`` (Hall & Wilson, 1991), with the
  usual +1 so that a finite number of rounds never gives ``p = 0``. ``p = 1`` when ``d = 0``.
  A round in which a metric is undefined (AUC of a resample holding a single class) is left out
  of that metric's interval and p-value; how many rounds were used is reported.

The resampled metrics are computed for all rounds at once from per-image multiplicities
(``counts[r, i]`` = how often image ``i`` was drawn in round ``r``), so 10,000 rounds on a few
thousand images take seconds. The result depends only on the seed and the number of rounds.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Dict, Iterator, Sequence, Tuple

import numpy as np

from ..evaluation.bootstrap import check_bootstrap_args, percentile_interval, resample_indices

BOOTSTRAP_METRICS = ('accuracy', 'f1_macro', 'auc')
_CELLS_PER_CHUNK = 4_000_000  # rounds x images held in memory at once


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts ``b`` and ``c``.

    Args:
        b: Images model A classifies correctly and model B wrongly.
        c: Images model B classifies correctly and model A wrongly.
    """
    if b < 0 or c < 0 or int(b) != b or int(c) != c:
        raise ValueError(f'discordant counts must be non-negative integers, got b={b}, c={c}')
    b, c = int(b), int(c)
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2**n)))


def discordant_counts(correct_a: np.ndarray, correct_b: np.ndarray) -> Tuple[int, int]:
    """``(b, c)``: images only A gets right, images only B gets right."""
    correct_a = np.asarray(correct_a, bool)
    correct_b = np.asarray(correct_b, bool)
    if correct_a.shape != correct_b.shape:
        raise ValueError(f'shapes differ: {correct_a.shape} vs {correct_b.shape}')
    return int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))


# --------------------------------------------------------------------------- weighted metrics
# Each takes ``counts`` [rounds, n] (multiplicity of every image in each round) and returns
# the metric for every round, [rounds]. With all counts 1 they are the plain metrics.

def weighted_accuracy(counts: np.ndarray, labels: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """Accuracy of each round."""
    total = counts.sum(1)
    with np.errstate(invalid='ignore', divide='ignore'):
        return (counts @ (labels == preds).astype(np.float64)) / total


def weighted_macro_f1(counts: np.ndarray, labels: np.ndarray, preds: np.ndarray,
                      num_classes: int) -> np.ndarray:
    """Macro F1 of each round over the classes in its labels or predictions (0/0 -> 0).

    Per class ``F1 = 2 TP / (support + predicted)``; a class with ``support + predicted = 0``
    in a round is left out of that round's mean (scikit-learn's ``average='macro'``).
    """
    classes = np.arange(num_classes)
    true = (labels[:, None] == classes).astype(np.float64)          # [n, C]
    pred = (preds[:, None] == classes).astype(np.float64)
    tp = counts @ (true * pred)                                       # [R, C]
    denom = counts @ true + counts @ pred
    present = denom > 0
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=present)
    with np.errstate(invalid='ignore', divide='ignore'):
        return f1.sum(1) / present.sum(1)


def _weighted_binary_auc(counts: np.ndarray, positive: np.ndarray,
                         score: np.ndarray) -> np.ndarray:
    """ROC AUC of ``score`` for ``positive`` in each round (NaN without positives or negatives).

    Mann-Whitney form: the weight of (positive, negative) pairs ranked correctly, ties counted
    one half, over the weight of all such pairs; equal to the trapezoidal ROC area.
    """
    order = np.argsort(score, kind='stable')
    sorted_score = score[order]
    starts = np.flatnonzero(np.r_[True, sorted_score[1:] != sorted_score[:-1]])
    w = counts[:, order]
    pos = positive[order].astype(np.float64)
    pos_w = np.add.reduceat(w * pos, starts, axis=1)                  # [R, groups]
    neg_w = np.add.reduceat(w * (1 - pos), starts, axis=1)
    neg_below = np.cumsum(neg_w, axis=1) - neg_w
    numerator = (pos_w * (neg_below + 0.5 * neg_w)).sum(1)
    pairs = pos_w.sum(1) * neg_w.sum(1)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(pairs > 0, numerator / np.where(pairs > 0, pairs, 1), np.nan)


def weighted_auc(counts: np.ndarray, labels: np.ndarray, scores: np.ndarray,
                 pos_label: int = 1) -> np.ndarray:
    """The summary AUC of each round (see :func:`hifuse_mm.evaluation.functional.auc_score`).

    Two classes: AUC of class ``pos_label``'s score. More: mean one-vs-rest AUC over the
    classes with positives and negatives in the round. NaN where no class qualifies.
    """
    num_classes = scores.shape[1]
    if num_classes == 2:
        return _weighted_binary_auc(counts, labels == pos_label, scores[:, pos_label])
    per_class = np.stack([_weighted_binary_auc(counts, labels == k, scores[:, k])
                          for k in range(num_classes)], axis=1)
    valid = np.isfinite(per_class)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(valid, per_class, 0).sum(1) / valid.sum(1)


def _round_counts(rng: np.random.Generator, n: int, rounds: int) -> Iterator[np.ndarray]:
    """Multiplicity matrices of ``rounds`` resamples of ``n`` images, in chunks of at most
    :data:`_CELLS_PER_CHUNK` cells (the resamples of
    :func:`hifuse_mm.evaluation.bootstrap.resample_indices`)."""
    per_chunk = max(1, _CELLS_PER_CHUNK // max(n, 1))
    for idx in resample_indices(rng, n, rounds, per_chunk):
        rows = len(idx)
        flat = (idx + (np.arange(rows) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


@dataclass
class PairedDifference:
    """A metric of models A and B on the whole test set and the paired bootstrap of A - B.

    Attributes:
        metric: ``accuracy``, ``f1_macro`` or ``auc``.
        a, b: The metric of A and of B on the whole test set (NaN if undefined).
        difference: ``a - b``.
        low, high: Percentile confidence interval of the difference (NaN if no valid round).
        p_value: Two-sided bootstrap p-value (module docstring; NaN if no valid round).
        confidence: Interval level, e.g. 0.95.
        resamples: Rounds drawn.
        valid_resamples: Rounds in which the metric was defined for both models.
        seed: Seed of the generator.
    """
    metric: str
    a: float
    b: float
    difference: float
    low: float
    high: float
    p_value: float
    confidence: float
    resamples: int
    valid_resamples: int
    seed: int

    def to_dict(self) -> Dict[str, object]:
        """Plain dict; NaN as None (JSON)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in asdict(self).items()}


def _metric(name: str, counts: np.ndarray, labels: np.ndarray, preds: np.ndarray,
            scores: np.ndarray, pos_label: int) -> np.ndarray:
    if name == 'accuracy':
        return weighted_accuracy(counts, labels, preds)
    if name == 'f1_macro':
        return weighted_macro_f1(counts, labels, preds, scores.shape[1])
    if name == 'auc':
        return weighted_auc(counts, labels, scores, pos_label)
    raise ValueError(f'unknown metric {name!r}; choose from {BOOTSTRAP_METRICS}')


def _check(labels: np.ndarray, preds: np.ndarray, scores: np.ndarray, which: str) -> None:
    if scores.ndim != 2 or scores.shape[0] != len(labels) or preds.shape != labels.shape:
        raise ValueError(f'model {which}: {len(labels)} labels, predictions of shape '
                         f'{preds.shape} and scores of shape {scores.shape} do not match')
    num_classes = scores.shape[1]
    for name, values in (('label', labels), ('prediction', preds)):
        if len(values) and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f'model {which}: a {name} is outside 0..{num_classes - 1}')


def paired_bootstrap(labels: Sequence[int],
                     preds_a: Sequence[int], scores_a: np.ndarray,
                     preds_b: Sequence[int], scores_b: np.ndarray,
                     metrics: Sequence[str] = BOOTSTRAP_METRICS,
                     resamples: int = 10000, seed: int = 0, confidence: float = 0.95,
                     pos_label: int = 1) -> Dict[str, PairedDifference]:
    """Paired bootstrap of ``metric(A) - metric(B)`` on the same test images.

    Args:
        labels: True class of every test image, ``[n]``.
        preds_a, preds_b: Predicted classes of models A and B, ``[n]``, same image order.
        scores_a, scores_b: Class probabilities of A and B, ``[n, C]``.
        metrics: Any of :data:`BOOTSTRAP_METRICS`.
        resamples: Bootstrap rounds (>= 1).
        seed: Seed of ``numpy.random.default_rng``.
        confidence: Level of the percentile interval, in (0, 1).
        pos_label: Positive class of the binary AUC (two classes only).

    Returns:
        ``{metric: PairedDifference}``.
    """
    labels = np.asarray(labels, np.int64).reshape(-1)
    preds_a = np.asarray(preds_a, np.int64).reshape(-1)
    preds_b = np.asarray(preds_b, np.int64).reshape(-1)
    scores_a = np.asarray(scores_a, np.float64)
    scores_b = np.asarray(scores_b, np.float64)
    _check(labels, preds_a, scores_a, 'A')
    _check(labels, preds_b, scores_b, 'B')
    if scores_a.shape != scores_b.shape:
        raise ValueError(f'scores of A {scores_a.shape} and B {scores_b.shape} differ in shape')
    check_bootstrap_args(resamples, confidence)
    if scores_a.shape[1] == 2 and pos_label not in (0, 1):
        raise ValueError(f'pos_label must be 0 or 1 for two classes, got {pos_label}')
    for name in metrics:
        if name not in BOOTSTRAP_METRICS:
            raise ValueError(f'unknown metric {name!r}; choose from {BOOTSTRAP_METRICS}')
    n = len(labels)
    if n == 0:
        raise ValueError('no test images to compare')

    ones = np.ones((1, n))
    observed = {name: (float(_metric(name, ones, labels, preds_a, scores_a, pos_label)[0]),
                       float(_metric(name, ones, labels, preds_b, scores_b, pos_label)[0]))
                for name in metrics}
    diffs = {name: [] for name in metrics}
    rng = np.random.default_rng(seed)
    for counts in _round_counts(rng, n, resamples):
        for name in metrics:
            diffs[name].append(_metric(name, counts, labels, preds_a, scores_a, pos_label)
                               - _metric(name, counts, labels, preds_b, scores_b, pos_label))

    result = {}
    for name in metrics:
        a, b = observed[name]
        d = a - b
        values = np.concatenate(diffs[name])
        values = values[np.isfinite(values)]
        if len(values) and math.isfinite(d):
            low, high, _ = percentile_interval(values, confidence)
            # Rounding noise in d* - d must not count as "as extreme as d" when d = 0.
            extreme = np.abs(values - d) >= abs(d) - 1e-12
            p_value = 1.0 if d == 0 else float((1 + extreme.sum()) / (1 + len(values)))
        else:
            low = high = p_value = math.nan
        result[name] = PairedDifference(
            metric=name, a=a, b=b, difference=d, low=low, high=high, p_value=p_value,
            confidence=confidence, resamples=resamples, valid_resamples=int(len(values)),
            seed=seed)
    return result

