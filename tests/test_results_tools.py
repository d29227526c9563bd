"""results_table.py and compare_runs.py on synthetic run folders, and the paired tests behind
them (McNemar's exact test, the paired bootstrap).

The run folders are written with the real report writer (hifuse_mm.evaluation.write_test_report)
from made-up predictions, so they have exactly the files tools/test.py and tools/kfold.py
leave behind. The tools run in-process (tests/tool_runner.call_tool).
"""
import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from hifuse_mm.analysis import (Predictions, RunResultError, compare_predictions,
                                load_predictions, load_run, mcnemar_exact, pair_predictions,
                                paired_bootstrap)
from hifuse_mm.analysis import paired_tests
from hifuse_mm.evaluation import LastEvaluation, evaluate_predictions, write_test_report
from hifuse_mm.evaluation.functional import auc_score, macro_f1
from hifuse_mm.analysis.kfold_summary import summarise
from tool_runner import call_tool, ok

CLASSES = ['MEL', 'NV', 'BCC']
# A config whose model is quick to count: ResNet-18 on 32 x 32 crops.
RESNET_CONFIG = """\
default_scope = 'mmpretrain'
model = dict(type='ImageClassifier', backbone=dict(type='ResNet', depth=18),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='LinearClsHead', num_classes=3, in_channels=512))
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='CheckedLoadImageFromFile'), dict(type='ResizeEdge', scale=36, edge='short'),
    dict(type='CenterCrop', crop_size=32), dict(type='PackInputs')]))
"""
RESNET18_PARAMS = 11_176_512 + 512 * 3 + 3  # torchvision's resnet18 without its fc, 3 classes


def _predictions(seed: int, n: int = 60, classes=CLASSES, skill: float = 2.0):
    """Labels (fixed by n) and scores of a model whose quality grows with ``skill``."""
    labels = np.arange(n) % len(classes)
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, len(classes)))
    logits[np.arange(n), labels] += skill
    scores = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return labels, np.round(scores, 6)


