"""Per-image test predictions (``predictions.csv`` of a test report) and their pairing.

``predictions.csv`` (written by ``tools/test.py``, see :mod:`hifuse_mm.evaluation.report`) has
the header ``image,label,prediction,prob_<class 0>,prob_<class 1>,...`` and one row per test
image: its path relative to the dataset root, the true and the predicted class names and the
class probabilities. Two runs can be compared image by image only when they were tested on the
same images with the same labels and classes; :func:`pair_predictions` checks that.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .run_results import (PREDICTIONS_FILE, REPORT_FILE, RunResult, RunResultError, load_run,
                          read_test_report)


@dataclass
class Predictions:
    """One run's test predictions.

    Attributes:
        images: Image path of every row (as in the split list).
        labels: True class indices, ``[n]``.
        preds: Predicted class indices, ``[n]``.
        scores: Class probabilities, ``[n, C]``.
        classes: Class names, in index order.
        sources: The ``predictions.csv`` file(s) read.
        name: The run's config name, if known.
    """
    images: List[str]
    labels: np.ndarray
    preds: np.ndarray
    scores: np.ndarray
    classes: List[str]
    sources: List[Path]
    name: Optional[str] = None

    def __len__(self) -> int:
        return len(self.images)

    def take(self, order: Sequence[int]) -> 'Predictions':
        """The rows ``order``, in that order."""
        order = np.asarray(order, np.int64)
        return Predictions([self.images[i] for i in order], self.labels[order],
                           self.preds[order], self.scores[order], self.classes, self.sources,
                           self.name)


def read_predictions(path: Path) -> Predictions:
    """Read one ``predictions.csv``; errors name the file, line and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise RunResultError(f'{path} not found: the test report has no per-image predictions '
                             '(test again with tools/test.py, without --no-report)')
    with open(path, newline='') as stream:
        rows = list(csv.reader(stream))
    if not rows:
        raise RunResultError(f'{path} is empty')
    header = rows[0]
    if header[:3] != ['image', 'label', 'prediction'] or len(header) < 5 \
            or not all(h.startswith('prob_') for h in header[3:]):
        raise RunResultError(f'{path}: header {header[:4]}... is not "image,label,prediction,'
                             'prob_<class>,..." (a predictions.csv written by tools/test.py)')
    classes = [h[len('prob_'):] for h in header[3:]]
    index = {name: k for k, name in enumerate(classes)}
    images, labels, preds, scores = [], [], [], []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise RunResultError(f'{path}, line {line}: {len(row)} fields, expected '
                                 f'{len(header)}')
        for column, name in ((1, 'label'), (2, 'prediction')):
            if row[column] not in index:
                raise RunResultError(f'{path}, line {line}: {name} {row[column]!r} is not one '
                                     f'of the classes {classes}')
        try:
            probs = [float(v) for v in row[3:]]
        except ValueError as err:
            raise RunResultError(f'{path}, line {line}: a probability is not a number '
                                 f'({err})') from err
        if not all(math.isfinite(v) for v in probs):
            raise RunResultError(f'{path}, line {line}: probabilities must be finite')
        images.append(row[0])
        labels.append(index[row[1]])
        preds.append(index[row[2]])
        scores.append(probs)
    if not images:
        raise RunResultError(f'{path} has no prediction rows')
    duplicates = len(images) - len(set(images))
    if duplicates:
        raise RunResultError(f'{path} lists {duplicates} image(s) more than once; images '
                             'must be unique to pair two runs')
    return Predictions(images, np.array(labels, np.int64), np.array(preds, np.int64),
                       np.array(scores, np.float64).reshape(len(images), len(classes)),
                       classes, [path])


def concatenate(parts: Sequence[Predictions]) -> Predictions:
    """The folds' predictions as one test set (k-fold runs; every image once)."""
    first = parts[0]
    for part in parts[1:]:
        if part.classes != first.classes:
            raise RunResultError(f'{part.sources[0]} has classes {part.classes}, '
                                 f'{first.sources[0]} has {first.classes}')
    images = [image for part in parts for image in part.images]
    if len(set(images)) != len(images):
        raise RunResultError('the folds\' test sets overlap (an image is tested in more than '
                             f'one of {[str(p.sources[0]) for p in parts]})')
    return Predictions(images, np.concatenate([p.labels for p in parts]),
                       np.concatenate([p.preds for p in parts]),
                       np.concatenate([p.scores for p in parts]), first.classes,
                       [s for p in parts for s in p.sources])


def run_predictions(run: RunResult) -> Predictions:
    """The test predictions of a run (all folds of a k-fold run, concatenated)."""
    if not run.report_dirs:
        raise RunResultError(f'{run.source}: no fold test report found (expected '
                             '<fold>/test/<timestamp>/predictions.csv)')
    if run.kind == 'seeds':
        raise RunResultError(f'{run.source}: a seeds run tests the same images once per seed; '
                             'compare one seed\'s test report (seed<s>/test/<timestamp>/)')
    if run.kind == 'kfold' and len(run.report_dirs) != len(run.folds):
        raise RunResultError(f'{run.source}: found the test reports of only '
                             f'{len(run.report_dirs)} of the folds {run.folds}')
    result = concatenate([read_predictions(d / PREDICTIONS_FILE) for d in run.report_dirs])
    result.name = run.config_name
    return result


def load_predictions(path: Path) -> Predictions:
    """Predictions of the run ``path`` stands for (see :mod:`.run_results`), or of a
    ``predictions.csv`` given directly."""
    path = Path(path)
    if path.is_file() and path.name.endswith('.csv'):
        result = read_predictions(path)
        if (path.parent / REPORT_FILE).is_file():
            result.name = read_test_report(path.parent / REPORT_FILE).config_name
        return result
    return run_predictions(load_run(path))


def _examples(names: Sequence[str], limit: int = 3) -> str:
    shown = ', '.join(sorted(names)[:limit])
    return shown + (', ...' if len(names) > limit else '')


def pair_predictions(a: Predictions, b: Predictions) -> Tuple[Predictions, Predictions]:
    """Both runs' rows in A's image order; refuses runs not tested on the same images.

    Raises:
        RunResultError: different classes, different test images or different labels.
    """
    where = f'{a.sources[0]} vs {b.sources[0]}'
    if a.classes != b.classes:
        raise RunResultError(f'the runs have different classes ({a.classes} vs {b.classes}, '
                             f'{where}); compare runs of the same dataset')
    only_a = sorted(set(a.images) - set(b.images))
    only_b = sorted(set(b.images) - set(a.images))
    if only_a or only_b:
        raise RunResultError(
            f'the runs were tested on different images ({where}): {len(only_a)} only in A'
            + (f' (e.g. {_examples(only_a)})' if only_a else '')
            + f', {len(only_b)} only in B' + (f' (e.g. {_examples(only_b)})' if only_b else '')
            + '; paired tests need both models tested on the same test split')
    position = {image: i for i, image in enumerate(b.images)}
    b = b.take([position[image] for image in a.images])
    differ = [image for image, x, y in zip(a.images, a.labels, b.labels) if x != y]
    if differ:
        raise RunResultError(f'{len(differ)} image(s) have different true labels in the two '
                             f'runs (e.g. {_examples(differ)}; {where}): the split lists '
                             'differ')
    return a, b
