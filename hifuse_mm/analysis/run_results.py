"""Find and read the results of a test run or a k-fold run (what ``results_table`` and
``compare_runs`` are given).

A run may be given as

* a test report folder (``tools/test.py`` writes ``<work-dir>/<timestamp>/metrics.json`` and
  ``predictions.csv``, see :mod:`hifuse_mm.evaluation.report`) or its ``metrics.json``;
* a k-fold work dir (``tools/kfold.py`` writes ``kfold.json`` there, with every fold's test
  report under ``<fold>/test/<timestamp>/``) or its ``kfold.json``;
* a seeds work dir (``tools/seeds.py`` writes ``seeds.json`` there, with every seed's test
  report under ``seed<s>/test/<timestamp>/``) or its ``seeds.json``: mean and sd over the seeds,
  all tested on the same test split;
* any folder holding exactly one of those below it, e.g. a ``tools/test.py`` work dir. When a
  test was run several times into the same work dir (one ``<timestamp>/`` report each) the
  newest report is used; report folders in different places are ambiguous and refused.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

REPORT_FILE = 'metrics.json'
KFOLD_FILE = 'kfold.json'
SEEDS_FILE = 'seeds.json'
#: Summaries of repeated runs: file name -> RunResult.kind.
SUMMARY_KINDS = {KFOLD_FILE: 'kfold', SEEDS_FILE: 'seeds'}
PREDICTIONS_FILE = 'predictions.csv'
METRIC_PREFIX = 'medical/'
# Dumped by mmengine into every run's log folder: the full config the run used.
DUMPED_CONFIG = Path('vis_data') / 'config.py'


class RunResultError(ValueError):
    """A run folder or one of its files cannot be used; the message says why and what to do."""


@dataclass
class RunResult:
    """The test results of one run.

    Attributes:
        path: The folder or file the user gave.
        source: The ``metrics.json`` or ``kfold.json`` read.
        kind: ``'test'`` (one test report), ``'kfold'`` (mean over folds) or ``'seeds'``
            (mean over seeds, same test split).
        metrics: Metric name without the ``medical/`` prefix -> value (fractions; None when
            undefined). For k-fold runs the mean over the folds.
        ci: Metric -> (low, high) bootstrap interval, for test reports made with
            ``--bootstrap N`` (accuracy, macro F1, AUC).
        ci_confidence: Level of those intervals (e.g. 0.95); None without intervals.
        ci_resamples: Bootstrap rounds behind the intervals.
        sd: Metric -> sample standard deviation over the folds (k-fold runs).
        folds: Fold names (k-fold runs).
        num_samples: Test images (summed over the folds); None if unknown.
        classes: Class names; None if unknown.
        config: The run's config, to count parameters and FLOPs; None if not found.
        config_name: Stem of the config the run was started with (row label), or None.
        report_dirs: Test report folders (one, or one per fold), for ``predictions.csv``.
        complexity: ``params`` / ``flops`` recorded with the results, if any.
    """
    path: Path
    source: Path
    kind: str
    metrics: Dict[str, Optional[float]]
    ci: Dict[str, Tuple[float, float]] = field(default_factory=dict)
    ci_confidence: Optional[float] = None
    ci_resamples: Optional[int] = None
    sd: Dict[str, Optional[float]] = field(default_factory=dict)
    folds: List[str] = field(default_factory=list)
    num_samples: Optional[int] = None
    classes: Optional[List[str]] = None
    config: Optional[Path] = None
    config_name: Optional[str] = None
    report_dirs: List[Path] = field(default_factory=list)
    complexity: Dict[str, float] = field(default_factory=dict)


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        with open(path) as stream:
            content = json.load(stream)
    except json.JSONDecodeError as err:
        raise RunResultError(f'{path} is not valid JSON ({err}); it may be truncated: '
                             'rerun the test that wrote it') from err
    if not isinstance(content, dict):
        raise RunResultError(f'{path} holds a JSON {type(content).__name__}, not an object '
                             'of results')
    return content


def _number(value: Any, where: str) -> Optional[float]:
    """A metric value: a finite or NaN number, or None (undefined)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RunResultError(f'{where} is {value!r}, expected a number or null')
    return None if math.isnan(value) else float(value)


