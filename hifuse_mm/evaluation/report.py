"""The test report ``tools/test.py`` writes: metrics.json, predictions.csv and four figures
(confusion_matrix.png, roc.png, pr.png, reliability.png).

``metrics.json``::

    {"metrics": {"medical/accuracy": ..., ...},    every value the test evaluators returned
     "classes": [...], "num_samples": n,
     "per_class": {"MEL": {"precision", "recall", "specificity", "f1", "auc", "brier",
                           "support"}, ...},
     "confusion_matrix": [[...]],                  rows = true class, columns = predicted
     "bootstrap": {...},                           only with --bootstrap N
     "warnings": [...], "config": ..., "checkpoint": ...,
     "environment": {...}}                         versions, device (tools/test.py)

Undefined values (NaN) are written as ``null`` (JSON has no NaN). ``predictions.csv`` has one
row per test image in dataset order: ``image,label,prediction,prob_<class>...`` (the image path
as in the split list, i.e. relative to the dataset's ``data_root``, in UTF-8 with each byte of a
name that is not UTF-8 as ``\\xNN``; class names; probabilities with 6 decimals). No file
is ever overwritten: an existing one stops the report
before anything is written.

The files are written atomically (:mod:`hifuse_mm.utils.atomic_files`): all six are rendered
in memory first, then each is written to a temporary file and linked under its name only when
complete (in the order of :data:`REPORT_FILES`). A kill or a full disk while writing leaves
complete files or none under the report's names, never a 0-byte or partial ``metrics.json`` or
PNG.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from ..utils.atomic_files import atomic_write_bytes
from ..utils.file_names import printable_name
from .bootstrap import bootstrap_intervals
from .calibration import reliability_bins
from .medical_metrics import LastEvaluation
from .plots import (confusion_matrix_figure, figure_png, pr_figure, reliability_figure,
                    roc_figure)

REPORT_FILES = ('metrics.json', 'predictions.csv', 'confusion_matrix.png', 'roc.png',
                'pr.png', 'reliability.png')


def nan_to_none(value: Any) -> Any:
    """NaN floats -> None, recursively."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [nan_to_none(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """JSON-able version of an evaluator value (tensors/arrays become lists)."""
    if hasattr(value, 'tolist'):
        return value.tolist()
    return value


def _relative(image: str, root: Optional[str]) -> str:
    """``image`` relative to ``root`` (POSIX) when it lies below it, else unchanged."""
    if not root or not image:
        return image
    relative = os.path.relpath(image, root)
    return image if relative.startswith('..') else Path(relative).as_posix()


def write_test_report(last: LastEvaluation, out_dir: Path, metrics: Mapping[str, Any],
                      bootstrap: int = 0, bootstrap_seed: int = 0, pos_label: int = 1,
                      extra: Optional[Dict[str, Any]] = None,
                      data_root: Optional[str] = None) -> Dict[str, Path]:
    """Write the report files (:data:`REPORT_FILES`) into ``out_dir``; returns
    ``{file name: path}``.

    Args:
        last: :attr:`MedicalMetrics.last` after the test.
        out_dir: Folder for the files (created if needed).
        metrics: The test metrics (all evaluators).
        bootstrap: Number of bootstrap resamples (0: no intervals).
        bootstrap_seed: Seed of the bootstrap generator.
        pos_label: Positive class of the binary AUC.
        extra: More top-level entries for metrics.json (config, checkpoint, ...).
        data_root: Image paths under it are written relative to it in predictions.csv.
    Raises:
        FileExistsError: one of the files exists already (nothing is written then).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in REPORT_FILES}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing:
        raise FileExistsError(f'{", ".join(existing)} exist(s) from an earlier test run; '
                              'pick another --work-dir (nothing was overwritten)')
    evaluation = last.evaluation
    content: Dict[str, Any] = dict(
        metrics={k: _plain(v) for k, v in metrics.items()},
        classes=evaluation.classes,
        num_samples=int(len(last.labels)),
        per_class=evaluation.per_class,
        confusion_matrix=evaluation.confusion.tolist(),
    )
    if bootstrap:
        content['bootstrap'] = bootstrap_intervals(last.labels, last.preds, last.scores,
                                                   bootstrap, bootstrap_seed,
                                                   pos_label=pos_label,
                                                   ece_bins=last.ece_bins)
    content['warnings'] = evaluation.warnings
    content.update(extra or {})
    rendered = {'metrics.json': (json.dumps(nan_to_none(content), indent=2) + '\n').encode()}

    csv_text = io.StringIO(newline='')
    writer = csv.writer(csv_text)
    writer.writerow(['image', 'label', 'prediction', *(f'prob_{c}' for c in evaluation.classes)])
    for image, label, pred, scores in zip(last.images, last.labels, last.preds, last.scores):
        writer.writerow([printable_name(_relative(image, data_root)), evaluation.classes[label],
                         evaluation.classes[pred], *(f'{s:.6f}' for s in scores)])
    rendered['predictions.csv'] = csv_text.getvalue().encode()

    rendered['confusion_matrix.png'] = figure_png(
        confusion_matrix_figure(evaluation.confusion, evaluation.classes))
    aucs = [evaluation.per_class[c]['auc'] for c in evaluation.classes]
    rendered['roc.png'] = figure_png(roc_figure(last.labels, last.scores, evaluation.classes,
                                                aucs))
    rendered['pr.png'] = figure_png(pr_figure(last.labels, last.scores, evaluation.classes))
    rendered['reliability.png'] = figure_png(reliability_figure(
        reliability_bins(last.labels, last.scores, last.ece_bins)))
    for name in REPORT_FILES:
        atomic_write_bytes(paths[name], rendered[name], exclusive=True)
    return paths
