"""Operating points against hand-worked values and against explicit threshold loops written
independently here (every candidate threshold counted by hand), scikit-learn's
precision_recall_curve / average_precision_score, and a re-implemented bootstrap."""
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve

from hifuse_mm.evaluation.operating_points import (apply_class_thresholds, apply_threshold,
                                                   average_precision, binary_operating_points,
                                                   choose_class_thresholds, choose_threshold,
                                                   operating_points, pr_curve,
                                                   sensitivity_at_specificity,
                                                   specificity_at_sensitivity)

# Hand example: 5 negatives, 5 positives (ascending score).
HAND_S = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
HAND_Y = np.array([0, 0, 0, 1, 0, 1, 0, 1, 1, 1])


def explicit_points(y, s):
    """(threshold, sensitivity, specificity) of 'positive iff s >= t' for t = +inf and every
    distinct score, counted one sample at a time."""
    points = []
    for t in [math.inf] + sorted(set(s.tolist()), reverse=True):
        tp = fp = tn = fn = 0
        for label, score in zip(y.tolist(), s.tolist()):
            if score >= t:
                tp, fp = tp + (label == 1), fp + (label == 0)
            else:
                fn, tn = fn + (label == 1), tn + (label == 0)
        points.append((t, tp / (tp + fn), tn / (tn + fp)))
    return points


def explicit_sens_at_spec(y, s, target):
    return max(sens for _, sens, spec in explicit_points(y, s) if spec >= target - 1e-12)


def explicit_spec_at_sens(y, s, target):
    return max(spec for _, sens, spec in explicit_points(y, s) if sens >= target - 1e-12)


def test_hand_example():
    # threshold 0.6 allows one false positive (0.7) and catches 4 of 5 positives
    assert sensitivity_at_specificity(HAND_Y, HAND_S, 0.8) == pytest.approx(0.8)
    # specificity 0.9 needs no false positive: threshold 0.8, 3 of 5 positives
    assert sensitivity_at_specificity(HAND_Y, HAND_S, 0.9) == pytest.approx(0.6)
    assert sensitivity_at_specificity(HAND_Y, HAND_S, 0.95) == pytest.approx(0.6)
    # sensitivity 0.8 -> threshold 0.6, one false positive of 5
    assert specificity_at_sensitivity(HAND_Y, HAND_S, 0.8) == pytest.approx(0.8)
    # sensitivity 0.9 needs all 5 positives: threshold 0.4, negatives 0.1-0.3 below it
    assert specificity_at_sensitivity(HAND_Y, HAND_S, 0.9) == pytest.approx(0.6)
    # average precision: positives at ranks 1, 2, 3, 5, 7 -> (1 + 1 + 1 + 4/5 + 5/7) / 5
    expected_ap = (3 + 4 / 5 + 5 / 7) / 5
    assert average_precision(HAND_Y, HAND_S) == pytest.approx(expected_ap)
    assert average_precision_score(HAND_Y, HAND_S) == pytest.approx(expected_ap)
    points = binary_operating_points(HAND_Y, HAND_S)
    assert points == pytest.approx({
        'sensitivity_at_specificity_0.90': 0.6, 'sensitivity_at_specificity_0.95': 0.6,
        'specificity_at_sensitivity_0.90': 0.6, 'specificity_at_sensitivity_0.95': 0.6,
        'average_precision': expected_ap})


def test_hand_thresholds():
    # Youden's J is 0.6 at thresholds 0.8, 0.6 and 0.4: the tie goes to the highest
    choice = choose_threshold(HAND_Y, HAND_S)
    assert (choice.threshold, choice.method) == (0.8, 'youden')
    assert (choice.sensitivity, choice.specificity) == pytest.approx((0.6, 1.0))
    choice = choose_threshold(HAND_Y, HAND_S, target_specificity=0.8)
    assert (choice.threshold, choice.method, choice.target) == (0.6, 'target_specificity', 0.8)
    assert (choice.sensitivity, choice.specificity) == pytest.approx((0.8, 0.8))
    # applied unchanged to another split: s >= 0.6 is positive
    test_y = np.array([1, 1, 0, 0, 1, 0, 0])
    test_s = np.array([0.9, 0.5, 0.65, 0.2, 0.6, 0.59, 0.1])
    result = apply_threshold(test_y, test_s, choice)
    assert result == pytest.approx(dict(threshold=0.6, tp=2, fp=1, tn=3, fn=1,
                                         sensitivity=2 / 3, specificity=3 / 4, ppv=2 / 3,
                                         npv=3 / 4))
    for key in ('tp', 'fp', 'tn', 'fn'):
        assert isinstance(result[key], int)
    # nothing called positive: PPV is 0/0
    assert math.isnan(apply_threshold(test_y, test_s, math.inf)['ppv'])


