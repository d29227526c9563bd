"""MedicalMetrics against scikit-learn, a hand-checked case, degenerate inputs, several ranks,
bootstrap intervals and the test report files."""
import csv
import dataclasses
import json
import math
import socket
import warnings

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, classification_report,
                             cohen_kappa_score, f1_score, matthews_corrcoef, precision_score,
                             recall_score, roc_auc_score)

import hifuse_mm  # noqa: F401  (registers MedicalMetrics)
from hifuse_mm.evaluation import (REPORT_FILES, MedicalMetricWarning, bootstrap_intervals,
                                  evaluate_predictions, write_test_report)
from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample

from helpers import DEMO_CONFIG

KEYS = ('accuracy', 'balanced_accuracy', 'precision_macro', 'recall_macro', 'f1_macro', 'mcc',
        'kappa', 'auc')
ALL_KEYS = (*KEYS, 'ece', 'classwise_ece', 'brier', 'nll')  # + calibration (issue 16)


def random_predictions(n: int, num_classes: int, seed: int):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, n)
    logits = rng.normal(size=(n, num_classes))
    logits[np.arange(n), labels] += rng.uniform(0, 2)  # better than chance, far from perfect
    scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return labels, scores


def make_sample(index: int, label: int, score, pred=None, dtype=torch.float64) -> dict:
    """A data sample as the model's test step hands it to the evaluator."""
    sample = DataSample().set_gt_label(int(label)).set_pred_score(
        torch.as_tensor(score, dtype=dtype))
    sample.set_pred_label(int(np.argmax(score) if pred is None else pred))
    sample.set_metainfo(dict(img_path=f'img_{index}.png'))
    return sample.to_dict()


def run_metric(labels, scores, preds=None, classes=None, dtype=torch.float64, **kwargs):
    metric = METRICS.build(dict(type='MedicalMetrics', **kwargs))
    metric.dataset_meta = dict(classes=classes) if classes else None
    samples = [make_sample(i, label, score, None if preds is None else preds[i], dtype)
               for i, (label, score) in enumerate(zip(labels, scores))]
    metric.process(None, samples)
    return metric.evaluate(len(samples)), metric


def sklearn_reference(labels, scores, pos_label=1):
    preds = scores.argmax(1)
    if scores.shape[1] == 2:
        auc = roc_auc_score(labels == pos_label, scores[:, pos_label])
    else:
        auc = roc_auc_score(labels, scores, multi_class='ovr', average='macro')
    return dict(accuracy=accuracy_score(labels, preds),
                balanced_accuracy=balanced_accuracy_score(labels, preds),
                precision_macro=precision_score(labels, preds, average='macro'),
                recall_macro=recall_score(labels, preds, average='macro'),
                f1_macro=f1_score(labels, preds, average='macro'),
                mcc=matthews_corrcoef(labels, preds),
                kappa=cohen_kappa_score(labels, preds),
                auc=auc)


@pytest.mark.parametrize('num_classes,seed', [(2, 0), (2, 1), (7, 0), (7, 1)])
def test_equals_sklearn_on_random_predictions(num_classes, seed):
    labels, scores = random_predictions(500, num_classes, seed)
    metrics, metric = run_metric(labels, scores)
    assert set(metrics) == {f'medical/{k}' for k in ALL_KEYS}
    assert all(type(v) is float for v in metrics.values())
    reference = sklearn_reference(labels, scores)
    for key in KEYS:
        assert metrics[f'medical/{key}'] == pytest.approx(reference[key], abs=1e-9), key
    # Per-class table against classification_report (+ specificity and AUC by hand).
    report = classification_report(labels, scores.argmax(1), output_dict=True)
    table = metric.last.evaluation.per_class
    preds = scores.argmax(1)
    for k in range(num_classes):
        row = table[str(k)]
        assert row['precision'] == pytest.approx(report[str(k)]['precision'], abs=1e-9)
        assert row['recall'] == pytest.approx(report[str(k)]['recall'], abs=1e-9)
        assert row['f1'] == pytest.approx(report[str(k)]['f1-score'], abs=1e-9)
        assert row['support'] == report[str(k)]['support']
        negatives = labels != k
        assert row['specificity'] == pytest.approx(np.mean(preds[negatives] != k), abs=1e-12)
        assert row['auc'] == pytest.approx(roc_auc_score(labels == k, scores[:, k]), abs=1e-9)


