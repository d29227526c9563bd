"""DeLong's test of two correlated ROC AUCs (hifuse_mm/analysis/delong.py) and its place in
compare_runs.py.

The fast midrank computation is checked against an independent implementation written the
other way: explicit loops over every (positive, negative) pair with the Mann-Whitney kernel
(ties = 1/2), sample covariances by hand, on a hand example worked out in fractions and on
random data with many ties. Each AUC is also checked against sklearn.metrics.roc_auc_score.
"""
import json
import math
from fractions import Fraction as F
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm, rankdata
from sklearn.metrics import roc_auc_score

from hifuse_mm.analysis import compare_predictions, comparison_markdown, load_predictions
from hifuse_mm.analysis.delong import delong_test, midranks, placement_values
from hifuse_mm.evaluation import LastEvaluation, evaluate_predictions, write_test_report
from tool_runner import call_tool, ok


def _psi(x, y):
    return 1.0 if x > y else 0.5 if x == y else 0.0


def loop_delong(positive, score_a, score_b):
    """DeLong et al. (1988) from the definitions, O(m n) explicit loops (independent of the
    midrank code): AUCs, variances, covariance and the z statistic."""
    pos = [i for i, p in enumerate(positive) if p]
    neg = [j for j, p in enumerate(positive) if not p]
    m, n = len(pos), len(neg)
    v10, v01, aucs = [], [], []
    for s in (score_a, score_b):
        row10 = [sum(_psi(s[i], s[j]) for j in neg) / n for i in pos]
        row01 = [sum(_psi(s[i], s[j]) for i in pos) / m for j in neg]
        v10.append(row10)
        v01.append(row01)
        aucs.append(sum(row10) / m)

    def cov(rows, r, t, size):
        return sum((rows[r][k] - aucs[r]) * (rows[t][k] - aucs[t])
                   for k in range(size)) / (size - 1)

    s = [[cov(v10, r, t, m) / m + cov(v01, r, t, n) / n for t in range(2)] for r in range(2)]
    var_d = s[0][0] + s[1][1] - 2 * s[0][1]
    z = (aucs[0] - aucs[1]) / math.sqrt(var_d)
    return aucs, s, z


# --------------------------------------------------------------------------- hand example

# 3 positives, 2 negatives.  Model A: positives 0.9 0.6 0.4, negatives 0.5 0.4 (one tie).
# Model B: positives 0.7 0.2 0.8, negatives 0.3 0.6.
HAND_POSITIVE = [1, 1, 1, 0, 0]
HAND_A = [0.9, 0.6, 0.4, 0.5, 0.4]
HAND_B = [0.7, 0.2, 0.8, 0.3, 0.6]


def test_hand_example_worked_in_fractions():
    # A: V10 = (1, 1, 1/4) (0.4 loses to 0.5, ties 0.4), V01 = (2/3, 5/6); AUC 3/4.
    # B: V10 = (1, 0, 1), V01 = (2/3, 2/3); AUC 2/3.
    # S10 = [[3/16, -1/8], [-1/8, 1/3]], S01 = [[1/72, 0], [0, 0]]
    # S = S10 / 3 + S01 / 2: var A = 1/16 + 1/144 = 10/144, var B = 1/9, cov = -1/24.
    # Var(d) = 10/144 + 16/144 + 12/144 = 19/72, d = 1/12.
    var_a, var_b, cov = F(10, 144), F(1, 9), F(-1, 24)
    var_d = F(19, 72)
    assert var_a + var_b - 2 * cov == var_d
    z = (1 / 12) / math.sqrt(19 / 72)
    result = delong_test(HAND_POSITIVE, HAND_A, HAND_B)
    assert result.auc_a == pytest.approx(0.75, abs=1e-15)
    assert result.auc_b == pytest.approx(2 / 3, abs=1e-15)
    assert result.difference == pytest.approx(1 / 12, abs=1e-15)
    assert result.var_a == pytest.approx(float(var_a), abs=1e-15)
    assert result.var_b == pytest.approx(float(var_b), abs=1e-15)
    assert result.covariance == pytest.approx(float(cov), abs=1e-15)
    assert result.se == pytest.approx(math.sqrt(19 / 72), rel=1e-14)
    assert result.z == pytest.approx(z, rel=1e-14)
    assert result.p_value == pytest.approx(2 * (1 - norm.cdf(abs(z))), rel=1e-12)
    half = 1.959963984540054 * math.sqrt(19 / 72)
    assert (result.low, result.high) == (pytest.approx(1 / 12 - half, rel=1e-12),
                                         pytest.approx(1 / 12 + half, rel=1e-12))
    assert (result.num_positive, result.num_negative) == (3, 2)

    auc, v10, v01 = placement_values(np.array(HAND_POSITIVE, bool), HAND_A)
    np.testing.assert_allclose(v10, [1, 1, 0.25], atol=1e-15)
    np.testing.assert_allclose(v01, [2 / 3, 5 / 6], atol=1e-15)
    assert auc == pytest.approx(roc_auc_score(HAND_POSITIVE, HAND_A), abs=1e-15)

    aucs, s, z_loop = loop_delong(HAND_POSITIVE, HAND_A, HAND_B)
    assert s[0][1] == pytest.approx(float(cov), abs=1e-15) and z_loop == pytest.approx(z)


