"""Plot training curves: training loss, learning rate and validation metrics against epoch."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from .training_log import TrainingLog

#: Validation metrics whose best value is the lowest (everything else: the highest).
LOWER_IS_BETTER = ('loss', 'error', 'err')


def _series(entries: Sequence[dict], key: str) -> Tuple[List[float], List[float]]:
    points = [(e['x'], float(e[key])) for e in entries if isinstance(e.get(key), (int, float))]
    return [p[0] for p in points], [p[1] for p in points]


def loss_keys(log: TrainingLog) -> List[str]:
    """Logged training losses (``loss`` first, then its parts such as ``loss_cls``)."""
    keys = {k for e in log.train for k in e if 'loss' in k}
    return sorted(keys, key=lambda k: (k != 'loss', k))


def plot_training_curves(log: TrainingLog, out: Path, metrics: Optional[Sequence[str]] = None,
                         title: Optional[str] = None, dpi: int = 100) -> Path:
    """Write one PNG with panels for the loss, the learning rate and the validation metrics.

    Args:
        log: From :func:`hifuse_mm.apis.training_log.load_training_log`.
        out: PNG path (its folder is created).
        metrics: Validation metric keys to draw (default: every logged metric).
        title: Figure title.
        dpi: Resolution.

    Raises:
        KeyError: a requested metric was never logged.
    """
    from matplotlib.figure import Figure

    available = log.metric_names()
    metrics = list(available if metrics is None else metrics)
    missing = [m for m in metrics if m not in available]
    if missing:
        raise KeyError(f'metric(s) {missing} not in the log; logged: {available}')
    panels = ['loss', 'lr'] + (['val'] if metrics else [])
    fig = Figure(figsize=(4.2 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    xlabel = log.unit

    ax = axes[0]
    for key in loss_keys(log):
        ax.plot(*_series(log.train, key), label=key, linewidth=1.2)
    ax.set_title('training loss', fontsize=10)
    if len(loss_keys(log)) > 1:
        ax.legend(fontsize=7)

    ax = axes[1]
    ax.plot(*_series(log.train, 'lr'), color='tab:orange', linewidth=1.2)
    ax.set_title('learning rate', fontsize=10)
    ax.ticklabel_format(axis='y', style='sci', scilimits=(-2, 3))

    if metrics:
        ax = axes[2]
        for key in metrics:
            xs, ys = _series(log.val, key)
            ax.plot(xs, ys, marker='o', markersize=3, linewidth=1.2, label=key)
        best = log.save_best if log.save_best in metrics else metrics[0]
        x, y = best_value(log, best)
        ax.plot([x], [y], marker='*', markersize=12, color='gold', markeredgecolor='black',
                zorder=5)
        ax.set_title(f'validation (best {best}: {y:.4g} at {log.unit} {x:g})', fontsize=9)
        ax.legend(fontsize=7, loc='upper center', bbox_to_anchor=(0.5, -0.24), ncol=2,
                  frameon=False)
    for ax in axes:
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, bbox_inches='tight')
    return out


def best_value(log: TrainingLog, metric: str) -> Tuple[float, float]:
    """``(x, value)`` of the best validation value of ``metric``."""
    xs, ys = _series(log.val, metric)
    lower = any(word in metric.lower() for word in LOWER_IS_BETTER)
    index = min(range(len(ys)), key=lambda i: ys[i] if lower else -ys[i])
    return xs[index], ys[index]