def test_binary_pos_label():
    labels, scores = random_predictions(200, 2, 3)
    metrics, _ = run_metric(labels, scores, pos_label=0)
    assert metrics['medical/auc'] == pytest.approx(
        roc_auc_score(labels == 0, scores[:, 0]), abs=1e-9)


def test_hand_checked_case():
    # 3 classes, 6 samples. Confusion matrix (rows true): [[1, 1, 0], [0, 2, 0], [1, 0, 1]].
    labels = [0, 0, 1, 1, 2, 2]
    preds = [0, 1, 1, 1, 2, 0]
    scores = np.full((6, 3), 0.15)
    scores[np.arange(6), preds] = 0.7
    metrics, metric = run_metric(labels, scores, classes=['a', 'b', 'c'])
    expected = dict(
        accuracy=4 / 6,
        balanced_accuracy=(1 / 2 + 1 + 1 / 2) / 3,
        precision_macro=(1 / 2 + 2 / 3 + 1) / 3,
        recall_macro=(1 / 2 + 1 + 1 / 2) / 3,
        f1_macro=(1 / 2 + 4 / 5 + 2 / 3) / 3,
        # po = 4/6, pe = (2*2 + 2*3 + 2*1) / 36 = 1/3 -> (2/3 - 1/3) / (1 - 1/3)
        kappa=0.5,
        # (c*s - sum p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)), c=4, s=6
        mcc=(4 * 6 - (2 * 2 + 3 * 2 + 1 * 2)) / math.sqrt((36 - 14) * (36 - 12)),
        # one-vs-rest AUCs from the pairwise ranking (ties count 1/2): 5/8, 7/8, 6/8
        auc=(5 / 8 + 7 / 8 + 6 / 8) / 3,
    )
    for key, value in expected.items():
        assert metrics[f'medical/{key}'] == pytest.approx(value, abs=1e-12), key
    table = metric.last.evaluation.per_class
    # Brier of class k: mean over samples of (p_k - 1[y = k])^2 with p = .7 / .15 / .15
    assert table['a'] == pytest.approx(dict(precision=0.5, recall=0.5, specificity=0.75, f1=0.5,
                                            auc=5 / 8, brier=(.09 + .7225 + 3 * .0225 + .49) / 6,
                                            support=2))
    assert table['b'] == pytest.approx(dict(precision=2 / 3, recall=1.0, specificity=0.75,
                                            f1=0.8, auc=7 / 8,
                                            brier=(3 * .0225 + .49 + 2 * .09) / 6, support=2))
    assert table['c'] == pytest.approx(dict(precision=1.0, recall=0.5, specificity=1.0,
                                            f1=2 / 3, auc=6 / 8,
                                            brier=(4 * .0225 + .09 + .7225) / 6, support=2))
    assert metric.last.evaluation.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert metric.last.images == [f'img_{i}.png' for i in range(6)]


def _degenerate(labels, scores, preds=None):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        metrics, metric = run_metric(labels, scores, preds)
    messages = [str(w.message) for w in caught if issubclass(w.category, MedicalMetricWarning)]
    assert messages, 'a degenerate case must warn'
    assert all(type(v) is float for v in metrics.values())
    return metrics, metric.last.evaluation, ' '.join(messages)