def _medical_metrics(values: Any, where: str) -> Dict[str, Optional[float]]:
    """``{'medical/accuracy': ...}`` -> ``{'accuracy': ...}`` (number entries only)."""
    if not isinstance(values, dict):
        raise RunResultError(f'{where} must be an object of metric values, got '
                             f'{type(values).__name__}')
    result = {}
    for key, value in values.items():
        if isinstance(key, str) and key.startswith(METRIC_PREFIX) \
                and not isinstance(value, (list, dict)):
            result[key[len(METRIC_PREFIX):]] = _number(value, f'{where}[{key!r}]')
    if not result:
        raise RunResultError(f'{where} has no {METRIC_PREFIX}* entries: the test did not run '
                             'MedicalMetrics (test with tools/test.py, which adds it)')
    return result


def _timestamp_order(path: Path) -> str:
    return path.parent.name


def locate_results(path: Path) -> Path:
    """The ``metrics.json`` or ``kfold.json`` that ``path`` stands for (module docstring)."""
    path = Path(path)
    if not path.exists():
        raise RunResultError(f'{path} does not exist')
    if path.is_file():
        if path.name not in (REPORT_FILE, KFOLD_FILE, SEEDS_FILE):
            raise RunResultError(f'{path} is neither a {REPORT_FILE} (tools/test.py) nor a '
                                 f'{KFOLD_FILE} / {SEEDS_FILE} (tools/kfold.py, tools/seeds.py); '
                                 'pass the run folder')
        return path
    for name in (KFOLD_FILE, SEEDS_FILE, REPORT_FILE):
        if (path / name).is_file():
            return path / name
    kfolds = sorted([*path.rglob(KFOLD_FILE), *path.rglob(SEEDS_FILE)])
    # Fold reports belong to their k-fold run; reruns into one test work dir are one run.
    reports = [p for p in sorted(path.rglob(REPORT_FILE))
               if not any(k.parent in p.parents for k in kfolds)]
    runs = [k.parent for k in kfolds] + sorted({p.parent.parent for p in reports})
    if not runs:
        raise RunResultError(f'{path} holds no test results ({REPORT_FILE} from tools/test.py '
                             f'or {KFOLD_FILE} from tools/kfold.py); test the run first')
    if len(runs) > 1:
        listed = ', '.join(str(r) for r in runs[:5]) + (', ...' if len(runs) > 5 else '')
        raise RunResultError(f'{path} holds several runs ({listed}); pass the one you mean')
    if kfolds:
        return kfolds[0]
    return max(reports, key=_timestamp_order)  # tested again into the same work dir: newest


def _config_stem(value: Any) -> Optional[str]:
    return Path(value).stem if isinstance(value, str) and value else None


def _find_config(report_dir: Path, recorded: Any) -> Optional[Path]:
    """The run's dumped config, else the config path recorded at test time if it exists."""
    dumped = report_dir / DUMPED_CONFIG
    if dumped.is_file():
        return dumped
    if isinstance(recorded, str) and recorded and Path(recorded).is_file():
        return Path(recorded)
    return None


def _complexity(content: Dict[str, Any], where: Path) -> Dict[str, float]:
    """Optional ``"complexity": {"params": n, "flops": n}`` recorded with the results."""
    recorded = content.get('complexity')
    if recorded is None:
        return {}
    if not isinstance(recorded, dict):
        raise RunResultError(f'{where}: "complexity" must be an object with params / flops')
    result = {}
    for key in ('params', 'flops'):
        value = _number(recorded.get(key), f'{where}: complexity.{key}')
        if value is not None:
            result[key] = value
    return result


