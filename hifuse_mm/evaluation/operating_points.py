"""Operating points: sensitivity / specificity at fixed targets, PR curves, chosen thresholds.

Everything here is a pure function of labels and scores (numpy, scikit-learn). Binary tasks use
the positive class's score (``pos_label``, default 1); multi-class tasks are evaluated one class
against the rest, class ``c`` being positive and its score ``scores[:, c]``.

Definitions (``y`` the 0/1 positive indicator, ``s`` the positive score, a threshold ``t``
calls a sample positive iff ``s >= t``):

* The ROC operating points are those of ``sklearn.metrics.roc_curve(y, s,
  drop_intermediate=False)``: one per distinct score (``t`` = that score) plus ``t = +inf``
  (nothing positive). Sensitivity = TP / (TP + FN) = TPR; specificity = TN / (TN + FP) = 1 - FPR.
* **Sensitivity at specificity S** (:func:`sensitivity_at_specificity`): the largest
  sensitivity among the ROC points whose specificity is ``>= S``; always defined when both
  classes occur (the ``+inf`` point has specificity 1), NaN otherwise. It is what a threshold
  rule can reach without dropping below specificity S; no interpolation between points.
* **Specificity at sensitivity S** (:func:`specificity_at_sensitivity`): the largest
  specificity among the ROC points whose sensitivity is ``>= S`` (the lowest threshold, calling
  everything positive, has sensitivity 1); NaN unless both classes occur.
  Both comparisons allow a ``1e-12`` rounding tolerance.
* **Average precision** (:func:`average_precision`): ``sklearn.metrics.average_precision_score``,
  i.e. ``sum_k (R_k - R_{k-1}) P_k`` over the precision-recall curve's thresholds (step-wise, no
  interpolation); NaN when there is no positive. :func:`pr_curve` returns
  ``sklearn.metrics.precision_recall_curve``'s precision, recall and thresholds with it.
* **Intervals** (:func:`operating_points` with ``resamples > 0``): percentile bootstrap with
  :func:`hifuse_mm.evaluation.bootstrap.resample_indices` / ``percentile_interval`` (seeded;
  one set of resamples shared by every class and key). A resample with a single class has no
  defined value and is left out; ``valid_resamples`` says how many were used.

Threshold selection and its use are two separate steps, so the split that is reported never
chooses anything: :func:`choose_threshold` sees the *validation* labels and scores and returns
a threshold (a number); :func:`apply_threshold` takes the *test* labels and scores plus that
number and only counts. Methods of :func:`choose_threshold`:

* ``'youden'``: the ROC point maximising Youden's J = sensitivity + specificity - 1; ties go to
  the highest threshold (the fewest positive calls).
* ``target_specificity=S``: the point of :func:`sensitivity_at_specificity` (the largest
  sensitivity with specificity ``>= S``; among points with that sensitivity the highest
  threshold, which has the highest specificity).

The chosen threshold is a score that occurred on the validation split (or ``+inf``, meaning
"never positive", when no finite point qualifies better). :func:`apply_threshold` reports
TP/FP/TN/FN, sensitivity, specificity, PPV = TP / (TP + FP) and NPV = TN / (TN + FN); a 0/0
ratio is NaN.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve

from .bootstrap import check_bootstrap_args, percentile_interval, resample_indices

DEFAULT_SPECIFICITIES = (0.90, 0.95)
DEFAULT_SENSITIVITIES = (0.90, 0.95)
_TOL = 1e-12


def _binary(y_true, y_score) -> Tuple[np.ndarray, np.ndarray]:
    """Validated ``(bool labels, float scores)``, both 1-D of one length."""
    y = np.asarray(y_true)
    s = np.asarray(y_score, np.float64)
    if y.ndim != 1 or s.ndim != 1 or len(y) != len(s):
        raise ValueError(f'labels {y.shape} and scores {s.shape} must be 1-D of one length')
    if len(y) and not np.isin(y, (0, 1)).all():
        raise ValueError('binary labels must be 0/1 (or bool)')
    if not np.isfinite(s).all():
        raise ValueError('scores must be finite')
    return y.astype(bool), s


def _check_target(target: float) -> None:
    if not 0 <= target <= 1:
        raise ValueError(f'a target sensitivity / specificity must be in [0, 1], got {target}')


def _roc(y: np.ndarray, s: np.ndarray):
    """``(specificity, sensitivity, thresholds)`` of every ROC point, thresholds decreasing;
    None when a class is missing."""
    if y.all() or not y.any():
        return None
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    return 1.0 - fpr, tpr, thresholds


def sensitivity_at_specificity(y_true, y_score, target: float) -> float:
    """The largest ROC sensitivity with specificity ``>= target`` (NaN with a single class)."""
    _check_target(target)
    roc = _roc(*_binary(y_true, y_score))
    if roc is None:
        return math.nan
    spec, sens, _ = roc
    return float(sens[spec >= target - _TOL].max())


def specificity_at_sensitivity(y_true, y_score, target: float) -> float:
    """The largest ROC specificity with sensitivity ``>= target`` (NaN with a single class)."""
    _check_target(target)
    roc = _roc(*_binary(y_true, y_score))
    if roc is None:
        return math.nan
    spec, sens, _ = roc
    return float(spec[sens >= target - _TOL].max())


def average_precision(y_true, y_score) -> float:
    """``sklearn.metrics.average_precision_score`` (NaN when there is no positive)."""
    y, s = _binary(y_true, y_score)
    if not y.any():
        return math.nan
    return float(average_precision_score(y, s))


def pr_curve(y_true, y_score) -> Dict[str, object]:
    """``{'precision', 'recall', 'thresholds', 'average_precision'}`` from
    ``sklearn.metrics.precision_recall_curve`` (arrays; all None / NaN without positives)."""
    y, s = _binary(y_true, y_score)
    if not y.any():
        return dict(precision=None, recall=None, thresholds=None, average_precision=math.nan)
    precision, recall, thresholds = precision_recall_curve(y, s)
    return dict(precision=precision, recall=recall, thresholds=thresholds,
                average_precision=float(average_precision_score(y, s)))


def _key(kind: str, target: float) -> str:
    return f'{kind}_{target:.2f}'


def binary_operating_points(y_true, y_score,
                            specificities: Sequence[float] = DEFAULT_SPECIFICITIES,
                            sensitivities: Sequence[float] = DEFAULT_SENSITIVITIES
                            ) -> Dict[str, float]:
    """``{'sensitivity_at_specificity_0.90': ..., 'specificity_at_sensitivity_0.90': ...,
    'average_precision': ...}`` for every target (NaN where undefined)."""
    for target in (*specificities, *sensitivities):
        _check_target(target)
    y, s = _binary(y_true, y_score)
    roc = _roc(y, s)
    result: Dict[str, float] = {}
    for target in specificities:
        result[_key('sensitivity_at_specificity', target)] = (
            math.nan if roc is None else float(roc[1][roc[0] >= target - _TOL].max()))
    for target in sensitivities:
        result[_key('specificity_at_sensitivity', target)] = (
            math.nan if roc is None else float(roc[0][roc[1] >= target - _TOL].max()))
    result['average_precision'] = (float(average_precision_score(y, s)) if y.any()
                                   else math.nan)
    return result


def _check_multiclass(labels, scores) -> Tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f'scores must be [n, num_classes >= 2], got shape {scores.shape}')
    if labels.shape != (len(scores), ):
        raise ValueError(f'labels {labels.shape} must be ({len(scores)},)')
    if len(labels) and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f'a label is outside 0..{scores.shape[1] - 1}')
    return labels.astype(np.int64), scores


def evaluated_classes(num_classes: int, pos_label: int = 1) -> Tuple[int, ...]:
    """The classes taken as positive: ``(pos_label,)`` for a binary task, all otherwise."""
    if num_classes == 2:
        if pos_label not in (0, 1):
            raise ValueError(f'pos_label must be 0 or 1, got {pos_label}')
        return (pos_label, )
    return tuple(range(num_classes))


def operating_points(labels, scores, pos_label: int = 1,
                     class_names: Optional[Sequence[str]] = None,
                     specificities: Sequence[float] = DEFAULT_SPECIFICITIES,
                     sensitivities: Sequence[float] = DEFAULT_SENSITIVITIES,
                     resamples: int = 0, seed: int = 0,
                     confidence: float = 0.95) -> Dict[str, Dict[str, object]]:
    """:func:`binary_operating_points` of the positive class (binary) or of every class against
    the rest (multi-class), with bootstrap intervals when ``resamples > 0``.

    Args:
        labels: ``[n]`` class indices; scores: ``[n, C]`` class scores (probabilities).

    Returns:
        ``{class_name: {key: value, ..., 'intervals': {key: {'low', 'high',
        'valid_resamples'}}}}``; ``'intervals'`` only with ``resamples > 0``, together with
        ``'bootstrap': {'resamples', 'seed', 'confidence'}`` under each class.
    """
    labels, scores = _check_multiclass(labels, scores)
    num_classes = scores.shape[1]
    names = list(class_names) if class_names is not None else [str(c)
                                                             for c in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f'{len(names)} class names for {num_classes} classes')
    classes = evaluated_classes(num_classes, pos_label)
    if resamples:
        check_bootstrap_args(resamples, confidence)
    result: Dict[str, Dict[str, object]] = {}
    for c in classes:
        result[names[c]] = dict(binary_operating_points(labels == c, scores[:, c],
                                                        specificities, sensitivities))
    if not resamples:
        return result
    samples = {c: {key: [] for key in result[names[c]]} for c in classes}
    n = len(labels)
    for chunk in resample_indices(np.random.default_rng(seed), n, resamples):
        for idx in chunk:
            y, s = labels[idx], scores[idx]
            for c in classes:
                values = (binary_operating_points(y == c, s[:, c], specificities, sensitivities)
                          if n else {key: math.nan for key in samples[c]})
                for key, value in values.items():
                    samples[c][key].append(value)
    for c in classes:
        intervals = {}
        for key, values in samples[c].items():
            low, high, valid = percentile_interval(np.array(values), confidence)
            intervals[key] = dict(low=low, high=high, valid_resamples=valid)
        result[names[c]]['intervals'] = intervals
        result[names[c]]['bootstrap'] = dict(resamples=resamples, seed=seed,
                                             confidence=confidence)
    return result


@dataclass(frozen=True)
class ThresholdChoice:
    """A threshold chosen on one split (``positive iff score >= threshold``).

    Attributes:
        threshold: The chosen score (``inf``: never positive).
        method: ``'youden'`` or ``'target_specificity'``.
        target: The target specificity (None for Youden).
        sensitivity, specificity: On the split that chose it (not an estimate for another).
    """
    threshold: float
    method: str
    target: Optional[float]
    sensitivity: float
    specificity: float

    def to_dict(self) -> Dict[str, object]:
        return asdict(self)


def choose_threshold(val_labels, val_scores, method: str = 'youden',
                     target_specificity: Optional[float] = None) -> ThresholdChoice:
    """Choose a threshold on the validation split (see the module docstring for the rules).

    ``method='youden'`` maximises Youden's J; ``target_specificity=S`` (implies
    ``method='target_specificity'``) maximises sensitivity subject to specificity ``>= S``.
    Raises ``ValueError`` when the split lacks positives or negatives.
    """
    if target_specificity is not None:
        method = 'target_specificity'
        _check_target(target_specificity)
    if method not in ('youden', 'target_specificity'):
        raise ValueError(f"method must be 'youden' or 'target_specificity', got {method!r}")
    if method == 'target_specificity' and target_specificity is None:
        raise ValueError('method target_specificity needs target_specificity')
    roc = _roc(*_binary(val_labels, val_scores))
    if roc is None:
        raise ValueError('choosing a threshold needs positives and negatives in the split')
    spec, sens, thresholds = roc
    if method == 'youden':
        index = int(np.argmax(sens + spec - 1))  # first maximum = highest threshold
    else:
        allowed = spec >= target_specificity - _TOL  # a prefix: specificity only decreases
        best = sens[allowed].max()
        index = int(np.flatnonzero(allowed & (sens == best))[0])
    return ThresholdChoice(threshold=float(thresholds[index]), method=method,
                           target=target_specificity, sensitivity=float(sens[index]),
                           specificity=float(spec[index]))


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def apply_threshold(test_labels, test_scores, threshold: float) -> Dict[str, float]:
    """Counts and rates on a split at a fixed ``threshold`` (chosen elsewhere).

    Returns:
        ``{'threshold', 'tp', 'fp', 'tn', 'fn', 'sensitivity', 'specificity', 'ppv', 'npv'}``
        (counts are ints; a 0/0 ratio is NaN).
    """
    if isinstance(threshold, ThresholdChoice):
        threshold = threshold.threshold
    threshold = float(threshold)
    if math.isnan(threshold):
        raise ValueError('threshold is NaN')
    y, s = _binary(test_labels, test_scores)
    called = s >= threshold
    tp = int(np.sum(called & y))
    fp = int(np.sum(called & ~y))
    tn = int(np.sum(~called & ~y))
    fn = int(np.sum(~called & y))
    return dict(threshold=threshold, tp=tp, fp=fp, tn=tn, fn=fn,
                sensitivity=_ratio(tp, tp + fn), specificity=_ratio(tn, tn + fp),
                ppv=_ratio(tp, tp + fp), npv=_ratio(tn, tn + fn))


def choose_class_thresholds(val_labels, val_scores, pos_label: int = 1,
                            method: str = 'youden',
                            target_specificity: Optional[float] = None
                            ) -> Dict[int, ThresholdChoice]:
    """:func:`choose_threshold` for the positive class (binary) or each class against the
    rest (multi-class) on the validation split: ``{class index: ThresholdChoice}``."""
    labels, scores = _check_multiclass(val_labels, val_scores)
    return {c: choose_threshold(labels == c, scores[:, c], method, target_specificity)
            for c in evaluated_classes(scores.shape[1], pos_label)}


def apply_class_thresholds(test_labels, test_scores,
                           thresholds: Dict[int, float]) -> Dict[int, Dict[str, float]]:
    """:func:`apply_threshold` of each class's fixed threshold (``{class index: threshold or
    ThresholdChoice}``, from :func:`choose_class_thresholds` on another split) to the test
    split, one class against the rest."""
    labels, scores = _check_multiclass(test_labels, test_scores)
    for c in thresholds:
        if not 0 <= c < scores.shape[1]:
            raise ValueError(f'class index {c} is outside 0..{scores.shape[1] - 1}')
    return {c: apply_threshold(labels == c, scores[:, c], t) for c, t in thresholds.items()}
