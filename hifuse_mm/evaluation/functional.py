"""Medical classification metrics from labels, predictions and class scores (scikit-learn).

Definitions (``n`` samples, ``C`` classes; scores are the model's softmax probabilities):

================================  ===============================================================
``accuracy``                      fraction of correct predictions
``balanced_accuracy``             mean recall over the classes present in the labels
``precision/recall/f1_macro``     unweighted mean over the classes that occur in the labels or
                                  the predictions (scikit-learn's default label set; a class
                                  in neither is left out); a 0/0 ratio counts as 0
``mcc``                           Matthews correlation coefficient (multi-class R_K); 0 when
                                  undefined (one class in labels and predictions), as sklearn
``kappa``                         Cohen's kappa (unweighted); NaN when undefined, as sklearn
``auc``                           binary: ROC AUC of the positive class's score (``pos_label``,
                                  default 1); multi-class: mean one-vs-rest ROC AUC over the
                                  classes with both positives and negatives in the labels
                                  (equal to sklearn's ``multi_class='ovr'`` macro AUC when every
                                  class is present); NaN when no class qualifies
``ece``, ``classwise_ece``        top-label and class-wise expected calibration error
                                  (``ece_bins`` equal-width confidence bins, default 15)
``brier``, ``nll``                multi-class Brier score and negative log-likelihood of the
                                  probabilities (definitions in
                                  :mod:`hifuse_mm.evaluation.calibration`)
================================  ===============================================================

The per-class table has precision, recall (= sensitivity), specificity (TN / (TN + FP)), F1,
one-vs-rest AUC, Brier score (``mean_i (p_ik - 1[y_i = k])^2``) and support for every class.
Where a ratio is 0/0 (precision of a class never predicted, recall of a class absent from the
labels, specificity when every sample is of that class, AUC without positives or negatives) the
table holds NaN; the macro averages above count
such a 0/0 as 0 over the classes in labels or predictions, scikit-learn's convention (and the
one behind the papers' ``classification_report`` numbers). Degenerate inputs never raise:
they give these defined values plus a message in :attr:`Evaluation.warnings`.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, cohen_kappa_score,
                             confusion_matrix, f1_score, matthews_corrcoef,
                             precision_recall_fscore_support, roc_auc_score)

from .calibration import CALIBRATION_KEYS, DEFAULT_ECE_BINS, calibration_metrics, class_brier

SUMMARY_KEYS = ('accuracy', 'balanced_accuracy', 'precision_macro', 'recall_macro', 'f1_macro',
                'mcc', 'kappa', 'auc', *CALIBRATION_KEYS)
PER_CLASS_KEYS = ('precision', 'recall', 'specificity', 'f1', 'auc', 'brier', 'support')


@dataclass
class Evaluation:
    """Everything computed from one set of predictions.

    Attributes:
        summary: :data:`SUMMARY_KEYS` -> float (NaN where undefined).
        per_class: class name -> {:data:`PER_CLASS_KEYS` -> value} (support is an int).
        confusion: ``[C, C]`` counts, rows = true class, columns = predicted class.
        classes: Class names in label order.
        warnings: Messages about undefined or degenerate values.
    """
    summary: Dict[str, float]
    per_class: Dict[str, Dict[str, float]]
    confusion: np.ndarray
    classes: List[str]
    warnings: List[str] = field(default_factory=list)


def _quiet(func, *args, **kwargs):
    """Call a sklearn metric without its own warnings (we report degenerate cases ourselves)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return func(*args, **kwargs)


def check_inputs(labels: np.ndarray, preds: np.ndarray, scores: np.ndarray) -> None:
    """Shapes and label ranges; raises ``ValueError`` with what is wrong."""
    if scores.ndim != 2:
        raise ValueError(f'scores must be [n, num_classes], got shape {scores.shape}')
    n, num_classes = scores.shape
    if labels.shape != (n, ) or preds.shape != (n, ):
        raise ValueError(f'labels {labels.shape} and predictions {preds.shape} must be ({n},)')
    for name, values in (('label', labels), ('prediction', preds)):
        if n and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f'a {name} is outside 0..{num_classes - 1} '
                             f'({num_classes} score columns)')


