"""The report's comparison of several runs: the paper-style table of
``results_table.py`` (:func:`hifuse_mm.analysis.build_table`) and, for every pair of runs tested
on the same images, the paired tests of ``compare_runs.py``
(:func:`hifuse_mm.analysis.compare_predictions`: McNemar's exact test of accuracy, the paired
bootstrap of accuracy, macro F1 and AUC, and DeLong's test of two binary AUCs). A pair that
cannot be paired (other test images, a seeds run) is listed with the reason.
"""
from __future__ import annotations

import itertools
import math
from typing import Callable, List, Optional, Sequence

from ..compare import METRIC_NAMES, Comparison, compare_predictions
from ..predictions import pair_predictions
from ..results_table import COLUMNS, build_table
from ..run_results import RunResultError
from .html import Html, join, missing, paragraph, table, tag
from .run_context import RunContext

#: Up to this many runs every pair is tested; beyond it each run against the first.
ALL_PAIRS_UP_TO = 4


def _value(value: Optional[float], scale: float, digits: int) -> Optional[str]:
    if value is None or not math.isfinite(value):
        return None
    return f'{value * scale:.{digits}f}'


def comparison_table(contexts: Sequence[RunContext]) -> Html:
    """``results_table.py``'s table (no params / FLOPs counting) as HTML."""
    result = build_table([c.run for c in contexts], labels=[c.label for c in contexts],
                         title='Comparison')
    columns = [c for c in COLUMNS
               if any(r.cells[c.key].value is not None for r in result.rows)]
    rows = []
    for row in result.rows:
        cells = [row.label]
        for column in columns:
            cell = row.cells[column.key]
            value = _value(cell.value, column.scale, column.digits)
            sd = _value(cell.sd, column.scale, column.digits)
            low = _value(cell.low, column.scale, column.digits)
            high = _value(cell.high, column.scale, column.digits)
            cells.append('–' if value is None else f'{value} ± {sd}' if sd is not None else
                         f'{value} ({low}–{high})' if low is not None and high is not None
                         else value)
        rows.append(cells)
    legend = [line.replace('`', '') for line in result.legend()]
    return join([table(['run', *(c.header for c in columns)], rows,
                       numeric=[False] + [True] * len(columns)),
                 *(paragraph(line) for line in legend),
                 *(tag('p', f'Note: {note}', class_='missing') for note in result.notes)])


def _p(value: float) -> str:
    if math.isnan(value):
        return '–'
    return f'{value:.4f}' if value >= 1e-4 else f'{value:.2e}'


def _num(value: float, sign: bool = False) -> str:
    if value is None or math.isnan(value):
        return '–'
    return f'{value:+.4f}' if sign else f'{value:.4f}'


def comparison_rows(result: Comparison) -> List[List[str]]:
    """One row per tested metric (and DeLong's test of binary AUCs)."""
    rows = []
    for metric, item in result.differences.items():
        test = (f'McNemar exact (b = {result.only_a_correct}, c = {result.only_b_correct})'
                if metric == 'accuracy' else f'paired bootstrap ({item.valid_resamples} rounds)')
        rows.append([METRIC_NAMES[metric], _num(item.a), _num(item.b),
                     _num(item.difference, True),
                     f'{_num(item.low, True)} – {_num(item.high, True)}',
                     _p(result.p_value(metric)), test])
    if result.delong is not None:
        d = result.delong
        rows.append(['AUC (DeLong)', _num(d.auc_a), _num(d.auc_b), _num(d.difference, True),
                     f'{_num(d.low, True)} – {_num(d.high, True)}', _p(d.p_value),
                     f'DeLong (z = {d.z:.2f})'])
    return rows


def paired_tests(contexts: Sequence[RunContext], resamples: int, seed: int,
                 progress: Callable[[str], None]) -> Html:
    """Paired tests of the runs tested on the same images."""
    if len(contexts) <= ALL_PAIRS_UP_TO:
        pairs = list(itertools.combinations(contexts, 2))
    else:
        pairs = [(contexts[0], other) for other in contexts[1:]]
    parts: List[object] = []
    for a, b in pairs:
        title = f'{a.label} (A) vs {b.label} (B)'
        parts.append(tag('h4', title))
        reasons = [f'{c.label}: ' + ('a seeds run tests the same images once per seed; compare '
                                     "one seed's report" if c.run.kind == 'seeds'
                                     else c.predictions_problem())
                   for c in (a, b) if c.run.kind == 'seeds' or c.predictions() is None]
        if reasons:
            parts.append(missing('Paired tests', '; '.join(reasons)))
            continue
        try:
            pair_predictions(a.predictions(), b.predictions())
        except RunResultError as err:
            parts.append(missing('Paired tests', str(err)))
            continue
        progress(f'paired tests: {title} ({resamples} bootstrap rounds)')
        result = compare_predictions(a.predictions(), b.predictions(), a.label, b.label,
                                     resamples=resamples, seed=seed)
        level = f'{next(iter(result.differences.values())).confidence * 100:g}%'
        parts += [paragraph(f'{result.num_samples} test images, {len(result.classes)} '
                            'classes; b / c: images only A / only B classifies correctly.'),
                  table(['metric', 'A', 'B', 'A − B', f'{level} interval of A − B', 'p-value',
                         'test'], comparison_rows(result),
                        numeric=[False, True, True, True, True, True, False]),
                  *(tag('p', f'Note: {note}', class_='missing') for note in result.notes)]
    parts.append(paragraph(
        f'Paired bootstrap: {resamples} rounds, seed {seed}, the same resampled images for A '
        'and B; p-value (1 + #{|d* − d| ≥ |d|}) / (1 + rounds). Definitions: '
        'hifuse_mm/analysis/paired_tests.py and delong.py (compare_runs.py gives the same '
        'numbers).'))
    return join(parts)


def comparison_section(contexts: Sequence[RunContext], resamples: int, seed: int,
                       progress: Callable[[str], None]) -> Html:
    """The comparison block of several runs."""
    return join([tag('h3', 'Comparison of the runs'), comparison_table(contexts),
                 tag('h4', 'Paired tests (same test images)'),
                 paired_tests(contexts, resamples, seed, progress)])
