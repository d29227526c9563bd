"""The test report's operating points, and what it takes from the validation split.

Nothing is chosen on the test split:

* :func:`operating_points_section`: sensitivity at specificity 0.90 / 0.95 and specificity at
  sensitivity 0.90 / 0.95 (binary: the positive class; multi-class: each class against the
  rest), with bootstrap intervals, and the average precision, all on the test split
  (:mod:`.operating_points`; these describe the ROC / PR curves, they choose nothing).
* :func:`threshold_section`: one threshold per evaluated class chosen on the **validation**
  split (Youden's J, or the best sensitivity at specificity >= ``target_specificity``) and
  applied unchanged to the test split: sensitivity, specificity, PPV and NPV with the counts.
* :func:`temperature_section`: one temperature fitted on the **validation** split by minimising
  the NLL (:func:`.temperature.fit_temperature`), applied to the test split; the test metrics
  before and after (accuracy is unchanged by construction: dividing by T > 0 keeps each row's
  order). The scores are probabilities; their logarithms (clipped at the NLL's epsilon) serve
  as logits, since a softmax does not change when a constant is added to a row.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence

import numpy as np

from .calibration import NLL_EPSILON, calibration_metrics
from .medical_metrics import LastEvaluation
from .operating_points import (apply_class_thresholds, choose_class_thresholds,
                               operating_points)
from .temperature import TemperatureFitError, apply_temperature, fit_temperature


def json_plain(value: Any) -> Any:
    """``value`` with numpy numbers as Python numbers and non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): json_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_plain(v) for v in value]
    if isinstance(value, (np.integer, )):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


def _names(last: LastEvaluation, classes: Optional[Sequence[str]]) -> list:
    width = last.scores.shape[1]
    names = list(classes) if classes is not None and len(classes) == width else None
    return names or [str(c) for c in range(width)]


def operating_points_section(test: LastEvaluation, pos_label: int = 1,
                             classes: Optional[Sequence[str]] = None, bootstrap: int = 0,
                             seed: int = 0) -> Dict[str, Any]:
    """Operating points of the test split (see the module docstring)."""
    return json_plain(operating_points(test.labels, test.scores, pos_label, _names(test, classes),
                                       resamples=bootstrap, seed=seed))


def threshold_section(val: LastEvaluation, test: LastEvaluation, pos_label: int = 1,
                      classes: Optional[Sequence[str]] = None,
                      target_specificity: Optional[float] = None) -> Dict[str, Any]:
    """Thresholds chosen on ``val`` and applied to ``test`` (see the module docstring)."""
    names = _names(test, classes)
    method = 'youden' if target_specificity is None else 'target_specificity'
    chosen = choose_class_thresholds(val.labels, val.scores, pos_label, method,
                                     target_specificity)
    applied = apply_class_thresholds(test.labels, test.scores,
                                     {c: choice.threshold for c, choice in chosen.items()})
    return json_plain(dict(
        chosen_on='val', applied_to='test', method=method, target_specificity=target_specificity,
        classes={names[c]: dict(threshold=chosen[c].threshold,
                                val=dict(sensitivity=chosen[c].sensitivity,
                                         specificity=chosen[c].specificity),
                                test=applied[c]) for c in chosen}))


def _logits(scores: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(scores, np.float64), NLL_EPSILON, None))


def temperature_section(val: LastEvaluation, test: LastEvaluation) -> Dict[str, Any]:
    """Temperature fitted on ``val``, test metrics before and after (module docstring).

    When no temperature can be fitted (:class:`.temperature.TemperatureFitError`, e.g. a
    perfectly separated validation split), ``temperature`` is None, ``not_fitted`` says why and
    there is no ``after``."""
    def summary(scores: np.ndarray) -> Dict[str, float]:
        accuracy = float(np.mean(scores.argmax(1) == test.labels)) if len(test.labels) \
            else math.nan
        return dict(accuracy=accuracy,
                    **calibration_metrics(test.labels, scores, test.ece_bins))

    before = summary(np.asarray(test.scores, np.float64))
    try:
        temperature = fit_temperature(_logits(val.scores), val.labels)
    except TemperatureFitError as err:
        return json_plain(dict(fitted_on='val', temperature=None, not_fitted=str(err),
                               before=before))
    scaled = apply_temperature(_logits(test.scores), temperature)
    return json_plain(dict(fitted_on='val', temperature=temperature, before=before,
                           after=summary(scaled)))
