"""Read the scalars a training run logged (``<work_dir>/<timestamp>/vis_data/scalars.json``).

mmengine's ``LocalVisBackend`` appends one JSON object per line: training entries carry ``iter``
(global, 1-based), ``epoch`` (epoch-based loops), ``lr``, ``loss``...; validation entries carry
the metrics and ``step`` (the epoch, or the iteration for iteration-based loops). Every
``tools/train.py`` start (also ``--resume``) opens a new ``<timestamp>/`` folder.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

SCALARS = Path('vis_data') / 'scalars.json'
#: Keys of validation entries that are timings, not metrics.
NOT_METRICS = frozenset({'step', 'time', 'data_time', 'iter', 'epoch', 'memory'})


class TrainingLogError(FileNotFoundError):
    """No usable training log where the user pointed; the message says what is expected."""


@dataclass
class TrainingLog:
    """Scalars of one or more runs of a work dir.

    Attributes:
        train: Training entries, each with ``x`` added (epoch as a fraction, or iteration).
        val: Validation entries, each with ``x`` added (epoch, or iteration).
        unit: ``'epoch'`` or ``'iteration'``: what ``x`` counts.
        sources: The ``scalars.json`` files read, oldest first.
        save_best: The metric the run's ``CheckpointHook`` selected the best checkpoint by
            (from the run's dumped config), if any.
    """

    train: List[dict]
    val: List[dict]
    unit: str
    sources: List[Path] = field(default_factory=list)
    save_best: Optional[str] = None

    def metric_names(self) -> List[str]:
        """Validation metric keys in first-seen order."""
        names: Dict[str, None] = {}
        for entry in self.val:
            for key, value in entry.items():
                if key not in NOT_METRICS and key != 'x' and isinstance(value, (int, float)):
                    names.setdefault(key)
        return list(names)


def find_runs(work_dir: Union[str, Path]) -> List[Path]:
    """Run folders holding ``vis_data/scalars.json`` for ``work_dir``, oldest first.

    ``work_dir`` may be a run folder itself, a work dir with ``<timestamp>/`` run folders, or a
    ``scalars.json`` file.
    """
    work_dir = Path(work_dir)
    if work_dir.is_file() and work_dir.name == SCALARS.name:
        return [work_dir.parent.parent]
    if not work_dir.is_dir():
        raise TrainingLogError(f'{work_dir}: no such folder; pass the --work-dir of a training '
                               'run (e.g. work_dirs/hifuse-tiny_isic2018)')
    if (work_dir / SCALARS).is_file():
        return [work_dir]
    runs = sorted(p for p in work_dir.iterdir() if (p / SCALARS).is_file())
    if not runs:
        raise TrainingLogError(
            f'{work_dir}: no training log found; expected {work_dir}/<timestamp>/{SCALARS} as '
            'written by tools/train.py (the config\'s visualizer needs a LocalVisBackend)')
    return runs


def read_scalars(path: Union[str, Path]) -> List[dict]:
    """Entries of a ``scalars.json`` file. A cut-off last line (run still writing) is skipped."""
    path = Path(path)
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    entries = []
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):
                break
            raise TrainingLogError(f'{path}, line {number}: not a JSON object ({err})') from err
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def estimate_iters_per_epoch(entries: Sequence[dict]) -> Optional[int]:
    """Iterations per epoch from training entries with global ``iter`` and 1-based ``epoch``.

    Each entry bounds it: ``(epoch - 1) * n < iter <= epoch * n``. The smallest ``n`` allowed by
    all entries is returned; it is exact when an epoch's last iteration was logged and otherwise
    short by less than the logging interval. None when the entries are inconsistent.
    """
    low, high = 1, math.inf
    for entry in entries:
        epoch, it = int(entry['epoch']), int(entry['iter'])
        low = max(low, math.ceil(it / epoch))
        if epoch > 1:
            high = min(high, (it - 1) // (epoch - 1))
    return low if low <= high else None


def save_best_metric(run: Path) -> Optional[str]:
    """The ``save_best`` metric of a run's dumped config (``vis_data/config.py``), if one."""
    from mmengine.config import Config

    path = run / SCALARS.parent / 'config.py'
    if not path.is_file():
        return None
    try:
        cfg = Config.fromfile(str(path), import_custom_modules=False)
    except Exception:  # noqa: BLE001  (a config of another code version: only a nicety lost)
        return None
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint') or {}
    best = checkpoint.get('save_best')
    return best if isinstance(best, str) and best != 'auto' else None


def load_training_log(work_dir: Union[str, Path], all_runs: bool = False) -> TrainingLog:
    """Read the latest run of ``work_dir`` (or every run, joined in order, with ``all_runs``).

    With ``all_runs`` a later run's entry replaces an earlier one at the same iteration/epoch
    (a restarted run); a resumed run simply continues the curves.

    Raises:
        TrainingLogError: no log, or a log without training entries.
    """
    runs = find_runs(work_dir)
    runs = runs if all_runs else runs[-1:]
    train: Dict[int, dict] = {}
    val: Dict[float, dict] = {}
    for run in runs:
        for entry in read_scalars(run / SCALARS):
            if 'iter' in entry:
                train[int(entry['iter'])] = entry
            elif 'step' in entry:
                val[float(entry['step'])] = entry
    sources = [run / SCALARS for run in runs]
    if not train:
        raise TrainingLogError(f'{sources[-1]}: no training entries logged yet (is it a test '
                               'run, or did training stop before its first log interval?)')
    train_entries = [train[k] for k in sorted(train)]
    unit = 'epoch' if all('epoch' in e for e in train_entries) else 'iteration'
    per_epoch = estimate_iters_per_epoch(train_entries) if unit == 'epoch' else None
    for entry in train_entries:
        if unit == 'epoch' and per_epoch:
            entry['x'] = entry['iter'] / per_epoch
        elif unit == 'epoch':
            entry['x'] = float(entry['epoch'])
        else:
            entry['x'] = float(entry['iter'])
    val_entries = [dict(val[k], x=k) for k in sorted(val)]
    return TrainingLog(train=train_entries, val=val_entries, unit=unit, sources=sources,
                       save_best=save_best_metric(runs[-1]))