def class_auc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC AUC per class; NaN for a class without positives or negatives."""
    result = np.full(scores.shape[1], np.nan)
    for k in range(scores.shape[1]):
        positive = labels == k
        if 0 < positive.sum() < len(labels):
            result[k] = roc_auc_score(positive, scores[:, k])
    return result


def auc_score(labels: np.ndarray, scores: np.ndarray, pos_label: int = 1) -> float:
    """The summary AUC (see the module docstring)."""
    if scores.shape[1] == 2:
        positive = labels == pos_label
        if 0 < positive.sum() < len(labels):
            return float(roc_auc_score(positive, scores[:, pos_label]))
        return math.nan
    per_class = class_auc(labels, scores)
    return float(np.nanmean(per_class)) if np.isfinite(per_class).any() else math.nan


def macro_f1(labels: np.ndarray, preds: np.ndarray) -> float:
    """Macro F1 over the classes in labels or predictions (0/0 counts as 0)."""
    return float(_quiet(f1_score, labels, preds, average='macro', zero_division=0.0))


def evaluate_predictions(labels: Sequence[int],
                         scores: np.ndarray,
                         preds: Optional[Sequence[int]] = None,
                         classes: Optional[Sequence[str]] = None,
                         pos_label: int = 1,
                         ece_bins: int = DEFAULT_ECE_BINS) -> Evaluation:
    """Compute the summary metrics, the per-class table and the confusion matrix.

    Args:
        labels: True class indices, ``[n]``.
        scores: Class probabilities, ``[n, C]`` (any float dtype; computed in float64).
        preds: Predicted classes, ``[n]``; default ``argmax(scores)``.
        classes: Class names (default ``'0'``, ``'1'``, ...).
        pos_label: Positive class of the binary AUC (two classes only).
        ece_bins: Number of equal-width confidence bins of the two ECEs.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    preds = scores.argmax(1) if preds is None else np.asarray(preds, np.int64).reshape(-1)
    check_inputs(labels, preds, scores)
    n, num_classes = scores.shape
    names = [str(c) for c in classes] if classes is not None else \
        [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f'{len(names)} class names for {num_classes} score columns')
    if num_classes == 2 and pos_label not in (0, 1):
        raise ValueError(f'pos_label must be 0 or 1 for two classes, got {pos_label}')
    notes: List[str] = []
    if n == 0:
        notes.append('no samples: every metric is NaN')
        return Evaluation({k: math.nan for k in SUMMARY_KEYS},
                          {c: {**{k: math.nan for k in PER_CLASS_KEYS}, 'support': 0}
                           for c in names},
                          np.zeros((num_classes, num_classes), np.int64), names, notes)

    ids = list(range(num_classes))
    cm = confusion_matrix(labels, preds, labels=ids)
    support = cm.sum(1)
    predicted = cm.sum(0)
    occurs = (support > 0) | (predicted > 0)
    precision, recall, f1, _ = _quiet(precision_recall_fscore_support, labels, preds,
                                      labels=ids, zero_division=0.0)
    tp = np.diag(cm)
    fp, tn = predicted - tp, n - support - predicted + tp
    with np.errstate(invalid='ignore', divide='ignore'):
        specificity = np.where(tn + fp > 0, tn / np.maximum(tn + fp, 1), np.nan)
    aucs = class_auc(labels, scores)
    briers = class_brier(labels, scores)
    per_class = {}
    for k, name in enumerate(names):
        per_class[name] = dict(
            precision=float(precision[k]) if predicted[k] else math.nan,
            recall=float(recall[k]) if support[k] else math.nan,
            specificity=float(specificity[k]),
            f1=float(f1[k]) if occurs[k] else math.nan,
            auc=float(aucs[k]),
            brier=float(briers[k]),
            support=int(support[k]))

    summary = dict(
        accuracy=float(accuracy_score(labels, preds)),
        balanced_accuracy=float(_quiet(balanced_accuracy_score, labels, preds)),
        mcc=float(_quiet(matthews_corrcoef, labels, preds)),
        kappa=float(_quiet(cohen_kappa_score, labels, preds)),
        auc=auc_score(labels, scores, pos_label),
        **calibration_metrics(labels, scores, ece_bins),
    )
    p, r, f, _ = _quiet(precision_recall_fscore_support, labels, preds, average='macro',
                        zero_division=0.0)
    summary.update(precision_macro=float(p), recall_macro=float(r), f1_macro=float(f))
    summary = {key: summary[key] for key in SUMMARY_KEYS}

    absent = [names[k] for k in ids if support[k] == 0]
    if absent:
        notes.append(f'class(es) {absent} have no samples in the labels: their recall and AUC '
                     'are undefined (NaN in the per-class table; balanced accuracy and AUC '
                     'average over the other classes)')
    if len(np.unique(preds)) == 1:
        notes.append(f'every prediction is class {names[int(preds[0])]}: precision of the '
                     'other classes counts as 0')
    if n == 1:
        notes.append('a single sample: the metrics are not meaningful')
    if len(np.unique(np.concatenate([labels, preds]))) == 1:
        notes.append('labels and predictions are all one class: MCC is set to 0 and kappa '
                     'is NaN (undefined)')
    elif math.isnan(summary['kappa']):
        notes.append("Cohen's kappa is undefined for these predictions (NaN)")
    if math.isnan(summary['auc']):
        notes.append('AUC is undefined (the labels hold fewer than two classes): NaN')
    return Evaluation(summary, per_class, cm, names, notes)
