"""Compare two runs tested on the same images (``tools/analysis_tools/compare_runs.py``).

Accuracy: McNemar's exact test (p-value) and the paired-bootstrap interval of the accuracy
difference. Macro F1 and AUC: paired-bootstrap interval and p-value of the difference (for
more than two classes the AUC is the one-vs-rest macro mean, so its difference is tested by the
paired bootstrap only). Two classes: also DeLong's test of the two correlated AUCs (row
``AUC (DeLong)``). See :mod:`.paired_tests` and :mod:`.delong` for the definitions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from scipy.stats import norm

from .delong import DeLongResult, delong_test
from .paired_tests import (BOOTSTRAP_METRICS, PairedDifference, discordant_counts,
                           mcnemar_exact, paired_bootstrap)
from .predictions import Predictions, pair_predictions

METRIC_NAMES = {'accuracy': 'Accuracy', 'f1_macro': 'Macro F1', 'auc': 'AUC'}


@dataclass
class Comparison:
    """Paired comparison of runs A and B.

    Attributes:
        name_a, name_b: Labels of the runs.
        num_samples: Test images compared.
        classes: Class names.
        only_a_correct: McNemar's ``b``: images only A classifies correctly.
        only_b_correct: McNemar's ``c``: images only B classifies correctly.
        mcnemar_p: Exact McNemar p-value (accuracy).
        differences: Metric -> paired bootstrap of ``A - B``.
        pos_label: Positive class of the binary AUC.
        notes: Remarks (rounds left out, ...).
        delong: DeLong's test of the binary AUCs (two classes; None otherwise or when it is
            undefined, e.g. fewer than two images of a class).
    """
    name_a: str
    name_b: str
    num_samples: int
    classes: List[str]
    only_a_correct: int
    only_b_correct: int
    mcnemar_p: float
    differences: Dict[str, PairedDifference]
    pos_label: int
    notes: List[str] = field(default_factory=list)
    delong: Optional[DeLongResult] = None

    def p_value(self, metric: str) -> float:
        """The reported test's p-value: McNemar for accuracy, the bootstrap otherwise."""
        return self.mcnemar_p if metric == 'accuracy' else self.differences[metric].p_value

    def to_dict(self) -> Dict[str, object]:
        """JSON-able summary (NaN as None)."""
        return dict(
            run_a=self.name_a, run_b=self.name_b, num_samples=self.num_samples,
            classes=self.classes, pos_label=self.pos_label,
            mcnemar=dict(only_a_correct=self.only_a_correct,
                         only_b_correct=self.only_b_correct, p_value=self.mcnemar_p,
                         test='exact two-sided binomial test of b vs b + c at 1/2'),
            paired_bootstrap={k: v.to_dict() for k, v in self.differences.items()},
            delong=None if self.delong is None else dict(
                self.delong.to_dict(),
                test="DeLong's test of two correlated ROC AUCs (normal approximation)"),
            auc_test=("DeLong's test and paired bootstrap" if self.delong is not None else
                      'paired bootstrap' + (' of the one-vs-rest macro AUC'
                                            if len(self.classes) > 2 else '')),
            notes=self.notes)


def compare_predictions(a: Predictions, b: Predictions, name_a: str = 'A', name_b: str = 'B',
                        resamples: int = 10000, seed: int = 0, confidence: float = 0.95,
                        pos_label: int = 1) -> Comparison:
    """Pair the two runs' predictions (refusing different test images) and test them."""
    a, b = pair_predictions(a, b)
    correct_a, correct_b = a.preds == a.labels, b.preds == b.labels
    only_a, only_b = discordant_counts(correct_a, correct_b)
    differences = paired_bootstrap(a.labels, a.preds, a.scores, b.preds, b.scores,
                                   metrics=BOOTSTRAP_METRICS, resamples=resamples, seed=seed,
                                   confidence=confidence, pos_label=pos_label)
    notes = []
    for item in differences.values():
        left_out = item.resamples - item.valid_resamples
        if left_out:
            notes.append(f'{METRIC_NAMES[item.metric]}: {left_out} of {item.resamples} '
                         'bootstrap rounds left out (undefined: the resample held one class)')
    delong = None
    if len(a.classes) == 2:
        try:
            delong = delong_test(a.labels == pos_label, a.scores[:, pos_label],
                                 b.scores[:, pos_label], confidence=confidence)
        except ValueError as err:
            notes.append(f"DeLong's test not run: {err}")
    if len(a) < 30:
        notes.append(f'only {len(a)} test images: the tests have little power')
    return Comparison(name_a, name_b, len(a), list(a.classes), only_a, only_b,
                      mcnemar_exact(only_a, only_b), differences, pos_label, notes, delong)


