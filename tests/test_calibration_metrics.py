"""Calibration metrics (ECE, class-wise ECE, Brier, NLL, reliability bins) on a hand-worked
example and on random data against independent computations (scikit-learn, plain loops), in
MedicalMetrics, the bootstrap intervals and the test report's reliability.png (issue 16)."""
import json
import math

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss

from hifuse_mm.evaluation import REPORT_FILES, bootstrap_intervals, write_test_report
from hifuse_mm.evaluation.calibration import (CALIBRATION_KEYS, NLL_EPSILON, bin_index,
                                              brier_score, calibration_metrics, class_brier,
                                              classwise_ece, expected_calibration_error, nll,
                                              reliability_bins)

from test_medical_metrics import random_predictions, run_metric

# Hand example: 3 classes, 4 samples, 5 bins (0, .2], (.2, .4], (.4, .6], (.6, .8], (.8, 1].
HAND_LABELS = np.array([0, 1, 1, 0])
HAND_SCORES = np.array([[0.9, 0.05, 0.05],   # conf .9 -> bin 4, predicts 0: correct
                        [0.7, 0.2, 0.1],     # conf .7 -> bin 3, predicts 0: wrong
                        [0.3, 0.6, 0.1],     # conf .6 -> bin 2 (right edge belongs), correct
                        [0.5, 0.1, 0.4]])    # conf .5 -> bin 2, predicts 0: correct
# Top-label ECE: bin 4 {s0}: 1/4 * |1 - .9| = .025; bin 3 {s1}: 1/4 * |0 - .7| = .175;
# bin 2 {s2, s3}: 2/4 * |1 - .55| = .225  ->  .425. (Were .6 put in bin 3 it would be .225.)
HAND_ECE = 0.425
# Class-wise ECE, same bins:
#   class 0: p = .9 .7 .3 .5, y = 1 0 0 1, every sample alone in its bin:
#            (.1 + .7 + .3 + .5) / 4 = .4
#   class 1: p = .05 .2 .6 .1, y = 0 1 1 0; bin 0 holds .05, .2 (right edge), .1:
#            |1 - .35| = .65; bin 2 {.6}: |1 - .6| = .4  ->  1.05 / 4 = .2625
#   class 2: p = .05 .1 .1 .4, y = 0 0 0 0; bin 0: |0 - .25| = .25; bin 1 {.4}: .4
#            ->  .65 / 4 = .1625
#   mean: (.4 + .2625 + .1625) / 3 = .275
HAND_CLASSWISE_ECE = 0.275
# Per-class Brier: class 0: (.1^2 + .7^2 + .3^2 + .5^2) / 4 = .84 / 4 = .21
#                  class 1: (.05^2 + .8^2 + .4^2 + .1^2) / 4 = .8125 / 4 = .203125
#                  class 2: (.05^2 + .1^2 + .1^2 + .4^2) / 4 = .1825 / 4 = .045625
# Multi-class Brier: per sample .015, 1.14, .26, .42 -> 1.835 / 4 = .45875 (= the sum above).
HAND_CLASS_BRIER = [0.21, 0.203125, 0.045625]
HAND_BRIER = 0.45875
# NLL: -(log .9 + log .2 + log .6 + log .5) / 4 = -log(.054) / 4
HAND_NLL = -math.log(0.054) / 4


def test_hand_example():
    assert expected_calibration_error(HAND_LABELS, HAND_SCORES, 5) == pytest.approx(HAND_ECE)
    assert classwise_ece(HAND_LABELS, HAND_SCORES, 5) == pytest.approx(HAND_CLASSWISE_ECE)
    assert class_brier(HAND_LABELS, HAND_SCORES) == pytest.approx(HAND_CLASS_BRIER)
    assert brier_score(HAND_LABELS, HAND_SCORES) == pytest.approx(HAND_BRIER)
    assert nll(HAND_LABELS, HAND_SCORES) == pytest.approx(HAND_NLL)
    bins = reliability_bins(HAND_LABELS, HAND_SCORES, 5)
    assert bins.count.tolist() == [0, 0, 2, 1, 1]
    assert bins.confidence[2:] == pytest.approx([0.55, 0.7, 0.9])
    assert bins.accuracy[2:] == pytest.approx([1.0, 0.0, 1.0])
    assert np.isnan(bins.confidence[:2]).all() and np.isnan(bins.accuracy[:2]).all()
    assert bins.edges == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    assert bins.ece == pytest.approx(HAND_ECE)
    # Independent references on the same example.
    assert nll(HAND_LABELS, HAND_SCORES) == pytest.approx(
        log_loss(HAND_LABELS, HAND_SCORES, labels=[0, 1, 2]))
    for k in range(3):
        assert HAND_CLASS_BRIER[k] == pytest.approx(
            brier_score_loss(HAND_LABELS == k, HAND_SCORES[:, k]))


