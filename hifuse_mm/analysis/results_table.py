"""Comparison tables in the papers' layout (``tools/analysis_tools/results_table.py``).

One row per run (:mod:`.run_results`): Params (M), FLOPs (G), accuracy, macro F1, macro
precision, macro recall (%), MCC, Cohen's kappa and AUC. A test report made with
``tools/test.py --bootstrap N`` adds its confidence intervals (accuracy, macro F1, AUC), shown
as ``value (low–high)``; a k-fold run shows ``mean ± sd`` over its folds (sample sd). A value
that is missing or undefined is shown as ``–`` (``--`` in LaTeX, empty in the CSV).

The same table is written as Markdown (for READMEs), CSV (one column per value, interval end
and sd, in the displayed units) and LaTeX (``booktabs``).
"""
from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..utils.output_files import check_new_files
from .run_results import RunResult


@dataclass(frozen=True)
class Column:
    """A table column: ``key`` in the run's metrics (or ``params`` / ``flops``)."""
    key: str
    header: str
    latex: str
    csv: str
    scale: float
    digits: int
    higher_is_better: Optional[bool] = True


COLUMNS: Tuple[Column, ...] = (
    Column('params', 'Params (M)', 'Params (M)', 'params_M', 1e-6, 2, None),
    Column('flops', 'FLOPs (G)', 'FLOPs (G)', 'flops_G', 1e-9, 2, None),
    Column('accuracy', 'Acc (%)', r'Acc (\%)', 'acc_pct', 100.0, 2),
    Column('f1_macro', 'F1 (%)', r'F1 (\%)', 'f1_macro_pct', 100.0, 2),
    Column('precision_macro', 'Prec (%)', r'Prec (\%)', 'precision_macro_pct', 100.0, 2),
    Column('recall_macro', 'Recall (%)', r'Recall (\%)', 'recall_macro_pct', 100.0, 2),
    Column('mcc', 'MCC', 'MCC', 'mcc', 1.0, 4),
    Column('kappa', 'Kappa', r'$\kappa$', 'kappa', 1.0, 4),
    Column('auc', 'AUC', 'AUC', 'auc', 1.0, 4),
)
FORMATS = ('md', 'csv', 'tex')


@dataclass
class Cell:
    """One value with its optional interval or standard deviation (raw units)."""
    value: Optional[float]
    low: Optional[float] = None
    high: Optional[float] = None
    sd: Optional[float] = None


@dataclass
class TableRow:
    """One run's cells by column key."""
    label: str
    run: RunResult
    cells: Dict[str, Cell]
    input_shape: Optional[Tuple[int, int]] = None


@dataclass
class ResultsTable:
    """Rows, the legend and remarks (different test sets, missing counts, ...)."""
    rows: List[TableRow]
    title: str
    notes: List[str] = field(default_factory=list)
    bold_best: bool = False

    def legend(self, latex: bool = False) -> List[str]:
        """Explanation of the cells, as Markdown or LaTeX text."""
        esc = latex_escape if latex else str
        dash, pm = ('--', '$\\pm$') if latex else ('–', '±')

        def code(text: str) -> str:
            return ('\\texttt{' + latex_escape(text).replace('--', '-{}-') + '}' if latex
                    else f'`{text}`')

        lines = [esc('F1, Prec, Recall: macro averages over the classes.')]
        with_ci = [r.run for r in self.rows if r.run.ci]
        if with_ci:
            levels = sorted({run.ci_confidence or 0.95 for run in with_ci})
            resamples = sorted({run.ci_resamples for run in with_ci if run.ci_resamples})
            option = '--bootstrap ' + ('/'.join(map(str, resamples)) if resamples else 'N')
            lines.append(f'(low{dash}high): '
                         + esc(', '.join(f'{c * 100:g}%' for c in levels)
                               + ' percentile bootstrap interval over the test images')
                         + f' ({code("tools/test.py " + option)}).')
        folds = sorted({len(r.run.folds) for r in self.rows if r.run.kind == 'kfold'})
        if folds:
            lines.append(f'mean {pm} sd: ' + esc('over the ' + '/'.join(map(str, folds))
                                                  + ' cross-validation folds (sample '
                                                  'standard deviation).'))
        seeds = sorted({len(r.run.folds) for r in self.rows if r.run.kind == 'seeds'})
        if seeds:
            lines.append(f'mean {pm} sd: ' + esc('over ' + '/'.join(map(str, seeds))
                                                  + ' training seeds on the same test split '
                                                  '(sample standard deviation).'))
        shapes = sorted({r.input_shape for r in self.rows if r.input_shape})
        if shapes:
            size = (f'{shapes[0][0]}x{shapes[0][1]} input' if len(shapes) == 1 else
                    "each run's test input size (the CSV's input_size)")
            lines.append(esc(f'FLOPs: one multiply-add counted once, at {size}, attention '
                             'matmuls not counted (as in the HiFuse / HEMF papers).'))
        lines.append(f'{dash}: ' + esc('not available.'))
        return lines