def test_degenerate_inputs():
    assert math.isnan(sensitivity_at_specificity([1, 1], [0.2, 0.3], 0.9))
    assert math.isnan(specificity_at_sensitivity([0, 0], [0.2, 0.3], 0.9))
    assert math.isnan(average_precision([0, 0], [0.2, 0.3]))
    assert pr_curve([0, 0], [0.2, 0.3])['precision'] is None
    with pytest.raises(ValueError, match='positives and negatives'):
        choose_threshold([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match='0/1'):
        sensitivity_at_specificity([0, 2], [0.2, 0.3], 0.9)
    with pytest.raises(ValueError, match='in \\[0, 1\\]'):
        sensitivity_at_specificity([0, 1], [0.2, 0.3], 1.5)
    with pytest.raises(ValueError, match='target_specificity'):
        choose_threshold([0, 1], [0.2, 0.3], method='target_specificity')
    with pytest.raises(ValueError, match='method'):
        choose_threshold([0, 1], [0.2, 0.3], method='f1')


@pytest.mark.parametrize('seed', range(6))
def test_random_against_explicit_loops(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 120))
    y = rng.integers(0, 2, n)
    y[:2] = (0, 1)
    # rounded scores give ties between and within the classes
    s = np.round(rng.normal(size=n) + y * rng.uniform(0, 2), 1)
    for target in (0.5, 0.9, 0.95):
        assert sensitivity_at_specificity(y, s, target) == pytest.approx(
            explicit_sens_at_spec(y, s, target), abs=1e-12)
        assert specificity_at_sensitivity(y, s, target) == pytest.approx(
            explicit_spec_at_sens(y, s, target), abs=1e-12)
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))
    curve = pr_curve(y, s)
    precision, recall, thresholds = precision_recall_curve(y, s)
    np.testing.assert_allclose(curve['precision'], precision)
    np.testing.assert_allclose(curve['recall'], recall)
    np.testing.assert_allclose(curve['thresholds'], thresholds)

    points = explicit_points(y, s)
    # Youden: the largest J, the highest threshold among ties
    best_j = max(sens + spec - 1 for _, sens, spec in points)
    youden_t = max(t for t, sens, spec in points if sens + spec - 1 >= best_j - 1e-12)
    assert choose_threshold(y, s).threshold == youden_t
    for target in (0.8, 0.9):
        best = explicit_sens_at_spec(y, s, target)
        expected = max(t for t, sens, spec in points
                       if spec >= target - 1e-12 and abs(sens - best) < 1e-12)
        choice = choose_threshold(y, s, target_specificity=target)
        assert choice.threshold == expected
        assert choice.specificity >= target - 1e-12
        # applying it to the split that chose it reproduces the choice's rates
        again = apply_threshold(y, s, choice.threshold)
        assert (again['sensitivity'], again['specificity']) == pytest.approx(
            (choice.sensitivity, choice.specificity))

    # a fixed threshold on another split, counted by hand
    test_y = rng.integers(0, 2, 50)
    test_s = rng.normal(size=50)
    t = float(np.median(test_s))
    result = apply_threshold(test_y, test_s, t)
    tp = sum(1 for a, b in zip(test_y, test_s) if a == 1 and b >= t)
    fp = sum(1 for a, b in zip(test_y, test_s) if a == 0 and b >= t)
    tn = sum(1 for a, b in zip(test_y, test_s) if a == 0 and b < t)
    fn = sum(1 for a, b in zip(test_y, test_s) if a == 1 and b < t)
    assert (result['tp'], result['fp'], result['tn'], result['fn']) == (tp, fp, tn, fn)
    assert result['ppv'] == pytest.approx(tp / (tp + fp))
    assert result['npv'] == pytest.approx(tn / (tn + fn))


