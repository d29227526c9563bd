"""The report's **Results** section for one run: every metric with its 95% interval, the
per-class table, the confusion matrix, ROC and precision-recall curves, the reliability diagram
before and after temperature scaling, the operating points of the test split and the
thresholds chosen on the validation split.

Figures are drawn again from ``predictions.csv`` with the test report's own plotting functions
(:mod:`hifuse_mm.evaluation.plots`), so a k-fold run gets them for its pooled folds and the
reliability diagram after temperature scaling is drawn with the temperature the test fitted on
the validation split (``--calibrate val``; each fold's own temperature for a k-fold run). A run
without predictions shows the PNGs its report folder holds instead. Whatever a run lacks is
said where it would be, with the flag that adds it.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from ...evaluation.calibration import reliability_bins
from ...evaluation.functional import evaluate_predictions
from ...evaluation.plots import (confusion_matrix_figure, figure_png, pr_figure,
                                 reliability_figure, roc_figure)
from .html import Html, figure, join, missing, paragraph, table, tag
from .run_context import ReportPart, RunContext

#: Metric order of the table (others follow in the report's order).
METRIC_ORDER = ('accuracy', 'balanced_accuracy', 'precision_macro', 'recall_macro', 'f1_macro',
                'mcc', 'kappa', 'auc', 'ece', 'classwise_ece', 'brier', 'nll')
METRIC_NAMES = {
    'accuracy': 'accuracy', 'balanced_accuracy': 'balanced accuracy',
    'precision_macro': 'precision (macro)', 'recall_macro': 'recall (macro)',
    'f1_macro': 'F1 (macro)', 'mcc': 'MCC', 'kappa': "Cohen's kappa", 'auc': 'AUC',
    'ece': 'ECE (top-label, lower is better)', 'classwise_ece': 'class-wise ECE (lower is better)',
    'brier': 'Brier score (lower is better)', 'nll': 'NLL (lower is better)'}
PER_CLASS_COLUMNS = (('precision', 'precision (PPV)'), ('recall', 'recall (sensitivity)'),
                     ('specificity', 'specificity'), ('f1', 'F1'), ('auc', 'AUC'),
                     ('brier', 'Brier'), ('support', 'support'))
BOOTSTRAP_HINT = 'test with tools/test.py CONFIG CHECKPOINT --bootstrap 1000'
Progress = Callable[[str], None]


def fmt(value: Any, digits: int = 4) -> str:
    """A number for the tables (``–`` when missing or undefined)."""
    if value is None or isinstance(value, bool):
        return '–'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return '–' if math.isnan(value) else ('∞' if value > 0 else '−∞')
        return f'{value:.{digits}f}'
    return str(value)


def interval_text(interval: Any, digits: int = 4) -> str:
    """``low – high`` of a ``{'low', 'high'}`` entry (``–`` when missing)."""
    if not isinstance(interval, dict) or interval.get('low') is None \
            or interval.get('high') is None:
        return '–'
    return f'{fmt(interval["low"], digits)} – {fmt(interval["high"], digits)}'


def _metric_keys(context: RunContext) -> List[str]:
    present = list(context.run.metrics)
    return [k for k in METRIC_ORDER if k in present] + [k for k in present
                                                         if k not in METRIC_ORDER]


def _part_metric(part: ReportPart, key: str) -> str:
    metrics = part.content.get('metrics') or {}
    value = metrics.get(f'medical/{key}')
    text = fmt(value if not isinstance(value, (list, dict)) else None)
    interval = (part.content.get('bootstrap') or {}).get(key)
    return text + (f' ({interval_text(interval)})' if isinstance(interval, dict)
                   and interval.get('low') is not None else '')


def metrics_block(context: RunContext) -> Html:
    """Every metric with its interval (test report) or mean ± sd and the per-run values."""
    run = context.run
    keys = _metric_keys(context)
    parts: List[object] = []
    if run.kind == 'test':
        level = f'{(run.ci_confidence or 0.95) * 100:g}%'
        rows = [[METRIC_NAMES.get(k, k), fmt(run.metrics.get(k)),
                 interval_text(dict(low=run.ci[k][0], high=run.ci[k][1]))
                 if k in run.ci else '–'] for k in keys]
        parts.append(table(['metric', 'value', f'{level} interval'], rows,
                           numeric=[False, True, True]))
        if run.ci:
            without = [METRIC_NAMES.get(k, k) for k in keys if k not in run.ci]
            parts.append(paragraph(
                f'Intervals: percentile bootstrap over the test images, {run.ci_resamples} '
                'resamples (tools/test.py --bootstrap)'
                + (f'; it does not resample {", ".join(without)}.' if without else '.')))
        else:
            parts.append(missing('95% intervals', 'the test ran without --bootstrap',
                                 BOOTSTRAP_HINT))
    else:
        unit = 'fold' if run.kind == 'kfold' else 'seed'
        names = [p.name for p in context.parts]
        rows = [[METRIC_NAMES.get(k, k),
                 fmt(run.metrics.get(k)) + (f' ± {fmt(run.sd.get(k))}' if k in run.sd else ''),
                 *(_part_metric(p, k) for p in context.parts)] for k in keys]
        parts.append(table(['metric', f'mean ± sd over {len(run.folds)} {unit}s', *names],
                           rows, numeric=[False] + [True] * (1 + len(names))))
        with_ci = [p.name for p in context.parts if p.content.get('bootstrap')]
        parts.append(paragraph(
            f'mean ± sample sd over the {unit}s; ' + (
                'each ' + unit + "'s own 95% bootstrap interval in brackets." if with_ci else
                'no ' + unit + ' was tested with --bootstrap, so there are no per-' + unit +
                ' intervals.')))
        if not with_ci:
            parts.append(missing(f'Per-{unit} 95% intervals', 'the tests ran without --bootstrap',
                                 f'pass --bootstrap 1000 to tools/{run.kind}.py'))
    return join(parts)


def per_class_block(context: RunContext) -> Html:
    """Per-class precision, recall, specificity, F1, AUC, Brier and support."""
    if context.run.kind == 'kfold':
        predictions = context.predictions()
        if predictions is None:
            return missing('The pooled per-class table', context.predictions_problem())
        per_class = evaluate_predictions(predictions.labels, predictions.scores,
                                         classes=predictions.classes,
                                         ece_bins=context.ece_bins()).per_class
        caption = 'Pooled over the folds (every test image once).'
    else:
        part = context.detail[0]
        per_class = part.content.get('per_class')
        if not isinstance(per_class, dict):
            return missing('The per-class table', f'{part.folder}/metrics.json has none',
                           'test again with tools/test.py')
        caption = '' if context.run.kind == 'test' else f'Of {part.name}.'
    rows = [[name, *(fmt(values.get(key)) for key, _ in PER_CLASS_COLUMNS)]
            for name, values in per_class.items() if isinstance(values, dict)]
    return join([paragraph(caption) if caption else None,
                 table(['class', *(title for _, title in PER_CLASS_COLUMNS)], rows,
                       numeric=[False] + [True] * len(PER_CLASS_COLUMNS))])


def _auc_list(per_class: Dict[str, Any], classes: Sequence[str]) -> List[float]:
    values = []
    for name in classes:
        value = (per_class.get(name) or {}).get('auc')
        values.append(float(value) if isinstance(value, (int, float)) else math.nan)
    return values


def _after_temperature(context: RunContext, labels: Optional[np.ndarray] = None) -> Html:
    """The reliability diagram after temperature scaling, or why there is none."""
    if not all(isinstance(p.content.get('temperature_scaling'), dict) for p in context.detail):
        return missing('The reliability diagram after temperature scaling',
                       'the test ran without --calibrate val (no temperature fitted on the '
                       'validation split)',
                       'test with tools/test.py CONFIG CHECKPOINT --calibrate val')
    not_fitted = [f'{p.name}: {p.content["temperature_scaling"]["not_fitted"]}'
                  for p in context.detail if p.content['temperature_scaling'].get('not_fitted')]
    if not_fitted:
        return missing('The reliability diagram after temperature scaling',
                       'no temperature could be fitted on the validation split ('
                       + '; '.join(not_fitted) + ')')
    scaled = context.scaled_parts()
    if scaled is None or labels is None:
        return missing('The reliability diagram after temperature scaling',
                       'there are no test predictions to rescale: '
                       + context.predictions_problem())
    temperatures = [p.content['temperature_scaling']['temperature'] for p in context.detail]
    shown = ', '.join(f'{t:.3f}' for t in temperatures)
    bins = context.ece_bins()
    pooled = ' (pooled over the folds)' if len(context.detail) > 1 else ''
    return figure(
        figure_png(reliability_figure(reliability_bins(labels, np.concatenate(scaled), bins))),
        f'Reliability diagram after temperature scaling (T = {shown}, fitted on the '
        f'validation split){pooled}.', 'reliability diagram after temperature scaling')


def _existing_pngs(context: RunContext) -> Html:
    """The figures of the report folder when the predictions cannot be read."""
    folder = context.detail[0].folder if context.detail else None
    figures = []
    for name, caption in (('confusion_matrix.png', 'Confusion matrix'), ('roc.png', 'ROC'),
                          ('pr.png', 'Precision-recall'), ('reliability.png', 'Reliability')):
        path = folder / name if folder else None
        if path is not None and path.is_file():
            figures.append(figure(path.read_bytes(), f'{caption} ({path})', caption))
    if not figures:
        return missing('The figures', context.predictions_problem(),
                       'test again with tools/test.py, without --no-report')
    return join([missing('Re-drawn figures', context.predictions_problem(),
                         "the PNGs of the test report folder are shown instead"), *figures,
                 _after_temperature(context)])


def figures_block(context: RunContext, progress: Progress) -> Html:
    """Confusion matrix, ROC, PR, reliability before / after temperature scaling."""
    predictions = context.predictions()
    if predictions is None:
        return _existing_pngs(context)
    progress(f'{context.label}: drawing the confusion matrix, ROC, PR and reliability diagrams')
    labels, scores, classes = predictions.labels, predictions.scores, predictions.classes
    evaluation = evaluate_predictions(labels, scores, classes=classes,
                                      ece_bins=context.ece_bins())
    pooled = ' (pooled over the folds)' if len(context.detail) > 1 else ''
    bins = context.ece_bins()
    parts: List[object] = [
        figure(figure_png(confusion_matrix_figure(evaluation.confusion, classes)),
               f'Confusion matrix{pooled}: counts, and rows normalised (recall on the '
               'diagonal).', 'confusion matrix', class_='wide'),
        figure(figure_png(roc_figure(labels, scores, classes,
                                     _auc_list(evaluation.per_class, classes))),
               f'ROC curves, one class against the rest{pooled}.', 'ROC curves'),
        figure(figure_png(pr_figure(labels, scores, classes)),
               f'Precision-recall curves{pooled}; dotted: each class\'s prevalence.',
               'precision-recall curves'),
        figure(figure_png(reliability_figure(reliability_bins(labels, scores, bins))),
               f'Reliability diagram before temperature scaling{pooled}, {bins} bins.',
               'reliability diagram before temperature scaling'),
    ]
    parts.append(_after_temperature(context, labels))
    return join(parts)


def _threshold_rows(part: ReportPart) -> List[List[str]]:
    section = part.content.get('threshold')
    rows = []
    for name, item in ((section or {}).get('classes') or {}).items():
        val, test = item.get('val') or {}, item.get('test') or {}
        rows.append([part.name, name, fmt(item.get('threshold')), fmt(val.get('sensitivity')),
                     fmt(val.get('specificity')), fmt(test.get('sensitivity')),
                     fmt(test.get('specificity')), fmt(test.get('ppv')), fmt(test.get('npv')),
                     ' / '.join(fmt(test.get(k)) for k in ('tp', 'fp', 'tn', 'fn'))])
    return rows


def choices_block(context: RunContext) -> Html:
    """Operating points of the test split, thresholds and temperature chosen on validation."""
    parts: List[object] = [tag('h4', 'Operating points of the test split')]
    op_rows, header_keys = [], []
    for part in context.detail:
        for name, values in (part.content.get('operating_points') or {}).items():
            if not isinstance(values, dict):
                continue
            intervals = values.get('intervals') or {}
            keys = [k for k in values if k not in ('intervals', 'bootstrap')]
            op_rows.append([part.name, name, *(
                fmt(values.get(k)) + (f' ({interval_text(intervals[k])})'
                                      if isinstance(intervals.get(k), dict)
                                      and intervals[k].get('low') is not None else '')
                for k in keys)])
            header_keys = keys
    if op_rows:
        headers = [k.replace('_at_', ' at ').replace('_', ' ') for k in header_keys]
        parts += [table(['report', 'class', *headers], op_rows,
                        numeric=[False, False] + [True] * len(headers)),
                  paragraph('Read off the test ROC / PR curves; they describe the curve and '
                            'choose nothing. Binary runs: the positive class; more classes: '
                            'each against the rest.')]
    else:
        parts.append(missing('Operating points', 'the test report has none (written by '
                             'tools/test.py since issue 16)', 'test again with tools/test.py'))

    parts.append(tag('h4', 'Thresholds chosen on the validation split'))
    rows = [row for part in context.detail for row in _threshold_rows(part)]
    if rows:
        methods = {(p.content.get('threshold') or {}).get('method') for p in context.detail}
        parts += [table(['report', 'class', 'threshold', 'val sensitivity', 'val specificity',
                         'test sensitivity', 'test specificity', 'test PPV', 'test NPV',
                         'TP / FP / TN / FN'], rows,
                        numeric=[False, False] + [True] * 8),
                  paragraph('Each threshold was chosen on the validation split ('
                            + ', '.join(sorted(str(m) for m in methods if m))
                            + ') and applied unchanged to the test split.')]
    else:
        parts.append(missing('Validation-chosen thresholds', 'the test ran without --threshold '
                             'val (no validation predictions were made)',
                             'test with tools/test.py CONFIG CHECKPOINT --threshold val, or '
                             '--target-specificity 0.95'))

    parts.append(tag('h4', 'Temperature scaling (fitted on the validation split)'))
    rows, calibrated = [], False
    for part in context.detail:
        section = part.content.get('temperature_scaling')
        if not isinstance(section, dict):
            continue
        calibrated = True
        if section.get('not_fitted'):
            parts.append(missing(f'Temperature scaling of {part.name}',
                                 f'no temperature was fitted: {section["not_fitted"]}'))
            continue
        before, after = section.get('before') or {}, section.get('after') or {}
        for key in ('accuracy', 'ece', 'classwise_ece', 'brier', 'nll'):
            rows.append([part.name, fmt(section.get('temperature')), METRIC_NAMES.get(key, key),
                         fmt(before.get(key)), fmt(after.get(key))])
    if rows:
        parts.append(table(['report', 'temperature', 'test metric', 'before', 'after'], rows,
                           numeric=[False, True, False, True, True]))
    elif not calibrated:
        parts.append(missing('Temperature scaling', 'the test ran without --calibrate val',
                             'test with tools/test.py CONFIG CHECKPOINT --calibrate val'))
    return join(parts)


def results_for_run(context: RunContext, progress: Progress) -> Html:
    """The Results block of one run."""
    run = context.run
    kind = {'test': 'test report', 'kfold': f'{len(run.folds)}-fold cross-validation',
            'seeds': f'{len(run.folds)} training seeds'}[run.kind]
    detail = ', '.join(str(p.folder) for p in context.detail)
    intro = (f'{kind}; {run.num_samples if run.num_samples is not None else "?"} test images, '
             f'{len(context.classes)} classes; source {run.source}.')
    if run.kind == 'seeds' and context.detail:
        intro += (f' Figures, the per-class table and the failure analysis are those of '
                  f'{context.detail[0].name} ({detail}); every seed was tested on the same '
                  'images.')
    return join([tag('h3', context.label), paragraph(intro),
                 *(tag('p', note, class_='missing') for note in context.notes),
                 tag('h4', 'Metrics'), metrics_block(context),
                 tag('h4', 'Per class'), per_class_block(context),
                 tag('h4', 'Figures'), figures_block(context, progress),
                 choices_block(context)])