def test_class_absent_from_labels():
    labels, scores = random_predictions(60, 3, 0)
    labels = np.where(labels == 2, 0, labels)  # nobody is class 2, some are predicted as 2
    metrics, evaluation, message = _degenerate(labels, scores)
    assert 'have no samples' in message
    assert math.isnan(evaluation.per_class['2']['recall'])
    assert math.isnan(evaluation.per_class['2']['auc'])
    assert evaluation.per_class['2']['support'] == 0
    # AUC averages the classes that have positives and negatives; the rest equals sklearn.
    assert metrics['medical/auc'] == pytest.approx(np.mean(
        [roc_auc_score(labels == k, scores[:, k]) for k in (0, 1)]), abs=1e-12)
    preds = scores.argmax(1)
    assert metrics['medical/f1_macro'] == pytest.approx(
        f1_score(labels, preds, average='macro', zero_division=0), abs=1e-12)
    assert metrics['medical/balanced_accuracy'] == pytest.approx(
        np.mean([np.mean(preds[labels == k] == k) for k in (0, 1)]), abs=1e-12)


def test_every_prediction_one_class():
    labels = np.array([0, 1, 2, 0, 1, 2, 1])
    scores = np.tile([0.2, 0.5, 0.3], (7, 1))
    metrics, evaluation, message = _degenerate(labels, scores)
    assert 'every prediction is class 1' in message
    assert metrics['medical/accuracy'] == pytest.approx(3 / 7)
    assert metrics['medical/precision_macro'] == pytest.approx((3 / 7) / 3)  # 0/0 counts as 0
    assert metrics['medical/recall_macro'] == pytest.approx(1 / 3)
    assert metrics['medical/mcc'] == 0.0 and metrics['medical/kappa'] == 0.0
    assert metrics['medical/auc'] == pytest.approx(0.5)  # constant scores rank nothing
    assert math.isnan(evaluation.per_class['0']['precision'])
    assert evaluation.per_class['0']['f1'] == 0.0


def test_single_sample():
    metrics, evaluation, message = _degenerate([1], np.array([[0.3, 0.7]]))
    assert 'single sample' in message
    assert metrics['medical/accuracy'] == 1.0
    assert metrics['medical/f1_macro'] == 1.0
    assert math.isnan(metrics['medical/auc']) and math.isnan(metrics['medical/kappa'])
    assert metrics['medical/mcc'] == 0.0
    assert math.isnan(evaluation.per_class['0']['recall'])


def test_no_samples():
    metric = METRICS.build(dict(type='MedicalMetrics', num_classes=3))
    with pytest.warns(MedicalMetricWarning, match='no samples'):
        metrics = metric.compute_metrics([])
    assert set(metrics) == set(ALL_KEYS) and all(math.isnan(v) for v in metrics.values())


def test_bf16_scores_from_amp():
    labels, scores = random_predictions(100, 7, 5)
    metrics, _ = run_metric(labels, scores, dtype=torch.bfloat16)
    rounded = torch.as_tensor(scores).to(torch.bfloat16).double().numpy()
    reference = evaluate_predictions(labels, rounded, preds=scores.argmax(1)).summary
    for key in KEYS:
        assert metrics[f'medical/{key}'] == pytest.approx(reference[key], abs=1e-12)


def test_wrong_number_of_classes():
    labels, scores = random_predictions(10, 3, 0)
    with pytest.raises(ValueError, match='num_classes=4'):
        run_metric(labels, scores, num_classes=4)