def random_multiclass(n, num_classes, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    labels[:num_classes] = np.arange(num_classes)
    logits = rng.normal(size=(n, num_classes)) + 1.5 * np.eye(num_classes)[labels]
    scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return labels, scores


def test_binary_and_one_vs_rest():
    labels, scores = random_multiclass(80, 2, 0)
    result = operating_points(labels, scores, class_names=['benign', 'malignant'])
    assert list(result) == ['malignant']  # binary: only the positive class
    assert result['malignant']['sensitivity_at_specificity_0.90'] == pytest.approx(
        explicit_sens_at_spec(labels == 1, scores[:, 1], 0.9))
    assert list(operating_points(labels, scores, pos_label=0)) == ['0']

    labels, scores = random_multiclass(90, 4, 1)
    result = operating_points(labels, scores, specificities=(0.9, ), sensitivities=(0.95, ))
    assert list(result) == ['0', '1', '2', '3']
    for c in range(4):
        y, s = (labels == c).astype(int), scores[:, c]
        assert result[str(c)] == pytest.approx({
            'sensitivity_at_specificity_0.90': explicit_sens_at_spec(y, s, 0.9),
            'specificity_at_sensitivity_0.95': explicit_spec_at_sens(y, s, 0.95),
            'average_precision': average_precision_score(y, s)})

    # thresholds chosen per class on "val", applied unchanged to "test"
    val_labels, val_scores = random_multiclass(90, 3, 2)
    test_labels, test_scores = random_multiclass(70, 3, 3)
    choices = choose_class_thresholds(val_labels, val_scores, target_specificity=0.9)
    applied = apply_class_thresholds(test_labels, test_scores, choices)
    for c in range(3):
        assert choices[c] == choose_threshold(val_labels == c, val_scores[:, c],
                                              target_specificity=0.9)
        assert applied[c] == apply_threshold(test_labels == c, test_scores[:, c],
                                             choices[c].threshold)
    with pytest.raises(ValueError, match='class index 3'):
        apply_class_thresholds(test_labels, test_scores, {3: 0.5})
    with pytest.raises(ValueError, match='class names'):
        operating_points(labels, scores, class_names=['a'])


def test_bootstrap_intervals_reimplemented():
    labels, scores = random_multiclass(40, 3, 4)
    resamples, seed = 60, 7
    result = operating_points(labels, scores, specificities=(0.9, ), sensitivities=(0.9, ),
                              resamples=resamples, seed=seed)
    again = operating_points(labels, scores, specificities=(0.9, ), sensitivities=(0.9, ),
                             resamples=resamples, seed=seed)
    assert result == again  # seeded
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(labels), len(labels)) for _ in range(resamples)]
    for c in range(3):
        values = []
        for idx in draws:
            y, s = (labels[idx] == c).astype(int), scores[idx, c]
            values.append(explicit_sens_at_spec(y, s, 0.9) if 0 < y.sum() < len(y)
                          else math.nan)
        values = np.array(values)
        finite = values[np.isfinite(values)]
        interval = result[str(c)]['intervals']['sensitivity_at_specificity_0.90']
        assert interval['valid_resamples'] == len(finite)
        assert (interval['low'], interval['high']) == pytest.approx(
            tuple(np.percentile(finite, [2.5, 97.5])))
        assert result[str(c)]['bootstrap'] == dict(resamples=resamples, seed=seed,
                                                   confidence=0.95)

    # tiny binary data: resamples drawing one class are left out and counted
    y = np.array([0, 0, 0, 1])
    s = np.array([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.2, 0.8]])
    interval = operating_points(y, s, resamples=50, seed=0)['1']['intervals'][
        'sensitivity_at_specificity_0.90']
    assert 0 < interval['valid_resamples'] < 50