def test_midranks_equal_scipy_rankdata():
    rng = np.random.default_rng(3)
    for size in (1, 2, 7, 100):
        values = rng.integers(0, 5, size).astype(float)
        np.testing.assert_array_equal(midranks(values), rankdata(values, method='average'))
    np.testing.assert_array_equal(midranks([3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0])


# ------------------------------------------------------------------------------ random data

@pytest.mark.parametrize('seed', range(6))
def test_random_data_with_ties_matches_the_loop_and_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 80))
    positive = rng.random(n) < 0.4
    positive[:2], positive[2:4] = True, False
    # Scores rounded to one decimal: many ties within and across the classes.
    score_a = np.round(np.clip(0.3 * positive + rng.normal(0.4, 0.25, n), 0, 1), 1)
    score_b = np.round(np.clip(0.1 * positive + 0.5 * score_a + rng.normal(0.2, 0.2, n), 0, 1),
                       1)
    result = delong_test(positive, score_a, score_b)
    aucs, s, z = loop_delong(positive, score_a, score_b)
    assert result.auc_a == pytest.approx(roc_auc_score(positive, score_a), abs=1e-12)
    assert result.auc_b == pytest.approx(roc_auc_score(positive, score_b), abs=1e-12)
    assert result.auc_a == pytest.approx(aucs[0], abs=1e-12)
    assert result.auc_b == pytest.approx(aucs[1], abs=1e-12)
    assert result.var_a == pytest.approx(s[0][0], rel=1e-10, abs=1e-15)
    assert result.var_b == pytest.approx(s[1][1], rel=1e-10, abs=1e-15)
    assert result.covariance == pytest.approx(s[0][1], rel=1e-10, abs=1e-15)
    assert result.z == pytest.approx(z, rel=1e-10)
    assert result.p_value == pytest.approx(2 * norm.sf(abs(z)), rel=1e-10)
    assert result.low < result.difference < result.high
    assert (result.low < 0 < result.high) == (result.p_value > 0.05)


def test_swapping_the_models_and_degenerate_cases():
    rng = np.random.default_rng(1)
    positive = np.arange(40) % 2 == 0
    a, b = rng.random(40) + positive, rng.random(40)
    ab, ba = delong_test(positive, a, b), delong_test(positive, b, a)
    assert ba.difference == pytest.approx(-ab.difference)
    assert ba.z == pytest.approx(-ab.z) and ba.p_value == pytest.approx(ab.p_value)
    same = delong_test(positive, a, a)                      # Var(d) = 0, d = 0
    assert same.difference == 0 and same.p_value == 1.0 and math.isnan(same.z)
    perfect = delong_test(positive, positive * 1.0, positive * 2.0)
    assert perfect.auc_a == perfect.auc_b == 1.0 and perfect.p_value == 1.0
    assert json.dumps(same.to_dict())  # NaN -> None
    with pytest.raises(ValueError, match='two positives and two negatives'):
        delong_test([1, 0, 0], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])
    with pytest.raises(ValueError, match='labels but'):
        delong_test([1, 0], [0.1], [0.2, 0.3])


# --------------------------------------------------------------------------- compare_runs

def _write_report(folder: Path, labels, scores, classes, config):
    labels, scores = np.asarray(labels), np.asarray(scores, float)
    images = [f'test/{classes[y]}/img_{i:04d}.jpg' for i, y in enumerate(labels)]
    evaluation = evaluate_predictions(labels, scores, classes=classes)
    last = LastEvaluation(evaluation, labels, scores.argmax(1), scores, images)
    metrics = {f'medical/{k}': v for k, v in evaluation.summary.items()}
    write_test_report(last, folder, metrics, extra=dict(config=config, checkpoint='best.pth'))


def _scores(rng, labels, classes, skill):
    logits = rng.normal(size=(len(labels), classes))
    logits[np.arange(len(labels)), labels] += skill
    return np.round(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 6)


def _row(text, label):
    line = next(x for x in text.splitlines() if x.startswith(f'| {label} |'))
    return [cell.strip() for cell in line.strip('|').split('|')]


