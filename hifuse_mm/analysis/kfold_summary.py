"""Summary of repeated runs (cross-validation folds, seeds): mean and standard deviation of every
test metric over the runs, and the Markdown table of ``kfold.md`` / ``seeds.md``
(``tools/kfold.py``, ``tools/seeds.py``)."""
from __future__ import annotations

import math
from typing import Dict

import numpy as np


def summarise(results: Dict[str, Dict[str, float]]) -> Dict[str, Dict[str, float]]:
    """``{'mean': {...}, 'std': {...}}`` over folds (sample std, NaN-aware, NaN if < 2)."""
    keys = list(dict.fromkeys(k for metrics in results.values() for k in metrics))
    mean, std = {}, {}
    for key in keys:
        values = np.array([results[f].get(key, math.nan) for f in results], float)
        finite = values[np.isfinite(values)]
        mean[key] = float(finite.mean()) if len(finite) else math.nan
        std[key] = float(finite.std(ddof=1)) if len(finite) > 1 else math.nan
    return dict(mean=mean, std=std)


def markdown_table(results: Dict[str, Dict[str, float]], summary: Dict[str, Dict[str, float]],
                   title: str, unit: str = 'folds') -> str:
    """Metrics as rows; runs (folds or seeds: ``unit``), mean and std as columns (4 decimals)."""
    folds = list(results)

    def cell(value: float) -> str:
        return 'n/a' if value is None or math.isnan(value) else f'{value:.4f}'

    lines = [f'# {title}', '',
             '| metric | ' + ' | '.join(folds) + ' | mean | std |',
             '|---|' + '---:|' * (len(folds) + 2)]
    for key in summary['mean']:
        row = [cell(results[f].get(key, math.nan)) for f in folds]
        row += [cell(summary['mean'][key]), cell(summary['std'][key])]
        lines.append(f'| {key} | ' + ' | '.join(row) + ' |')
    lines += ['', f'std: sample standard deviation over {len(folds)} {unit} (ddof = 1).', '']
    return '\n'.join(lines)