def _fmt(value: Optional[float], digits: int = 4, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '–'
    return f'{value:+.{digits}f}' if sign else f'{value:.{digits}f}'


def _fmt_p(value: float) -> str:
    if math.isnan(value):
        return '–'
    return f'{value:.4f}' if value >= 1e-4 else f'{value:.2e}'


def comparison_markdown(result: Comparison) -> str:
    """The comparison as a Markdown table with a legend."""
    any_item = next(iter(result.differences.values()))
    level = f'{any_item.confidence * 100:g}%'
    lines = [f'# {result.name_a} (A) vs {result.name_b} (B)', '',
             f'{result.num_samples} test images, {len(result.classes)} classes.', '',
             f'| metric | A | B | A − B | {level} CI of A − B | p-value | test |',
             '|---|---:|---:|---:|---|---:|---|']
    for metric in BOOTSTRAP_METRICS:
        item = result.differences[metric]
        test = (f'McNemar exact (b = {result.only_a_correct}, c = {result.only_b_correct})'
                if metric == 'accuracy' else
                f'paired bootstrap ({item.valid_resamples} rounds)')
        interval = (f'[{_fmt(item.low, sign=True)}, {_fmt(item.high, sign=True)}]'
                    if not math.isnan(item.low) else '–')
        lines.append(f'| {METRIC_NAMES[metric]} | {_fmt(item.a)} | {_fmt(item.b)} | '
                     f'{_fmt(item.difference, sign=True)} | {interval} | '
                     f'{_fmt_p(result.p_value(metric))} | {test} |')
    if result.delong is not None:
        d = result.delong
        lines.append(f'| AUC (DeLong) | {_fmt(d.auc_a)} | {_fmt(d.auc_b)} | '
                     f'{_fmt(d.difference, sign=True)} | '
                     f'[{_fmt(d.low, sign=True)}, {_fmt(d.high, sign=True)}] | '
                     f'{_fmt_p(d.p_value)} | DeLong (z = {_fmt(d.z, 2)}, '
                     f'{d.num_positive} positive / {d.num_negative} negative) |')
    resamples, seed = any_item.resamples, any_item.seed
    lines += [
        '',
        f'b / c: images only A / only B classifies correctly. Intervals: percentile paired '
        f'bootstrap, {resamples} rounds, seed {seed} (the same resampled images for A and B). '
        'Bootstrap p-value: (1 + #{|d* - d| >= |d|}) / (1 + rounds), the resampled '
        'differences d* shifted to the null hypothesis A - B = 0.'
        + (f' Binary AUC of class {result.classes[result.pos_label]!r}.'
           if len(result.classes) == 2 else
           ' AUC: one-vs-rest macro mean over the classes; its difference is tested by the '
           "paired bootstrap (DeLong's test applies to two classes)."),
    ]
    if result.delong is not None:
        lines.append("AUC (DeLong): DeLong's test of the two correlated ROC AUCs (DeLong et al., "
                     '1988); z = (A − B) / se, the interval is the normal approximation A − B ± '
                     f'{_fmt(float(norm.ppf((1 + result.delong.confidence) / 2)), 2)} se.')
    lines += [f'Note: {note}' for note in result.notes]
    lines.append('')
    return '\n'.join(lines)