# ---------------------------------------------------------------------------------------------
# Several ranks: MMEngine gathers every rank's results (dropping the sampler's padding) and
# computes on rank 0; the values must equal a single-process evaluation.
# ---------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _rank_worker(rank, world, port, labels, scores, queue):
    try:
        torch.distributed.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                                             rank=rank, world_size=world)
        n = len(labels)
        total = -(-n // world) * world
        indices = list(range(n)) + list(range(total - n))  # DefaultSampler's padding
        mine = indices[rank:total:world]
        metric = METRICS.build(dict(type='MedicalMetrics', log_per_class=False))
        metric.process(None, [make_sample(i, labels[i], scores[i]) for i in mine])
        metrics = metric.evaluate(n)
        images = metric.last.images if metric.last is not None else None
        queue.put((rank, metrics, images))
        torch.distributed.destroy_process_group()
    except Exception as err:  # report instead of leaving the parent waiting
        queue.put((rank, repr(err), None))
        raise


def test_two_ranks_equal_one_process(tmp_path, monkeypatch):
    # MMEngine gathers CPU results through a '.dist_test' folder in the current directory
    # (and leaves it behind, empty): keep it out of the checkout.
    monkeypatch.chdir(tmp_path)
    labels, scores = random_predictions(101, 7, 2)  # odd: rank 1 gets a padded sample
    context = mp.get_context('spawn')
    queue = context.Queue()
    port = _free_port()
    procs = [context.Process(target=_rank_worker, args=(r, 2, port, labels, scores, queue))
             for r in range(2)]
    for proc in procs:
        proc.start()
    results = dict((r, (m, i)) for r, m, i in (queue.get(timeout=120) for _ in procs))
    for proc in procs:
        proc.join(timeout=60)
    assert all(isinstance(m, dict) for m, _ in results.values()), results
    assert [proc.exitcode for proc in procs] == [0, 0]
    single, _ = run_metric(labels, scores)
    for rank in (0, 1):
        for key in single:  # broadcast to every rank
            assert results[rank][0][key] == pytest.approx(single[key], abs=1e-12)
    assert results[0][1] == [f'img_{i}.png' for i in range(101)]  # dataset order, no padding
    assert results[1][1] is None  # only rank 0 computes


# ---------------------------------------------------------------------------------------------
# Bootstrap and the report files
# ---------------------------------------------------------------------------------------------
def test_bootstrap_is_seeded_and_brackets_the_estimate():
    labels, scores = random_predictions(400, 7, 0)
    preds = scores.argmax(1)
    first = bootstrap_intervals(labels, preds, scores, 100, seed=3)
    assert first == bootstrap_intervals(labels, preds, scores, 100, seed=3)
    assert first != bootstrap_intervals(labels, preds, scores, 100, seed=4)
    summary = evaluate_predictions(labels, scores).summary
    for key in ('accuracy', 'f1_macro', 'auc'):
        low, high = first[key]['low'], first[key]['high']
        assert low < summary[key] < high, key
        assert 0.02 < high - low < 0.2, key
        assert first[key]['valid_resamples'] == 100
    # More data, narrower interval.
    labels4, scores4 = random_predictions(1600, 7, 0)
    wide = first['accuracy']['high'] - first['accuracy']['low']
    narrow = bootstrap_intervals(labels4, scores4.argmax(1), scores4, 100, seed=3)['accuracy']
    assert narrow['high'] - narrow['low'] < wide


def test_bootstrap_skips_resamples_without_auc():
    labels = np.array([0, 0, 0, 0, 0, 0, 0, 1])
    scores = np.tile([0.6, 0.4], (8, 1))
    result = bootstrap_intervals(labels, scores.argmax(1), scores, 100, seed=0)
    assert 0 < result['auc']['valid_resamples'] < 100


def test_report_files(tmp_path):
    labels, scores = random_predictions(50, 3, 0)
    metrics, metric = run_metric(labels, scores, classes=['x', 'y', 'z'])
    paths = write_test_report(metric.last, tmp_path / 'run', metrics, bootstrap=50,
                              bootstrap_seed=1, extra=dict(checkpoint='best.pth'))
    assert sorted(p.name for p in (tmp_path / 'run').iterdir()) == sorted(REPORT_FILES)
    content = json.loads(paths['metrics.json'].read_text())
    assert content['metrics'] == pytest.approx(metrics)
    assert content['classes'] == ['x', 'y', 'z'] and content['num_samples'] == 50
    assert set(content['per_class']['y']) == {'precision', 'recall', 'specificity', 'f1', 'auc',
                                              'brier', 'support'}
    assert np.array(content['confusion_matrix']).sum() == 50
    assert content['bootstrap']['resamples'] == 50 and content['bootstrap']['seed'] == 1
    assert content['bootstrap']['auc']['low'] <= metrics['medical/auc']
    assert content['checkpoint'] == 'best.pth'
    with open(paths['predictions.csv']) as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == ['image', 'label', 'prediction', 'prob_x', 'prob_y', 'prob_z']
    assert len(rows) == 51
    assert rows[1][:3] == ['img_0.png', 'xyz'[labels[0]], 'xyz'[scores[0].argmax()]]
    assert [float(v) for v in rows[1][3:]] == pytest.approx(scores[0], abs=1e-6)
    for name in ('confusion_matrix.png', 'roc.png', 'pr.png', 'reliability.png'):
        assert paths[name].read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    # Never overwritten.
    before = paths['metrics.json'].read_bytes()
    with pytest.raises(FileExistsError, match='earlier test run'):
        write_test_report(metric.last, tmp_path / 'run', metrics)
    assert paths['metrics.json'].read_bytes() == before


def test_report_writes_nan_as_null(tmp_path):
    with pytest.warns(MedicalMetricWarning):
        metrics, metric = run_metric([1], np.array([[0.3, 0.7]]))
    paths = write_test_report(metric.last, tmp_path, metrics)
    content = json.loads(paths['metrics.json'].read_text())
    assert content['metrics']['medical/auc'] is None
    assert content['per_class']['0']['recall'] is None
    assert any('single sample' in w for w in content['warnings'])


def test_test_tool_config_wiring(tmp_path):
    from hifuse_mm import cli
    config = str(DEMO_CONFIG)

    def make(cfg_file, *argv):
        return cli.test_config(cli.test_parser().parse_args([cfg_file, 'ckpt.pth', *argv]))

    def report(cfg_file, *argv):
        args = cli.test_parser().parse_args([cfg_file, 'ckpt.pth', *argv])
        return dataclasses.asdict(cli.test_report(args))

    cfg = make(config, '--bootstrap', '5', '--bootstrap-seed', '3')
    assert [e['type'] for e in cfg.test_evaluator] == ['MedicalMetrics']
    assert report(config, '--bootstrap', '5', '--bootstrap-seed', '3') == dict(
        enable=True, bootstrap=5, bootstrap_seed=3, config=config, checkpoint='ckpt.pth',
        calibrate=None, threshold=None, target_specificity=None)
    assert report(config, '--no-report')['enable'] is False
    # A config evaluating with something else still gets MedicalMetrics for the report.
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = [{config!r}]\ntest_evaluator = dict(type='Accuracy')\n")
    assert [e['type'] for e in make(str(child)).test_evaluator] == ['Accuracy', 'MedicalMetrics']
    with pytest.raises(SystemExit, match='--bootstrap must be >= 0'):
        make(config, '--bootstrap', '-1')


def test_pr_figure_curves_and_average_precision_by_hand():
    """Hand example, class 1 ranked b a d c e by score with a, e negative: positives at ranks
    1, 3, 4 of 5, so precision at each positive is 1, 2/3, 3/4 and AP = (1 + 2/3 + 3/4) / 3."""
    from hifuse_mm.evaluation.plots import pr_figure
    labels = np.array([0, 1, 1, 1, 0])
    p1 = np.array([0.6, 0.9, 0.4, 0.5, 0.1])
    scores = np.stack([1 - p1, p1], 1)
    fig = pr_figure(labels, scores, ['neg', 'pos'])
    ax = fig.axes[0]
    names = ax.get_legend_handles_labels()[1]
    expected = (1 + 2 / 3 + 3 / 4) / 3
    assert names[1] == f'pos (AP = {expected:.3f}, prevalence 0.600)'
    step = ax.get_lines()[2]  # neg curve, neg prevalence line, pos curve
    recall, precision = step.get_xdata(), step.get_ydata()
    # points after each threshold, highest first: (1/3, 1), (1/3, 1/2), (2/3, 2/3), (1, 3/4)
    for r, p in ((1 / 3, 1.0), (2 / 3, 2 / 3), (1.0, 0.75)):
        assert any(abs(a - r) < 1e-9 and abs(b - p) < 1e-9 for a, b in zip(recall, precision))
    # a class without positives is named, not drawn
    fig = pr_figure(np.zeros(3, int), np.full((3, 2), 0.5), ['a', 'b'])
    assert 'b (AP undefined: no positives)' in fig.axes[0].get_legend_handles_labels()[1]
