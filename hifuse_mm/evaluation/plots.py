"""Report figures: the confusion matrix (counts and row-normalised) and per-class ROC curves.

Matplotlib's object-oriented API with the Agg canvas: no pyplot state, no GUI backend, no
change to the process-wide backend. A figure is rendered into memory first and then written
atomically (:mod:`hifuse_mm.utils.atomic_files`): a kill or a full disk never leaves a partial
PNG under its name, and an existing file is never replaced.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from ..utils.atomic_files import atomic_write_bytes


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (120 dpi, tight bounding box)."""
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=120, bbox_inches='tight')
    return buffer.getvalue()


def _save(fig: Figure, path: Path) -> None:
    """Write a PNG atomically; refuses an existing file (:class:`FileExistsError`) instead of
    overwriting it."""
    atomic_write_bytes(path, figure_png(fig), exclusive=True)


def confusion_matrix_figure(confusion: np.ndarray, classes: Sequence[str]) -> Figure:
    """Two panels: counts, and rows normalised to sum to 1 (recall on the diagonal)."""
    confusion = np.asarray(confusion)
    rows = confusion.sum(1, keepdims=True)
    normalised = np.divide(confusion, rows, out=np.zeros(confusion.shape, float),
                           where=rows > 0)
    size = max(4.0, 0.6 * len(classes) + 2.5)
    fig = Figure(figsize=(2 * size + 1, size))
    for ax, data, title, fmt in zip(fig.subplots(1, 2), (confusion, normalised),
                                    ('counts', 'row-normalised'), ('{:d}', '{:.2f}')):
        image = ax.imshow(data, cmap='Blues', vmin=0)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set(title=f'Confusion matrix ({title})', xlabel='predicted', ylabel='true',
               xticks=range(len(classes)), yticks=range(len(classes)))
        ax.set_xticklabels(classes, rotation=45, ha='right')
        ax.set_yticklabels(classes)
        threshold = data.max() / 2 if data.size else 0
        for (i, j), value in np.ndenumerate(data):
            ax.text(j, i, fmt.format(value.item()), ha='center', va='center', fontsize=8,
                    color='white' if value > threshold else 'black')
    fig.tight_layout()
    return fig


def roc_figure(labels: np.ndarray, scores: np.ndarray, classes: Sequence[str],
               aucs: Sequence[float]) -> Figure:
    """One-vs-rest ROC curve per class (classes without positives or negatives are skipped),
    the AUC in the legend."""
    fig = Figure(figsize=(6.5, 6))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], linestyle='--', color='grey', linewidth=1, label='chance')
    for k, name in enumerate(classes):
        positive = labels == k
        if not 0 < positive.sum() < len(labels):
            ax.plot([], [], ' ', label=f'{name} (AUC undefined)')
            continue
        fpr, tpr, _ = roc_curve(positive, scores[:, k])
        ax.plot(fpr, tpr, linewidth=1.5, label=f'{name} (AUC = {aucs[k]:.3f})')
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel='false positive rate (1 - specificity)',
           ylabel='true positive rate (sensitivity)', title='ROC curves (one vs rest)')
    ax.legend(loc='lower right', fontsize=8)
    fig.tight_layout()
    return fig


def plot_confusion_matrix(confusion: np.ndarray, classes: Sequence[str], path: Path) -> None:
    """:func:`confusion_matrix_figure` written to ``path`` (atomically, never over a file)."""
    _save(confusion_matrix_figure(confusion, classes), path)


def plot_roc(labels: np.ndarray, scores: np.ndarray, classes: Sequence[str],
             aucs: Sequence[float], path: Path) -> None:
    """:func:`roc_figure` written to ``path`` (atomically, never over a file)."""
    _save(roc_figure(labels, scores, classes, aucs), path)
