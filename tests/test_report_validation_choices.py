"""tools/test.py --calibrate val / --threshold val / --target-specificity, and the operating
points of every test report, on a tiny trained model: each figure is recomputed here from the
report's predictions.csv (and the validation predictions) with code written independently."""
import csv
import json

import numpy as np
import pytest

from helpers import inside
from hifuse_mm import cli


@pytest.fixture(scope='module')
def tested(trained_tiny):
    """The shared tiny training run (tests/conftest.py: 2 epochs, 3 / 3 / 3 images per class)
    tested with --calibrate val --target-specificity 0.6 --bootstrap 20 (tools/test.py runs as
    a subprocess in tests/test_html_report.py, on the same run)."""
    root, best = trained_tiny.root, trained_tiny.checkpoint
    with inside(root):  # tools/test.py's main, in this process
        cli.test_main(['tiny.py', str(best), '--work-dir', 'chosen', '--calibrate', 'val',
                       '--target-specificity', '0.6', '--bootstrap', '20'])
    report, = (root / 'chosen').glob('*/metrics.json')
    with open(report.parent / 'predictions.csv') as stream:
        rows = list(csv.DictReader(stream))
    return root, best, json.loads(report.read_text()), rows


def _counts(y: np.ndarray, s: np.ndarray, t: float) -> dict:
    tp = fp = tn = fn = 0
    for yi, si in zip(y, s):
        if si >= t:
            tp, fp = tp + int(yi), fp + int(not yi)
        else:
            fn, tn = fn + int(yi), tn + int(not yi)
    return dict(tp=tp, fp=fp, tn=tn, fn=fn)


def test_threshold_is_chosen_on_val_and_applied_to_test(tested):
    _, _, content, rows = tested
    classes = content['classes']
    section = content['threshold']
    assert section['chosen_on'] == 'val' and section['applied_to'] == 'test'
    assert section['method'] == 'target_specificity' and section['target_specificity'] == 0.6
    assert set(section['classes']) == set(classes)  # multi-class: one-vs-rest per class
    labels = np.array([classes.index(r['label']) for r in rows])
    for c, name in enumerate(classes):
        entry = section['classes'][name]
        assert entry['val']['specificity'] >= 0.6 - 1e-12
        scores = np.array([float(r[f'prob_{name}']) for r in rows])
        expected = _counts(labels == c, scores, entry['threshold'])
        assert {k: entry['test'][k] for k in expected} == expected
        assert sum(expected.values()) == content['num_samples']


def test_temperature_fitted_on_val_keeps_accuracy(tested):
    _, _, content, rows = tested
    section = content['temperature_scaling']
    assert section['fitted_on'] == 'val' and section['temperature'] > 0
    assert section['after']['accuracy'] == section['before']['accuracy']
    classes = content['classes']
    probs = np.array([[float(r[f'prob_{c}']) for c in classes] for r in rows])
    labels = np.array([classes.index(r['label']) for r in rows])
    # "before" is the report's own calibration of the test split; NLL recomputed here.
    nll = -np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-15, None)))
    assert section['before']['nll'] == pytest.approx(nll, rel=1e-4)
    # "after": the test probabilities scaled by the temperature, recomputed here.
    logits = np.log(np.clip(probs, 1e-15, None)) / section['temperature']
    scaled = np.exp(logits - logits.max(1, keepdims=True))
    scaled /= scaled.sum(1, keepdims=True)
    nll_after = -np.mean(np.log(np.clip(scaled[np.arange(len(labels)), labels], 1e-15, None)))
    assert section['after']['nll'] == pytest.approx(nll_after, rel=1e-4)


def test_operating_points_of_the_test_split(tested):
    _, _, content, rows = tested
    classes = content['classes']
    labels = np.array([classes.index(r['label']) for r in rows])
    for c, name in enumerate(classes):
        entry = content['operating_points'][name]
        y = labels == c
        s = np.array([float(r[f'prob_{name}']) for r in rows])
        if y.all() or not y.any():
            continue
        # Best sensitivity among thresholds (every score, and above all) with specificity >= S.
        best = 0.0
        for t in [*np.unique(s), np.inf]:
            counts = _counts(y, s, t)
            spec = counts['tn'] / (counts['tn'] + counts['fp'])
            if spec >= 0.9 - 1e-12:
                best = max(best, counts['tp'] / (counts['tp'] + counts['fn']))
        assert entry['sensitivity_at_specificity_0.90'] == pytest.approx(best)
        assert 'intervals' in entry and entry['bootstrap']['resamples'] == 20


def test_calibrate_needs_a_validation_split(tested):
    """tools/test.py's main in this process (it stops before testing anything)."""
    root, best, _, _ = tested
    with inside(root), pytest.raises(SystemExit) as stopped:
        cli.test_main(['tiny.py', str(best), '--work-dir', 'noval', '--calibrate', 'val',
                   '--cfg-options', 'val_dataloader=None', 'val_evaluator=None', 'val_cfg=None'])
    assert str(stopped.value.code).startswith(
        'error: --calibrate / --threshold need the validation split')
    assert not (root / 'noval').exists() or not list((root / 'noval').glob('*/metrics.json'))