def test_compare_runs_binary_has_the_delong_row(tmp_path):
    rng = np.random.default_rng(5)
    classes = ['benign', 'malignant']
    labels = np.arange(120) % 2
    sa, sb = _scores(rng, labels, 2, 1.5), _scores(rng, labels, 2, 0.8)
    _write_report(tmp_path / 'a', labels, sa, classes, 'a_isic.py')
    _write_report(tmp_path / 'b', labels, sb, classes, 'b_isic.py')
    proc = ok(call_tool(tmp_path, 'analysis_tools/compare_runs.py', tmp_path / 'a',
                        tmp_path / 'b', '--resamples', '200', '--out', 'cmp.json'))
    result = json.loads((tmp_path / 'cmp.json').read_text())
    expected = loop_delong(labels == 1, sa[:, 1], sb[:, 1])
    delong = result['delong']
    assert delong['auc_a'] == pytest.approx(roc_auc_score(labels, sa[:, 1]), abs=1e-12)
    assert delong['auc_b'] == pytest.approx(roc_auc_score(labels, sb[:, 1]), abs=1e-12)
    assert delong['z'] == pytest.approx(expected[2], rel=1e-9)
    assert delong['p_value'] == pytest.approx(2 * norm.sf(abs(expected[2])), rel=1e-9)
    assert (delong['num_positive'], delong['num_negative']) == (60, 60)
    assert delong['auc_a'] == pytest.approx(result['paired_bootstrap']['auc']['a'], abs=1e-12)
    row = _row(proc.stdout, 'AUC (DeLong)')
    assert row[1] == f"{delong['auc_a']:.4f}" and row[3] == f"{delong['difference']:+.4f}"
    assert row[4] == f"[{delong['low']:+.4f}, {delong['high']:+.4f}]"
    assert row[6].startswith('DeLong (z = ') and '60 positive / 60 negative' in row[6]
    assert _row(proc.stdout, 'AUC')[6] == 'paired bootstrap (200 rounds)'

    # --pos-label 0 scores class 0: the same AUCs (two classes), the other way round.
    flipped = compare_predictions(load_predictions(tmp_path / 'a'),
                                  load_predictions(tmp_path / 'b'), resamples=20, pos_label=0)
    assert flipped.delong.auc_a == pytest.approx(roc_auc_score(labels == 0, sa[:, 0]))
    assert '| AUC (DeLong) |' in comparison_markdown(flipped)


def test_compare_runs_multiclass_uses_the_bootstrap_for_macro_auc(tmp_path):
    rng = np.random.default_rng(6)
    classes = ['MEL', 'NV', 'BCC']
    labels = np.arange(90) % 3
    sa, sb = _scores(rng, labels, 3, 1.5), _scores(rng, labels, 3, 0.8)
    _write_report(tmp_path / 'a', labels, sa, classes, 'a_isic.py')
    _write_report(tmp_path / 'b', labels, sb, classes, 'b_isic.py')
    proc = ok(call_tool(tmp_path, 'analysis_tools/compare_runs.py', tmp_path / 'a',
                        tmp_path / 'b', '--resamples', '200', '--out', 'cmp.json'))
    result = json.loads((tmp_path / 'cmp.json').read_text())
    assert result['delong'] is None
    assert result['auc_test'] == 'paired bootstrap of the one-vs-rest macro AUC'
    auc = result['paired_bootstrap']['auc']
    macro = np.mean([roc_auc_score(labels == k, sa[:, k]) for k in range(3)])
    assert auc['a'] == pytest.approx(macro, abs=1e-12)
    assert auc['a'] == pytest.approx(roc_auc_score(labels, sa, multi_class='ovr'), abs=1e-12)
    assert auc['valid_resamples'] == 200 and 0 < auc['p_value'] <= 1
    row = _row(proc.stdout, 'AUC')
    assert row[1] == f"{auc['a']:.4f}" and row[6] == 'paired bootstrap (200 rounds)'
    assert '| AUC (DeLong) |' not in proc.stdout
    assert 'one-vs-rest macro mean' in proc.stdout


def test_compare_notes_when_delong_cannot_run():
    from hifuse_mm.analysis import Predictions
    labels = np.array([1] + [0] * 9)
    rng = np.random.default_rng(2)
    sa, sb = _scores(rng, labels, 2, 1.0), _scores(rng, labels, 2, 0.5)
    images = [f'{i}.png' for i in range(10)]
    a = Predictions(images, labels, sa.argmax(1), sa, ['neg', 'pos'], [Path('a')])
    b = Predictions(images, labels, sb.argmax(1), sb, ['neg', 'pos'], [Path('b')])
    result = compare_predictions(a, b, resamples=20)
    assert result.delong is None and result.to_dict()['delong'] is None
    text = comparison_markdown(result)
    assert '| AUC (DeLong) |' not in text
    assert "Note: DeLong's test not run: DeLong needs at least two positives" in text