def test_bins_are_right_closed_and_zero_goes_first():
    assert bin_index(np.array([0.0, 1e-9, 0.2, 0.2 + 1e-9, 0.5, 1.0]), 5).tolist() == \
        [0, 0, 0, 1, 2, 4]
    assert bin_index(np.arange(16) / 15, 15).tolist() == [0, *range(15)]
    with pytest.raises(ValueError, match='positive integer'):
        bin_index(np.array([0.5]), 0)


def test_nll_clips_zero_probability():
    scores = np.array([[1.0, 0.0], [0.5, 0.5]])
    assert nll([1, 0], scores) == pytest.approx((-math.log(NLL_EPSILON) - math.log(0.5)) / 2)


def test_no_samples_is_nan():
    empty = np.zeros((0, 3))
    metrics = calibration_metrics(np.zeros(0, np.int64), empty)
    assert set(metrics) == set(CALIBRATION_KEYS) and all(math.isnan(v) for v in metrics.values())
    assert reliability_bins(np.zeros(0, np.int64), empty).count.sum() == 0


# ---------------------------------------------------------------------------------------------
# Random data against independent computations.
# ---------------------------------------------------------------------------------------------
def loop_binned_error(confidence, outcome, n_bins):
    """Per-sample loop over explicit interval tests (b/B, (b+1)/B], 0 into the first bin."""
    members = [[] for _ in range(n_bins)]
    for c, o in zip(confidence, outcome):
        for b in range(n_bins):
            if (b == 0 and c == 0) or (b / n_bins < c <= (b + 1) / n_bins):
                members[b].append((c, o))
                break
    total = 0.0
    for items in members:
        if items:
            acc = sum(o for _, o in items) / len(items)
            conf = sum(c for c, _ in items) / len(items)
            total += len(items) / len(confidence) * abs(acc - conf)
    return total


@pytest.mark.parametrize('num_classes,seed,n_bins', [(2, 0, 15), (7, 1, 15), (4, 2, 10)])
def test_random_against_independent(num_classes, seed, n_bins):
    labels, scores = random_predictions(400, num_classes, seed)
    # Top-label ECE against the loop.
    predicted = [int(np.argmax(row)) for row in scores]
    loop_ece = loop_binned_error([max(row) for row in scores],
                                 [float(p == y) for p, y in zip(predicted, labels)], n_bins)
    assert expected_calibration_error(labels, scores, n_bins) == pytest.approx(loop_ece,
                                                                               abs=1e-12)
    loop_cw = np.mean([loop_binned_error(scores[:, k], (labels == k).astype(float), n_bins)
                       for k in range(num_classes)])
    assert classwise_ece(labels, scores, n_bins) == pytest.approx(loop_cw, abs=1e-12)
    # Brier against scikit-learn per class and a one-hot sum.
    sk_brier = [brier_score_loss(labels == k, scores[:, k]) for k in range(num_classes)]
    assert class_brier(labels, scores) == pytest.approx(sk_brier, abs=1e-12)
    onehot = np.zeros_like(scores)
    onehot[np.arange(len(labels)), labels] = 1
    assert brier_score(labels, scores) == pytest.approx(
        np.sum((scores - onehot)**2) / len(labels), abs=1e-12)
    # NLL against scikit-learn.
    assert nll(labels, scores) == pytest.approx(
        log_loss(labels, scores, labels=list(range(num_classes))), abs=1e-12)
    # Reliability bins: counts add up, the ECE is the same.
    bins = reliability_bins(labels, scores, n_bins)
    assert bins.count.sum() == 400 and bins.ece == pytest.approx(loop_ece, abs=1e-12)


