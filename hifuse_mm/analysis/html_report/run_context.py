"""One run as the HTML report sees it: its results, its test report folder(s), their
predictions and the config the test ran with.

A run is what ``results_table.py`` accepts (:func:`hifuse_mm.analysis.load_run`): a
``tools/test.py`` report folder or work dir, a ``tools/kfold.py`` work dir (one test report per
fold: the figures pool the folds' predictions, every test image once) or a ``tools/seeds.py``
work dir (every seed tested on the same images: the figures, failure analysis and run facts
are those of the first seed's report, the metrics are mean ± sd over the seeds). Parts a run
lacks (no ``predictions.csv``, no dumped config) are recorded with the reason instead of
stopping the report.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ...evaluation.calibration import DEFAULT_ECE_BINS, NLL_EPSILON
from ...evaluation.temperature import apply_temperature
from ..predictions import Predictions, concatenate, read_predictions
from ..run_results import (DUMPED_CONFIG, PREDICTIONS_FILE, REPORT_FILE, RunResult,
                           RunResultError, load_run)


@dataclass
class ReportPart:
    """One test report folder of a run (the run's own, one fold's or one seed's).

    Attributes:
        name: ``'test'``, the fold name or the seed name.
        folder: The report folder (``metrics.json``, ``predictions.csv``, ...).
        content: Its ``metrics.json``.
        predictions: Its ``predictions.csv`` (None when it cannot be read).
        problem: Why there are no predictions.
    """
    name: str
    folder: Path
    content: Dict[str, Any]
    predictions: Optional[Predictions] = None
    problem: Optional[str] = None


@dataclass
class RunContext:
    """A run and what the report reads of it.

    Attributes:
        label: The run's name in the report.
        run: :func:`~hifuse_mm.analysis.load_run`'s result.
        parts: Its test reports (one; one per fold; one per seed).
        detail: The parts the figures and the failure analysis show (all folds of a k-fold
            run, the first seed of a seeds run, the one report of a test run).
        config: The dumped config of the (first) detailed report, an mmengine ``Config``.
        config_file: Its path.
        notes: What is missing and why.
    """
    label: str
    run: RunResult
    parts: List[ReportPart]
    detail: List[ReportPart]
    config: Any = None
    config_file: Optional[Path] = None
    notes: List[str] = field(default_factory=list)

    @property
    def classes(self) -> List[str]:
        """Class names (from the results or the predictions)."""
        if self.run.classes:
            return list(self.run.classes)
        for part in self.parts:
            if part.predictions is not None:
                return list(part.predictions.classes)
        return []

    def predictions(self) -> Optional[Predictions]:
        """The detailed parts' predictions, pooled (None unless every part has them)."""
        if not self.detail or any(p.predictions is None for p in self.detail):
            return None
        if len(self.detail) == 1:
            return self.detail[0].predictions
        return concatenate([p.predictions for p in self.detail])

    def predictions_problem(self) -> str:
        """Why :meth:`predictions` is None."""
        problems = [f'{p.name}: {p.problem}' if len(self.detail) > 1 else p.problem
                    for p in self.detail if p.problem]
        return '; '.join(problems) or 'the run has no test report folder'

    def data_root(self) -> Optional[str]:
        """The test dataset's ``data_root`` from the config (None if unknown)."""
        if self.config is None:
            return None
        dataset = (self.config.get('test_dataloader') or {}).get('dataset') or {}
        root = dataset.get('data_root') or self.config.get('data_root')
        return str(root) if root else None

    def ece_bins(self) -> int:
        """Confidence bins of the run's ECE (the config's ``MedicalMetrics``, else 15)."""
        evaluators = (self.config.get('test_evaluator') if self.config is not None else None)
        for evaluator in evaluators if isinstance(evaluators, list) else [evaluators]:
            if isinstance(evaluator, dict) and evaluator.get('type') == 'MedicalMetrics':
                bins = evaluator.get('ece_bins')
                if isinstance(bins, int) and bins > 0:
                    return bins
        return DEFAULT_ECE_BINS

    def scaled_parts(self) -> Optional[List[np.ndarray]]:
        """Each detailed part's test probabilities after its validation temperature (None
        unless every part was tested with ``--calibrate val``)."""
        scaled = []
        for part in self.detail:
            section = part.content.get('temperature_scaling')
            temperature = section.get('temperature') if isinstance(section, dict) else None
            if part.predictions is None or not isinstance(temperature, (int, float)) \
                    or not temperature > 0:
                return None
            logits = np.log(np.clip(part.predictions.scores, NLL_EPSILON, None))
            scaled.append(apply_temperature(logits, float(temperature)))
        return scaled


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RunResultError(f'{path} cannot be read ({err}); rerun the test that wrote it') \
            from None
    if not isinstance(content, dict):
        raise RunResultError(f'{path} is not a test report (a JSON object)')
    return content


def _part(name: str, folder: Path) -> ReportPart:
    part = ReportPart(name, folder, _read_json(folder / REPORT_FILE))
    try:
        part.predictions = read_predictions(folder / PREDICTIONS_FILE)
    except RunResultError as err:
        part.problem = str(err)
    return part


def _load_config(folder: Path) -> tuple:
    """The dumped config of a report folder: ``(Config or None, path, problem)``."""
    path = folder / DUMPED_CONFIG
    if not path.is_file():
        return None, None, (f'{path} is missing (tools/test.py dumps the config it ran with '
                            'there)')
    from mmengine.config import Config
    try:
        return Config.fromfile(str(path)), path, None
    except Exception as err:  # noqa: BLE001 - any broken config only costs its facts
        return None, path, f'{path} cannot be read ({type(err).__name__}: {err})'


def run_label(run: RunResult) -> str:
    """A run's default name: its config's name, else its folder's."""
    if run.config_name:
        return run.config_name
    path = run.path.parent if run.path.is_file() else run.path
    return path.resolve().name


def load_context(path: Path, label: Optional[str] = None) -> RunContext:
    """Load the run ``path`` stands for (raises :class:`RunResultError` if it is none)."""
    run = load_run(Path(path))
    if run.kind == 'test':
        parts = [_part('test', run.report_dirs[0])]
    else:
        names = list(run.folds)
        parts = []
        for folder in run.report_dirs:
            # Fold/seed reports lie in <work_dir>/<name>/test/<timestamp>/.
            name = folder.parent.parent.name if folder.parent.name == 'test' else folder.name
            parts.append(_part(name if name in names else folder.name, folder))
    context = RunContext(label or run_label(run), run, parts,
                         parts[:1] if run.kind == 'seeds' else parts)
    if run.kind != 'test' and len(parts) < len(run.folds):
        context.notes.append(f'found the test reports of {len(parts)} of the '
                             f'{len(run.folds)} {run.kind} runs {run.folds}')
    if context.detail:
        context.config, context.config_file, problem = _load_config(context.detail[0].folder)
        if problem:
            context.notes.append(problem)
    return context


def unique_labels(contexts: Sequence[RunContext]) -> None:
    """Make the runs' labels unique (the folder is added to repeated names)."""
    counts: Dict[str, int] = {}
    for context in contexts:
        counts[context.label] = counts.get(context.label, 0) + 1
    for context in contexts:
        if counts[context.label] > 1:
            context.label = f'{context.label} [{context.run.path}]'