def write_report(folder: Path, labels, scores, classes=CLASSES, bootstrap: int = 0,
                 config: str = 'configs/baselines/convnext-base_isic2018.py', images=None):
    """A test report exactly as tools/test.py writes it; returns its metrics.json path."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, float)
    images = images or [f'test/{classes[y]}/img_{i:04d}.jpg' for i, y in enumerate(labels)]
    evaluation = evaluate_predictions(labels, scores, classes=classes)
    last = LastEvaluation(evaluation, labels, scores.argmax(1), scores, images)
    metrics = {f'medical/{k}': v for k, v in evaluation.summary.items()}
    paths = write_test_report(last, folder, metrics, bootstrap=bootstrap,
                              extra=dict(config=config, checkpoint='best.pth'))
    return paths['metrics.json']


def write_kfold(work_dir: Path, config: str, folds=('fold1', 'fold2'), n: int = 40):
    """A tools/kfold.py work dir: one test report per fold and kfold.json."""
    results, runs = {}, {}
    for k, fold in enumerate(folds):
        labels, scores = _predictions(10 + k, n)
        images = [f'f{k}/img_{i:03d}.jpg' for i in range(n)]
        report = write_report(work_dir / fold / 'test' / '20260101_000000', labels, scores,
                              config=config, images=images)
        results[fold] = {k2: v for k2, v in json.loads(report.read_text())['metrics'].items()}
        runs[fold] = dict(checkpoint=f'{fold}/best.pth', report_dir=str(report.parent))
    summary = summarise(results)
    (work_dir / 'kfold.json').write_text(json.dumps(dict(
        config=config, folds=list(folds), metrics=results, mean=summary['mean'],
        std=summary['std'], std_ddof=1, runs=runs), indent=2))
    return results


def _md_row(text: str, label: str):
    line = next(x for x in text.splitlines() if x.startswith(f'| {label} |'))
    return [cell.strip() for cell in line.strip('|').split('|')]


# ------------------------------------------------------------------------------- McNemar

def test_mcnemar_hand_example_equals_scipy():
    # HEMF's COVID19-CT lead over CAME is 7 of 186 test images: say 12 images only HEMF
    # gets right and 5 only CAME does. Two-sided exact p = 2 * P(X <= 5), X ~ Bin(17, 1/2).
    p = mcnemar_exact(12, 5)
    assert p == pytest.approx(2 * sum(math.comb(17, i) for i in range(6)) / 2**17, abs=0)
    assert p == pytest.approx(0.143463134765625, abs=1e-15)
    assert p == pytest.approx(binomtest(12, 17, 0.5).pvalue, rel=1e-12)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    for b in range(0, 26):
        for c in range(0, 26):
            if b + c:
                assert mcnemar_exact(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue,
                                                            rel=1e-10, abs=1e-300)
    with pytest.raises(ValueError, match='non-negative'):
        mcnemar_exact(-1, 3)


# ---------------------------------------------------------------------- paired bootstrap

def _model_pair(n=50, classes=3, seed=0):
    labels, scores_a = _predictions(seed, n, [str(i) for i in range(classes)], skill=2.0)
    _, scores_b = _predictions(seed + 1, n, [str(i) for i in range(classes)], skill=1.0)
    return labels, scores_a, scores_b


def test_paired_bootstrap_matches_a_naive_loop():
    """The vectorised rounds equal recomputing the metrics (functional.py) on each resample."""
    for classes in (2, 3):
        labels, sa, sb = _model_pair(classes=classes)
        pa, pb = sa.argmax(1), sb.argmax(1)
        result = paired_bootstrap(labels, pa, sa, pb, sb, resamples=200, seed=7)
        rng = np.random.default_rng(7)
        diffs = {'accuracy': [], 'f1_macro': [], 'auc': []}
        for _ in range(200):
            i = rng.integers(0, len(labels), len(labels))
            y = labels[i]
            diffs['accuracy'].append(np.mean(pa[i] == y) - np.mean(pb[i] == y))
            diffs['f1_macro'].append(macro_f1(y, pa[i]) - macro_f1(y, pb[i]))
            diffs['auc'].append(auc_score(y, sa[i]) - auc_score(y, sb[i]))
        for name, values in diffs.items():
            item = result[name]
            values = np.array(values)
            assert item.valid_resamples == 200
            assert [item.low, item.high] == pytest.approx(np.percentile(values, [2.5, 97.5]),
                                                          abs=1e-12)
            full = {'accuracy': lambda p, s: np.mean(p == labels),
                    'f1_macro': lambda p, s: macro_f1(labels, p),
                    'auc': lambda p, s: auc_score(labels, s)}[name]
            d = full(pa, sa) - full(pb, sb)
            assert item.difference == pytest.approx(d, abs=1e-12)
            extreme = np.sum(np.abs(values - d) >= abs(d) - 1e-12)
            assert item.p_value == pytest.approx((1 + extreme) / 201, abs=1e-12)
            assert item.a > item.b  # A is the better model by construction


def test_paired_bootstrap_is_seeded_and_reproducible(monkeypatch):
    labels, sa, sb = _model_pair(n=80)
    args = (labels, sa.argmax(1), sa, sb.argmax(1), sb)
    first = paired_bootstrap(*args, resamples=500, seed=3)
    again = paired_bootstrap(*args, resamples=500, seed=3)
    assert {k: v.to_dict() for k, v in first.items()} == {k: v.to_dict()
                                                            for k, v in again.items()}
    other = paired_bootstrap(*args, resamples=500, seed=4)
    assert other['f1_macro'].low != first['f1_macro'].low
    # Drawing the rounds in smaller chunks consumes the generator identically.
    monkeypatch.setattr(paired_tests, '_CELLS_PER_CHUNK', 80 * 7)
    chunked = paired_bootstrap(*args, resamples=500, seed=3)
    assert {k: v.to_dict() for k, v in chunked.items()} == {k: v.to_dict()
                                                              for k, v in first.items()}
    assert first['accuracy'].seed == 3 and first['accuracy'].resamples == 500


def test_paired_bootstrap_degenerate_rounds_and_identical_models():
    # 1 positive in 5 images: a round without it has no AUC ((4/5)^5 ~ 1/3 of the rounds).
    labels = np.array([1, 0, 0, 0, 0])
    sa = np.array([[0.2, 0.8], [0.9, 0.1], [0.7, 0.3], [0.6, 0.4], [0.4, 0.6]])
    sb = np.array([[0.6, 0.4], [0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    result = paired_bootstrap(labels, sa.argmax(1), sa, sb.argmax(1), sb, resamples=400,
                              seed=0)
    rng = np.random.default_rng(0)
    with_positive = sum(bool(np.any(labels[rng.integers(0, 5, 5)] == 1)) for _ in range(400))
    assert result['auc'].valid_resamples == with_positive < 400
    assert result['accuracy'].valid_resamples == 400
    assert math.isfinite(result['auc'].low) and math.isfinite(result['auc'].p_value)

    same = paired_bootstrap(labels, sa.argmax(1), sa, sa.argmax(1), sa, resamples=100)
    for item in same.values():
        assert (item.difference, item.low, item.high, item.p_value) == (0, 0, 0, 1.0)


def test_pairing_aligns_rows_and_refuses_other_test_sets():
    labels, scores = _predictions(0, 6)
    images = [f'img{i}.jpg' for i in range(6)]
    a = Predictions(images, labels, scores.argmax(1), scores, CLASSES, [Path('a.csv')])
    order = [3, 1, 5, 0, 2, 4]
    b = a.take(order)
    b.sources = [Path('b.csv')]
    pa, pb = pair_predictions(a, b)
    assert pb.images == images and (pb.scores == scores).all()

    c = Predictions(images[:5] + ['other.jpg'], labels, labels, scores, CLASSES, [Path('c')])
    with pytest.raises(RunResultError, match=r'different images.*1 only in A.*img5\.jpg'):
        pair_predictions(a, c)
    d = Predictions(images, (labels + 1) % 3, labels, scores, CLASSES, [Path('d.csv')])
    with pytest.raises(RunResultError, match='different true labels'):
        pair_predictions(a, d)
    e = Predictions(images, labels, labels, scores, ['x', 'y', 'z'], [Path('e.csv')])
    with pytest.raises(RunResultError, match='different classes'):
        pair_predictions(a, e)


# -------------------------------------------------------------------------- results table

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """Synthetic run folders: two test work dirs, one report with a missing / undefined
    metric and one without config, a k-fold run."""
    root = tmp_path_factory.mktemp('runs')
    labels, good = _predictions(1, skill=3.0)
    _, weak = _predictions(2, skill=0.5)
    # A test work dir tested twice: the newer report (better model) must be used.
    write_report(root / 'hemf' / '20260101_000000', labels, weak,
                 config='configs/hemf/hemf_isic2018.py')
    write_report(root / 'hemf' / '20260102_000000', labels, good, bootstrap=200,
                 config='configs/hemf/hemf_isic2018.py')
    resnet = root / 'resnet18_isic2018.py'
    resnet.write_text(RESNET_CONFIG)
    report = write_report(root / 'resnet' / '20260101_000000', labels, weak,
                          config=str(resnet))
    content = json.loads(report.read_text())
    del content['metrics']['medical/auc']          # a metric the run does not have
    content['metrics']['medical/kappa'] = None     # an undefined one
    report.write_text(json.dumps(content))
    write_kfold(root / 'hifuse_kfold', config='configs/hifuse/hifuse-tiny_kvasir.py')
    return root


def test_load_run_kinds(runs):
    newest = load_run(runs / 'hemf')
    assert newest.kind == 'test' and newest.source.parent.name == '20260102_000000'
    assert newest.config_name == 'hemf_isic2018' and newest.num_samples == 60
    assert set(newest.ci) == {'accuracy', 'f1_macro', 'auc',  # + calibration (issue 16)
                              'ece', 'classwise_ece', 'brier', 'nll'}
    assert newest.ci_confidence == 0.95 and newest.ci_resamples == 200
    low, high = newest.ci['accuracy']
    assert low <= newest.metrics['accuracy'] <= high
    kfold = load_run(runs / 'hifuse_kfold')
    assert kfold.kind == 'kfold' and kfold.folds == ['fold1', 'fold2']
    assert kfold.num_samples == 80 and len(kfold.report_dirs) == 2
    assert load_run(runs / 'hifuse_kfold' / 'kfold.json').metrics == kfold.metrics


def test_results_table_tool(runs, tmp_path):
    out = tmp_path / 'tables' / 'isic'
    proc = ok(call_tool(tmp_path, 'analysis_tools/results_table.py', runs / 'hemf',
                        runs / 'resnet', runs / 'hifuse_kfold', '--out', out,
                        '--bold-best', '--title', 'ISIC 2018 (synthetic)'))
    md = (tmp_path / 'tables' / 'isic.md').read_text()
    assert md in proc.stdout
    hemf = load_run(runs / 'hemf')
    row = _md_row(md, 'hemf_isic2018')
    acc, (low, high) = hemf.metrics['accuracy'], hemf.ci['accuracy']
    assert row[3] == f'**{acc * 100:.2f} ({low * 100:.2f}–{high * 100:.2f})**'
    assert row[7] == f'**{hemf.metrics["mcc"]:.4f}**'
    assert row[1] == row[2] == '–'  # no config file to count params / FLOPs from
    assert 'hemf_isic2018: params/FLOPs not counted' in md

    # The ResNet config: params / FLOPs counted at its test pipeline's 32 px crop.
    resnet = _md_row(md, 'resnet18_isic2018')
    assert resnet[1] == f'{RESNET18_PARAMS / 1e6:.2f}'
    assert resnet[9] == '–' and resnet[8] == '–'  # AUC missing, kappa undefined

    kfold = json.loads((runs / 'hifuse_kfold' / 'kfold.json').read_text())
    mean, sd = kfold['mean']['medical/f1_macro'], kfold['std']['medical/f1_macro']
    folds = [kfold['metrics'][f]['medical/f1_macro'] for f in ('fold1', 'fold2')]
    assert mean == pytest.approx(np.mean(folds)) and sd == pytest.approx(np.std(folds, ddof=1))
    assert _md_row(md, 'hifuse-tiny_kvasir')[4].replace('**', '') == \
        f'{mean * 100:.2f} ± {sd * 100:.2f}'
    assert 'mean ± sd: over the 2 cross-validation folds' in md
    assert 'not tested on the same test set' in md  # 60 vs 80 images

    rows = list(csv.DictReader(io.StringIO((tmp_path / 'tables' / 'isic.csv').read_text())))
    assert [r['method'] for r in rows] == ['hemf_isic2018', 'resnet18_isic2018',
                                           'hifuse-tiny_kvasir']
    assert float(rows[0]['acc_pct']) == pytest.approx(acc * 100, abs=1e-4)
    assert float(rows[0]['acc_pct_ci_low']) == pytest.approx(low * 100, abs=1e-4)
    assert rows[1]['auc'] == '' and rows[1]['kappa'] == ''
    assert float(rows[1]['params_M']) == pytest.approx(RESNET18_PARAMS / 1e6, rel=1e-5)
    # ResNet-18 has 1.82 G multiply-adds at 224 px; at 32 px about (32 / 224)^2 of that.
    assert float(rows[1]['flops_G']) == pytest.approx(1.82 * (32 / 224)**2, rel=0.03)
    assert rows[1]['input_size'] == '32x32'
    assert float(rows[2]['f1_macro_pct_sd']) == pytest.approx(sd * 100, abs=1e-4)
    assert rows[2]['kind'] == 'kfold' and rows[2]['folds'] == '2'
    assert rows[2]['num_samples'] == '80'

    tex = (tmp_path / 'tables' / 'isic.tex').read_text()
    assert '\\toprule' in tex and '\\bottomrule' in tex
    assert 'hemf\\_isic2018 & -- & -- & \\textbf{' in tex
    assert f'{mean * 100:.2f}\\,$\\pm$\\,{sd * 100:.2f}' in tex
    assert tex.count(' \\\\') == 4  # header + three rows

    # Existing output is kept unless --force.
    before = (tmp_path / 'tables' / 'isic.csv').read_text()
    proc = call_tool(tmp_path, 'analysis_tools/results_table.py', runs / 'hemf', '--out', out,
                     '--no-complexity')
    assert proc.returncode == 2 and '--force' in proc.stderr
    assert (tmp_path / 'tables' / 'isic.csv').read_text() == before
    ok(call_tool(tmp_path, 'analysis_tools/results_table.py', runs / 'hemf', '--out', out,
                 '--force', '--no-complexity', '--labels', 'HEMF'))
    assert _md_row((tmp_path / 'tables' / 'isic.md').read_text(), 'HEMF')


def test_results_table_errors(runs, tmp_path):
    def fails(*argv):
        proc = call_tool(tmp_path, 'analysis_tools/results_table.py', *argv, '--no-complexity')
        assert proc.returncode == 2, proc
        return proc.stderr

    assert 'does not exist' in fails(tmp_path / 'nope')
    assert 'holds no test results' in fails(tmp_path)
    # Reports in unrelated folders are ambiguous.
    assert 'holds several runs' in fails(runs)
    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'metrics.json').write_text('{"num_samples": 3}')
    message = fails(broken)
    assert str(broken / 'metrics.json') in message and '"metrics"' in message
    (broken / 'metrics.json').write_text('{"metrics": {"accuracy/top1": 90.0}}')
    assert 'MedicalMetrics' in fails(broken)
    (broken / 'metrics.json').write_text('{"metrics": {"medical/accuracy": "high"}}')
    assert "medical/accuracy" in fails(broken)


# --------------------------------------------------------------------------- compare_runs

@pytest.fixture(scope='module')
def pair(tmp_path_factory):
    """Two binary runs on the same 186 images, 12 images only A gets right and 5 only B
    (HEMF vs CAME on COVID19-CT, Table 8), B's rows in another order; and a run on other
    images."""
    root = tmp_path_factory.mktemp('pair')
    classes = ['COVID', 'NonCOVID']
    n = 186
    labels = np.arange(n) % 2
    correct_a = np.ones(n, bool)
    correct_a[:40] = False                      # A: 146 right
    correct_b = correct_a.copy()
    correct_b[40:52] = False                    # only A right on 12
    correct_b[:5] = True                        # only B right on 5  -> B: 139 right
    rng = np.random.default_rng(0)

    def scores(correct):
        confidence = rng.uniform(0.55, 0.95, n)
        p_true = np.where(correct, confidence, 1 - confidence)
        p1 = np.where(labels == 1, p_true, 1 - p_true)
        return np.round(np.stack([1 - p1, p1], 1), 6)

    images = [f'{classes[y]}/ct_{i:03d}.png' for i, y in enumerate(labels)]
    sa, sb = scores(correct_a), scores(correct_b)
    order = rng.permutation(n)
    write_report(root / 'hemf', labels, sa, classes, images=images,
                 config='configs/hemf/hemf_covid19ct.py')
    write_report(root / 'came', labels[order], sb[order], classes,
                 images=[images[i] for i in order], config='came_covid19ct.py')
    write_report(root / 'other', labels, sb, classes, images=[f'x/{i}.png' for i in range(n)])
    return root, labels, sa, sb


def test_compare_runs_tool(pair, tmp_path):
    root, labels, sa, sb = pair
    proc = ok(call_tool(tmp_path, 'analysis_tools/compare_runs.py', root / 'hemf',
                        root / 'came', '--resamples', '2000', '--seed', '1', '--out',
                        'cmp.json'))
    result = json.loads((tmp_path / 'cmp.json').read_text())
    assert (result['run_a'], result['run_b']) == ('hemf_covid19ct', 'came_covid19ct')
    assert result['num_samples'] == 186
    assert (result['mcnemar']['only_a_correct'], result['mcnemar']['only_b_correct']) == (12, 5)
    assert result['mcnemar']['p_value'] == pytest.approx(binomtest(12, 17).pvalue, rel=1e-12)
    accuracy = result['paired_bootstrap']['accuracy']
    assert accuracy['a'] == pytest.approx(146 / 186) and accuracy['b'] == pytest.approx(139 / 186)
    assert accuracy['difference'] == pytest.approx(7 / 186)
    assert accuracy['low'] < 7 / 186 < accuracy['high'] and accuracy['low'] < 0  # not significant
    auc = result['paired_bootstrap']['auc']
    from sklearn.metrics import roc_auc_score
    assert auc['a'] == pytest.approx(roc_auc_score(labels == 1, sa[:, 1]), abs=1e-9)
    assert auc['resamples'] == auc['valid_resamples'] == 2000 and auc['seed'] == 1
    assert 0 < result['paired_bootstrap']['f1_macro']['p_value'] <= 1
    assert '| Accuracy | 0.7849 | 0.7473 | +0.0376 |' in proc.stdout
    assert 'McNemar exact (b = 12, c = 5)' in proc.stdout

    # Same seed, same numbers, whichever way the files are given (a folder or the CSV).
    ok(call_tool(tmp_path, 'analysis_tools/compare_runs.py', root / 'hemf' / 'predictions.csv',
                 root / 'came', '--resamples', '2000', '--seed', '1', '--out', 'again.json'))
    again = json.loads((tmp_path / 'again.json').read_text())
    assert again['paired_bootstrap'] == result['paired_bootstrap']

    proc = call_tool(tmp_path, 'analysis_tools/compare_runs.py', root / 'hemf', root / 'came',
                     '--out', 'cmp.json')
    assert proc.returncode == 2 and 'cmp.json exist' in proc.stderr
    proc = call_tool(tmp_path, 'analysis_tools/compare_runs.py', root / 'hemf', root / 'other')
    assert proc.returncode == 2
    assert 'different images' in proc.stderr and '186 only in A' in proc.stderr
    assert not (tmp_path / 'cmp.md').exists()


def test_compare_kfold_runs_pools_the_folds(tmp_path):
    write_kfold(tmp_path / 'a', config='a_kvasir.py')
    write_kfold(tmp_path / 'b', config='b_kvasir.py')
    a, b = load_predictions(tmp_path / 'a'), load_predictions(tmp_path / 'b')
    assert (a.name, len(a.sources)) == ('a_kvasir', 2)
    pooled = compare_predictions(a, b, resamples=50)
    assert pooled.num_samples == 80
    assert pooled.differences['accuracy'].difference == 0  # the same made-up predictions