def _labels(runs: Sequence[RunResult], labels: Optional[Sequence[str]]) -> List[str]:
    if labels is not None:
        if len(labels) != len(runs):
            raise ValueError(f'{len(labels)} labels given for {len(runs)} runs')
        return list(labels)
    names = [run.config_name or (run.path.parent.name if run.path.is_file()
                                 else run.path.resolve().name) for run in runs]
    counts = Counter(names)
    return [f'{name} [{run.path}]' if counts[name] > 1 else name
            for name, run in zip(names, runs)]


def _row(label: str, run: RunResult, complexity: Dict[str, object]) -> TableRow:
    cells = {}
    for column in COLUMNS:
        if column.key in ('params', 'flops'):
            value = complexity.get(column.key)
            cells[column.key] = Cell(float(value) if isinstance(value, (int, float)) else None)
            continue
        low, high = run.ci.get(column.key, (None, None))
        cells[column.key] = Cell(run.metrics.get(column.key), low, high,
                                 run.sd.get(column.key))
    shape = complexity.get('shape')
    return TableRow(label, run, cells, tuple(shape) if shape else None)


def build_table(runs: Sequence[RunResult], labels: Optional[Sequence[str]] = None,
                complexity: Optional[Callable[[RunResult], Dict[str, object]]] = None,
                title: str = 'Test results', bold_best: bool = False) -> ResultsTable:
    """Tabulate ``runs``.

    Args:
        runs: Loaded runs, in row order.
        labels: Row labels (default: the config name of each run).
        complexity: ``run -> {'params', 'flops', 'shape'}`` for runs that record none;
            may raise to leave them out (the reason goes into the notes).
        title: Table title / LaTeX caption.
        bold_best: Mark the best value of every metric column.
    """
    if not runs:
        raise ValueError('no runs to tabulate')
    notes: List[str] = []
    rows = []
    for label, run in zip(_labels(runs, labels), runs):
        counted: Dict[str, object] = dict(run.complexity)
        if complexity is not None and not {'params', 'flops'} <= counted.keys():
            try:
                counted = {**complexity(run), **counted}
            except Exception as err:  # noqa: BLE001 - any failure only costs the two cells
                notes.append(f'{label}: params/FLOPs not counted ({type(err).__name__}: '
                             f'{err})')
        rows.append(_row(label, run, counted))

    sizes = {r.run.num_samples for r in rows if r.run.num_samples is not None}
    class_lists = {tuple(r.run.classes) for r in rows if r.run.classes}
    if len(sizes) > 1 or len(class_lists) > 1:
        detail = ', '.join(f'{r.label}: {r.run.num_samples} images' for r in rows)
        notes.append(f'the runs were not tested on the same test set ({detail}); their '
                     'numbers are not directly comparable')
    for r in rows:
        if r.run.kind in ('kfold', 'seeds') and len(r.run.folds) < 2:
            notes.append(f'{r.label}: a single ' + ('fold' if r.run.kind == 'kfold' else 'seed')
                         + ', no sd')
    return ResultsTable(rows, title, notes, bold_best)


# ---------------------------------------------------------------------------- formatting

def _number(value: Optional[float], column: Column) -> Optional[str]:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return f'{value * column.scale:.{column.digits}f}'


def _best(table: ResultsTable) -> Dict[str, set]:
    """Column key -> labels of the rows holding its best displayed value."""
    best: Dict[str, set] = {}
    if not table.bold_best or len(table.rows) < 2:
        return best
    for column in COLUMNS:
        if column.higher_is_better is None:
            continue
        shown = {r.label: _number(r.cells[column.key].value, column) for r in table.rows}
        values = {label: float(v) for label, v in shown.items() if v is not None}
        if values:
            top = max(values.values()) if column.higher_is_better else min(values.values())
            best[column.key] = {label for label, v in values.items() if v == top}
    return best


def _cell_text(cell: Cell, column: Column, latex: bool) -> str:
    value = _number(cell.value, column)
    if value is None:
        return '--' if latex else '–'
    low, high, sd = (_number(v, column) for v in (cell.low, cell.high, cell.sd))
    if sd is not None:
        return f'{value}\\,$\\pm$\\,{sd}' if latex else f'{value} ± {sd}'
    if low is not None and high is not None:
        return (f'{value}\\,{{\\scriptsize({low}--{high})}}' if latex
                else f'{value} ({low}–{high})')
    return value