def read_test_report(path: Path, given: Optional[Path] = None) -> RunResult:
    """Read one ``metrics.json`` written by ``tools/test.py``."""
    content = _read_json(path)
    if 'metrics' not in content:
        raise RunResultError(f'{path} has no "metrics" entry; is it a test report written by '
                             'tools/test.py?')
    metrics = _medical_metrics(content['metrics'], f'{path}: metrics')
    result = RunResult(path=Path(given or path), source=path, kind='test', metrics=metrics,
                       report_dirs=[path.parent], complexity=_complexity(content, path))
    samples = content.get('num_samples')
    if isinstance(samples, int) and not isinstance(samples, bool):
        result.num_samples = samples
    classes = content.get('classes')
    if isinstance(classes, list) and all(isinstance(c, str) for c in classes):
        result.classes = classes
    result.config = _find_config(path.parent, content.get('config'))
    result.config_name = _config_stem(content.get('config'))

    bootstrap = content.get('bootstrap')
    if isinstance(bootstrap, dict):
        for key, interval in bootstrap.items():
            if not isinstance(interval, dict) or 'low' not in interval:
                continue
            low = _number(interval.get('low'), f'{path}: bootstrap.{key}.low')
            high = _number(interval.get('high'), f'{path}: bootstrap.{key}.high')
            if low is not None and high is not None:
                result.ci[key] = (low, high)
        confidence = bootstrap.get('confidence')
        result.ci_confidence = float(confidence) if isinstance(confidence, (int, float)) \
            else None
        resamples = bootstrap.get('resamples')
        result.ci_resamples = resamples if isinstance(resamples, int) else None
    return result


def _fold_report_dir(kfold_dir: Path, fold: str, recorded: Any) -> Optional[Path]:
    """A fold's test report folder: as recorded (absolute, or relative to the current folder
    when tools/kfold.py ran), else the newest ``<fold>/test/<timestamp>/`` of the k-fold dir."""
    if isinstance(recorded, str) and recorded:
        if (Path(recorded) / REPORT_FILE).is_file():
            return Path(recorded)
    reports = sorted((kfold_dir / fold / 'test').glob(f'*/{REPORT_FILE}'))
    return max(reports, key=_timestamp_order).parent if reports else None


def read_kfold(path: Path, given: Optional[Path] = None) -> RunResult:
    """Read a ``kfold.json`` written by ``tools/kfold.py`` (mean and sd over the folds), or a
    ``seeds.json`` written by ``tools/seeds.py`` (same layout: its runs are listed under
    ``folds``; mean and sd over the seeds, whose test split is one and the same)."""
    content = _read_json(path)
    for key in ('mean', 'std', 'folds'):
        if key not in content:
            raise RunResultError(f'{path} has no "{key}" entry; is it the summary written by '
                                 'tools/kfold.py?')
    folds = content['folds']
    if not isinstance(folds, list) or not folds:
        raise RunResultError(f'{path}: "folds" must be a non-empty list of fold names')
    kind = SUMMARY_KINDS.get(path.name, 'kfold')
    result = RunResult(path=Path(given or path), source=path, kind=kind,
                       metrics=_medical_metrics(content['mean'], f'{path}: mean'),
                       folds=[str(f) for f in folds], complexity=_complexity(content, path))
    if len(folds) > 1:
        result.sd = _medical_metrics(content['std'], f'{path}: std')
    result.config_name = _config_stem(content.get('config'))

    runs = content.get('runs') if isinstance(content.get('runs'), dict) else {}
    samples, classes = 0, None
    for fold in result.folds:
        recorded = runs.get(fold, {}).get('report_dir') if isinstance(runs.get(fold), dict) \
            else None
        report_dir = _fold_report_dir(path.parent, fold, recorded)
        if report_dir is None:
            continue
        result.report_dirs.append(report_dir)
        report = read_test_report(report_dir / REPORT_FILE)
        if report.num_samples is not None and samples is not None:
            # Folds test disjoint halves (summed); seeds test the same split (counted once).
            samples = report.num_samples if kind == 'seeds' else samples + report.num_samples
        else:
            samples = None
        classes = classes or report.classes
        if result.config is None:
            result.config = report.config
    if len(result.report_dirs) == len(result.folds):
        result.num_samples = samples
    result.classes = classes
    if result.config is None:
        result.config = _find_config(path.parent, content.get('config'))
    return result


def load_run(path: Path) -> RunResult:
    """Results of the run ``path`` stands for (module docstring)."""
    source = locate_results(Path(path))
    if source.name in SUMMARY_KINDS:
        return read_kfold(source, given=Path(path))
    return read_test_report(source, given=Path(path))