def test_calibrated_probabilities_have_small_ece():
    """Labels drawn from the scores themselves: calibrated by construction."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20000, 3)) * 2
    scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = (rng.random((20000, 1)) > scores.cumsum(1)).sum(1)
    assert expected_calibration_error(labels, scores) < 0.02
    assert classwise_ece(labels, scores) < 0.02
    overconfident = np.exp(3 * logits) / np.exp(3 * logits).sum(1, keepdims=True)
    assert expected_calibration_error(labels, overconfident) > 0.1


# ---------------------------------------------------------------------------------------------
# MedicalMetrics, bootstrap and the report.
# ---------------------------------------------------------------------------------------------
@pytest.mark.filterwarnings('ignore::hifuse_mm.evaluation.MedicalMetricWarning')  # no class 2
def test_medical_metrics_keys_and_option():
    labels, scores = random_predictions(300, 5, 0)
    metrics, metric = run_metric(labels, scores)
    scores = metric.last.scores  # as the metric holds them (float32-rounded by process())
    reference = calibration_metrics(labels, scores, 15)
    for key in CALIBRATION_KEYS:
        assert type(metrics[f'medical/{key}']) is float
        assert metrics[f'medical/{key}'] == pytest.approx(reference[key], abs=1e-12), key
    table = metric.last.evaluation.per_class
    for k in range(5):
        assert table[str(k)]['brier'] == pytest.approx(
            brier_score_loss(labels == k, scores[:, k]), abs=1e-12)
    assert metric.last.ece_bins == 15
    # The bin count is an option.
    # MedicalMetrics.process() keeps the scores as float32, which moves the hand example's
    # boundary confidence .6 (float32: .60000002) into bin 3: top-label ECE .225 (see above).
    metrics, metric = run_metric(HAND_LABELS, HAND_SCORES, ece_bins=5)
    assert metrics['medical/ece'] == pytest.approx(0.225, rel=1e-6)
    assert metrics['medical/ece'] == pytest.approx(
        expected_calibration_error(HAND_LABELS, metric.last.scores, 5), abs=1e-12)
    assert metrics['medical/classwise_ece'] == pytest.approx(
        classwise_ece(HAND_LABELS, metric.last.scores, 5), abs=1e-12)
    assert metrics['medical/brier'] == pytest.approx(HAND_BRIER, rel=1e-6)
    assert metrics['medical/nll'] == pytest.approx(HAND_NLL, rel=1e-6)
    assert metric.last.ece_bins == 5
    metrics15, _ = run_metric(HAND_LABELS, HAND_SCORES)
    assert metrics15['medical/ece'] != pytest.approx(metrics['medical/ece'])
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match='ece_bins'):
            run_metric(HAND_LABELS, HAND_SCORES, ece_bins=bad)


def test_bootstrap_intervals_of_calibration_metrics():
    labels, scores = random_predictions(400, 4, 1)
    preds = scores.argmax(1)
    result = bootstrap_intervals(labels, preds, scores, 60, seed=5, ece_bins=10)
    estimate = calibration_metrics(labels, scores, 10)
    # The same resamples by hand: row r is rng.integers(0, n, n) of one generator.
    rng = np.random.default_rng(5)
    by_hand = {key: [] for key in CALIBRATION_KEYS}
    accuracy = []
    for _ in range(60):
        idx = rng.integers(0, 400, 400)
        for key, value in calibration_metrics(labels[idx], scores[idx], 10).items():
            by_hand[key].append(value)
        accuracy.append(np.mean(labels[idx] == preds[idx]))
    for key in CALIBRATION_KEYS:
        low, high = np.percentile(by_hand[key], [2.5, 97.5])
        assert result[key]['low'] == pytest.approx(low, abs=1e-12), key
        assert result[key]['high'] == pytest.approx(high, abs=1e-12), key
        assert result[key]['valid_resamples'] == 60
        if key in ('brier', 'nll'):  # binned ECEs are biased upwards on resamples
            assert low < estimate[key] < high, key
    # The existing intervals are unchanged (same rows of the generator).
    assert (result['accuracy']['low'], result['accuracy']['high']) == pytest.approx(
        tuple(np.percentile(accuracy, [2.5, 97.5])), abs=1e-12)


def test_report_writes_reliability_png(tmp_path):
    labels, scores = random_predictions(60, 3, 0)
    metrics, metric = run_metric(labels, scores, classes=['x', 'y', 'z'], ece_bins=10)
    paths = write_test_report(metric.last, tmp_path / 'run', metrics, bootstrap=20)
    assert 'reliability.png' in REPORT_FILES
    assert sorted(p.name for p in (tmp_path / 'run').iterdir()) == sorted(REPORT_FILES)
    png = paths['reliability.png'].read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and png.endswith(b'IEND\xaeB`\x82')
    content = json.loads(paths['metrics.json'].read_text())
    for key in CALIBRATION_KEYS:
        assert content['metrics'][f'medical/{key}'] == pytest.approx(metrics[f'medical/{key}'])
        assert content['bootstrap'][key]['valid_resamples'] == 20
    assert content['per_class']['y']['brier'] == pytest.approx(
        brier_score_loss(labels == 1, scores[:, 1]))
    # An existing reliability.png stops the report before anything is written.
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'reliability.png').write_bytes(b'mine')
    with pytest.raises(FileExistsError, match='reliability.png'):
        write_test_report(metric.last, other, metrics)
    assert [p.name for p in other.iterdir()] == ['reliability.png']
    assert (other / 'reliability.png').read_bytes() == b'mine'


def test_reliability_figure_with_one_sample(tmp_path):
    from hifuse_mm.evaluation.plots import plot_reliability
    plot_reliability(reliability_bins([1], np.array([[0.3, 0.7]])), tmp_path / 'r.png')
    assert (tmp_path / 'r.png').read_bytes()[:4] == b'\x89PNG'
    with pytest.raises(FileExistsError):
        plot_reliability(reliability_bins([1], np.array([[0.3, 0.7]])), tmp_path / 'r.png')