def _bold(text: str, latex: bool) -> str:
    return f'\\textbf{{{text}}}' if latex else f'**{text}**'


def _cells(table: ResultsTable, latex: bool) -> List[List[str]]:
    best = _best(table)
    body = []
    for row in table.rows:
        cells = []
        for column in COLUMNS:
            text = _cell_text(row.cells[column.key], column, latex)
            if row.label in best.get(column.key, ()):
                text = _bold(text, latex)
            cells.append(text)
        body.append(cells)
    return body


def to_markdown(table: ResultsTable) -> str:
    """The table as GitHub Markdown, with legend and notes below it."""
    def escape(text: str) -> str:
        return text.replace('|', '\\|')

    lines = [f'## {table.title}', '',
             '| Method | ' + ' | '.join(c.header for c in COLUMNS) + ' |',
             '|---|' + '---:|' * len(COLUMNS)]
    for row, cells in zip(table.rows, _cells(table, latex=False)):
        lines.append(f'| {escape(row.label)} | ' + ' | '.join(cells) + ' |')
    lines += ['', *table.legend()]
    if table.notes:
        lines += ['', *(f'- Note: {note}' for note in table.notes)]
    return '\n'.join(lines) + '\n'


def _csv_value(value: Optional[float], column: Column) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ''
    return f'{value * column.scale:.6g}' if column.scale != 1 else f'{value:.6g}'


def to_csv(table: ResultsTable) -> str:
    """One row per run; for every metric its value, interval ends and sd (displayed units)."""
    header = ['method', 'kind', 'folds', 'num_samples', 'input_size', 'source']
    for column in COLUMNS:
        header.append(column.csv)
        if column.higher_is_better is not None:
            header += [f'{column.csv}_ci_low', f'{column.csv}_ci_high', f'{column.csv}_sd']
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator='\n')
    writer.writerow(header)
    for row in table.rows:
        run = row.run
        values = [row.label, run.kind, len(run.folds) if run.kind in ('kfold', 'seeds') else '',
                  '' if run.num_samples is None else run.num_samples,
                  'x'.join(map(str, row.input_shape)) if row.input_shape else '',
                  str(run.source)]
        for column in COLUMNS:
            cell = row.cells[column.key]
            values.append(_csv_value(cell.value, column))
            if column.higher_is_better is not None:
                values += [_csv_value(v, column) for v in (cell.low, cell.high, cell.sd)]
        writer.writerow(values)
    return stream.getvalue()


_LATEX_SPECIAL = {'\\': r'\textbackslash{}', '&': r'\&', '%': r'\%', '$': r'\$', '#': r'\#',
                  '_': r'\_', '{': r'\{', '}': r'\}', '~': r'\textasciitilde{}',
                  '^': r'\textasciicircum{}'}


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return ''.join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: ResultsTable) -> str:
    """A ``table`` float with a ``booktabs`` tabular; the legend becomes the caption's tail."""
    caption = latex_escape(table.title) + '. ' + ' '.join(table.legend(latex=True))
    lines = ['% Needs \\usepackage{booktabs}. Written by tools/analysis_tools/'
             'results_table.py.',
             '\\begin{table}[t]', '\\centering', '\\small',
             f'\\caption{{{caption}}}',
             '\\begin{tabular}{l' + 'r' * len(COLUMNS) + '}', '\\toprule',
             'Method & ' + ' & '.join(c.latex for c in COLUMNS) + ' \\\\', '\\midrule']
    for row, cells in zip(table.rows, _cells(table, latex=True)):
        lines.append(latex_escape(row.label) + ' & ' + ' & '.join(cells) + ' \\\\')
    lines += ['\\bottomrule', '\\end{tabular}', '\\end{table}']
    lines += [f'% Note: {note}' for note in table.notes]
    return '\n'.join(lines) + '\n'


def table_paths(prefix: Path) -> Dict[str, Path]:
    """``prefix.md``, ``prefix.csv``, ``prefix.tex`` (a given .md/.csv/.tex suffix is dropped)."""
    prefix = Path(prefix)
    if prefix.suffix.lstrip('.') in FORMATS:
        prefix = prefix.with_suffix('')
    return {fmt: prefix.parent / f'{prefix.name}.{fmt}' for fmt in FORMATS}


def write_table(table: ResultsTable, prefix: Path, force: bool = False) -> Dict[str, Path]:
    """Write the three files; refuses (writing nothing) if one exists, unless ``force``."""
    paths = table_paths(prefix)
    check_new_files(paths.values(), force=force)
    paths['md'].parent.mkdir(parents=True, exist_ok=True)
    texts = dict(md=to_markdown(table), csv=to_csv(table), tex=to_latex(table))
    for fmt, path in paths.items():
        path.write_text(texts[fmt])
    return paths
