"""Report figures: the confusion matrix (counts and row-normalised), per-class ROC and
precision-recall curves and the reliability diagram (with the sample count of every confidence
bin).

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
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve

from ..utils.atomic_files import atomic_write_bytes
from .calibration import ReliabilityBins


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


def pr_figure(labels: np.ndarray, scores: np.ndarray, classes: Sequence[str]) -> Figure:
    """One-vs-rest precision-recall curve per class (``sklearn.metrics.precision_recall_curve``;
    classes without positives are skipped), the average precision
    (``sklearn.metrics.average_precision_score``) and the class's prevalence, which is the
    precision of a random ranking, in the legend."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    fig = Figure(figsize=(6.5, 6))
    ax = fig.subplots()
    for k, name in enumerate(classes):
        positive = labels == k
        if not positive.any():
            ax.plot([], [], ' ', label=f'{name} (AP undefined: no positives)')
            continue
        precision, recall, _ = precision_recall_curve(positive, scores[:, k])
        ap = average_precision_score(positive, scores[:, k])
        line, = ax.step(recall, precision, where='post', linewidth=1.5,
                        label=f'{name} (AP = {ap:.3f}, prevalence {positive.mean():.3f})')
        ax.axhline(positive.mean(), linestyle=':', linewidth=0.8, color=line.get_color())
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel='recall (sensitivity)',
           ylabel='precision (PPV)', title='Precision-recall curves (one vs rest)')
    ax.legend(loc='lower left', fontsize=8)
    fig.tight_layout()
    return fig


def reliability_figure(bins: ReliabilityBins) -> Figure:
    """Top: accuracy of the top-label prediction per confidence bin (bars) against the
    diagonal of perfect calibration, the gap to each bin's mean confidence shaded, the ECE in
    the title. Bottom: samples per bin, each count written over its bar."""
    fig = Figure(figsize=(6.5, 7.5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw=dict(height_ratios=(3, 1.3)))
    lefts, width = bins.edges[:-1], np.diff(bins.edges)
    filled = bins.count > 0
    top.plot([0, 1], [0, 1], linestyle='--', color='grey', linewidth=1,
             label='perfect calibration')
    top.bar(lefts[filled], bins.accuracy[filled], width=width[filled], align='edge',
            color='tab:blue', edgecolor='black', linewidth=0.5, label='accuracy')
    gap_low = np.minimum(bins.accuracy, bins.confidence)[filled]
    gap = np.abs(bins.accuracy - bins.confidence)[filled]
    top.bar(lefts[filled], gap, bottom=gap_low, width=width[filled], align='edge',
            color='tab:red', alpha=0.3, edgecolor='tab:red', linewidth=0.5,
            label='gap to mean confidence')
    ece = 'undefined' if not np.isfinite(bins.ece) else f'{bins.ece:.4f}'
    top.set(xlim=(0, 1), ylim=(0, 1.02), ylabel='accuracy',
            title=f'Reliability diagram ({len(width)} bins, ECE = {ece})')
    top.legend(loc='upper left', fontsize=8)
    bottom.bar(lefts, bins.count, width=width, align='edge', color='tab:grey',
               edgecolor='black', linewidth=0.5)
    for left, w, count in zip(lefts, width, bins.count):
        if count:
            bottom.text(left + w / 2, count, str(int(count)), ha='center', va='bottom',
                        fontsize=7)
    bottom.set(xlim=(0, 1), ylim=(0, max(1, int(bins.count.max(initial=0))) * 1.25),
               xlabel='confidence (top-label probability)', ylabel='samples')
    fig.tight_layout()
    return fig


def plot_confusion_matrix(confusion: np.ndarray, classes: Sequence[str], path: Path) -> None:
    """:func:`confusion_matrix_figure` written to ``path`` (atomically, never over a file)."""
    _save(confusion_matrix_figure(confusion, classes), path)


def plot_roc(labels: np.ndarray, scores: np.ndarray, classes: Sequence[str],
             aucs: Sequence[float], path: Path) -> None:
    """:func:`roc_figure` written to ``path`` (atomically, never over a file)."""
    _save(roc_figure(labels, scores, classes, aucs), path)


def plot_pr(labels: np.ndarray, scores: np.ndarray, classes: Sequence[str], path: Path) -> None:
    """:func:`pr_figure` written to ``path`` (atomically, never over a file)."""
    _save(pr_figure(labels, scores, classes), path)


def plot_reliability(bins: ReliabilityBins, path: Path) -> None:
    """:func:`reliability_figure` written to ``path`` (atomically, never over a file)."""
    _save(reliability_figure(bins), path)
