"""Running a built config: the runner, training, testing with the test report, the teardown.

* :func:`build_runner` builds the runner the way MMPretrain's tools do (``runner_type`` of the
  config honoured, e.g. ``HiFuseRunner`` of our default runtime).
* :func:`run_train` trains; :func:`run_test_with_report` tests and, with
  :class:`ReportOptions`, writes the test report into the run's timestamped log folder
  (``<work_dir>/<YYYYmmdd_HHMMSS>/``, so an earlier run's report is never overwritten):
  ``metrics.json``, ``predictions.csv`` and the figures of
  :data:`hifuse_mm.evaluation.report.REPORT_FILES`, with bootstrap confidence intervals for
  ``bootstrap=N``.
* :func:`close_process_group` tears torch.distributed down after a successful run.
"""
from __future__ import annotations

import copy
import gc
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Optional, Tuple

import mmengine
import numpy as np
import torch
from mmengine.config import Config
from mmengine.dist import get_rank, is_distributed
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..evaluation import MedicalMetrics, write_test_report
from ..evaluation.validation_choices import (operating_points_section, temperature_section,
                                            threshold_section)
from ..utils.atomic_files import atomic_write_bytes
from .run_config import RunConfigError
from .runner import HiFuseRunner

#: What ``--out FILE --out-item metrics`` can write, by suffix (mmengine's file handlers).
METRICS_OUT_FORMATS = ('json', 'yaml', 'yml', 'pkl', 'pickle')


@dataclass(frozen=True)
class ReportOptions:
    """What the test report holds (``tools/test.py``'s report flags).

    Attributes:
        enable: Write the report at all (False: ``--no-report``).
        bootstrap: Resamples of the 95% bootstrap intervals (0: none).
        bootstrap_seed: Seed of the bootstrap resampling.
        config: The config file, recorded in ``metrics.json``.
        checkpoint: The checkpoint tested, recorded in ``metrics.json``.
        calibrate: ``'val'``: fit a temperature on the validation split, report the test
            metrics before and after (``temperature_scaling`` in ``metrics.json``).
        threshold: ``'val'``: choose each evaluated class's threshold on the validation split
            and apply it to the test split (``threshold`` in ``metrics.json``).
        target_specificity: Threshold rule: best sensitivity at validation specificity >= it
            (None: Youden's J).
    """

    enable: bool = True
    bootstrap: int = 0
    bootstrap_seed: int = 0
    config: Optional[str] = None
    checkpoint: Optional[str] = None
    calibrate: Optional[str] = None
    threshold: Optional[str] = None
    target_specificity: Optional[float] = None


class ReportExistsError(FileExistsError):
    """A report file of this run's log folder exists already (nothing was overwritten)."""


#: The wall-clock second (``int(time.time())``) the latest runner of this process was built in.
_LATEST_RUN_SECOND = [-1]


def _wait_for_a_new_run_second() -> None:
    """mmengine names a run after its config and the wall-clock second its runner is built in:
    the log folder ``<work_dir>/<YYYYmmdd_HHMMSS>`` and the logger and visualizer
    ``<config>_<YYYYmmdd_HHMMSS>``, which its instance managers hand back by name. A second run
    built in this process within the same second would therefore log into the first run's log
    file (and, in the same work dir, share its folder). Wait, when needed, for the next
    second (at most one; only for runs started less than a second apart)."""
    while int(time.time()) == _LATEST_RUN_SECOND[0]:
        time.sleep(0.02)
    _LATEST_RUN_SECOND[0] = int(time.time())


def build_runner(cfg: Config) -> Runner:
    """Build the runner the way MMPretrain's tools do (``runner_type`` honoured).

    A config that names no ``runner_type`` (one that does not inherit our default runtime) gets
    :class:`~hifuse_mm.engine.runner.HiFuseRunner`, not mmengine's plain ``Runner``, so every run
    of our tools has the run safety (strict, safe loading; crash-safe signed saving). Two runs
    built in one process never share a name, a logger or a log folder: the second waits for the
    next wall-clock second if needed (:func:`_wait_for_a_new_run_second`).
    """
    _wait_for_a_new_run_second()
    if 'runner_type' not in cfg:
        return HiFuseRunner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def run_train(cfg: Config) -> Runner:
    """Train with ``cfg``; returns the runner (``runner.message_hub`` has ``best_ckpt``)."""
    runner = build_runner(cfg)
    runner.train()
    return runner


def write_metrics_out(metrics: dict, out: str) -> None:
    """Dump ``metrics`` to ``out`` (format from its suffix, :data:`METRICS_OUT_FORMATS`),
    atomically and never over an existing file (:class:`FileExistsError`)."""
    data = mmengine.dump(metrics, file_format=Path(out).suffix.lstrip('.').lower())
    atomic_write_bytes(out, data.encode() if isinstance(data, str) else data, exclusive=True)


def _medical_metric(runner: Runner) -> Optional[MedicalMetrics]:
    for metric in runner.test_loop.evaluator.metrics:
        if isinstance(metric, MedicalMetrics):
            return metric
    return None


def run_test_with_report(cfg: Config, report: Optional[ReportOptions] = None,
                         out: Optional[str] = None,
                         out_item: Optional[str] = None) -> Tuple[dict, Optional[Path]]:
    """Test with ``cfg`` (from :func:`hifuse_mm.engine.testing_config.configure_testing`), dump
    the metrics to ``out`` if ``out_item == 'metrics'``, and write the report (rank 0) into the
    run's timestamped log folder.

    Returns:
        ``(metrics, report folder)``; the folder is None when no report was written (other
        ranks, ``report`` None or not enabled, or no ``MedicalMetrics`` evaluated).

    Raises:
        ReportExistsError: a report file exists already.
    """
    runner = build_runner(cfg)
    metrics = runner.test()
    needs_val = report is not None and report.enable and (report.calibrate or report.threshold)
    if needs_val and is_distributed():
        raise RunConfigError('--calibrate / --threshold / --target-specificity run on one '
                             'process: test without --launcher')
    if get_rank() != 0:
        return metrics, None
    if out is not None and out_item == 'metrics':
        write_metrics_out(metrics, out)
    metric = _medical_metric(runner)
    if report is None or not report.enable or metric is None or metric.last is None:
        return metrics, None
    report_dir = Path(runner.log_dir)
    classes = metric.last.evaluation.classes
    extra = dict(config=report.config, checkpoint=report.checkpoint,
                 environment=run_environment(runner),
                 operating_points=operating_points_section(
                     metric.last, metric.pos_label, classes, report.bootstrap,
                     report.bootstrap_seed))
    if needs_val:
        val = validation_predictions(runner, metric.last.ece_bins)
        if report.threshold:
            extra['threshold'] = threshold_section(val, metric.last, metric.pos_label, classes,
                                                   report.target_specificity)
        if report.calibrate:
            scaling = extra['temperature_scaling'] = temperature_section(val, metric.last)
            if scaling['temperature'] is None:
                runner.logger.warning(f'No temperature fitted on val: {scaling["not_fitted"]}')
            else:
                runner.logger.info(f'Temperature fitted on val: {scaling["temperature"]:.4f}')
    try:
        paths = write_test_report(
            metric.last, report_dir, metrics, bootstrap=report.bootstrap,
            bootstrap_seed=report.bootstrap_seed, pos_label=metric.pos_label,
            extra=extra,
            data_root=getattr(runner.test_dataloader.dataset, 'data_root', None))
    except FileExistsError as err:
        raise ReportExistsError(str(err)) from None
    runner.logger.info('Test report: ' + ', '.join(str(p) for p in paths.values()))
    return metrics, report_dir


def run_environment(runner: Runner) -> dict:
    """Versions and device of the test run, recorded in ``metrics.json`` (``environment``) for
    the HTML report's run facts."""
    import platform

    import mmcv
    import mmpretrain
    import torchvision

    from ..version import __version__
    device = next(runner.model.parameters()).device
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else \
        f'{platform.machine()}, {torch.get_num_threads()} threads'
    return {'hifuse-mm': __version__, 'python': platform.python_version(),
            'torch': torch.__version__, 'torchvision': torchvision.__version__,
            'mmengine': mmengine.__version__, 'mmcv': mmcv.__version__,
            'mmpretrain': mmpretrain.__version__, 'device': f'{device.type} ({name})',
            'platform': platform.platform()}


def validation_predictions(runner: Runner, ece_bins: int) -> SimpleNamespace:
    """Labels and class probabilities of the validation split from the tested model (one
    process, fp32, no hooks: nothing is logged or saved as a validation of a training run)."""
    if runner.cfg.get('val_dataloader') is None:
        raise RunConfigError('--calibrate / --threshold need the validation split: the config '
                             'has no val_dataloader')
    loader = runner.build_dataloader(copy.deepcopy(runner.cfg.val_dataloader))
    model = runner.model
    model.eval()
    labels, scores = [], []
    with torch.no_grad():
        for data in loader:
            for sample in model.test_step(data):
                scores.append(sample.pred_score.float().cpu().numpy())
                labels.append(int(torch.as_tensor(sample.gt_label).reshape(-1)[0]))
    if not labels:
        raise RunConfigError('--calibrate / --threshold: the validation split is empty')
    return SimpleNamespace(labels=np.array(labels, np.int64),
                           scores=np.stack(scores).astype(np.float64), ece_bins=ece_bins)


def close_process_group() -> None:
    """Tear down torch.distributed after a successful run.

    A gloo process group still alive at interpreter exit (directly, or held by the DDP wrapper of a
    runner waiting for garbage collection) can abort the process: "terminate called without an
    active exception", SIGABRT (https://github.com/pytorch/pytorch/issues/190489). So free the
    finished runner's objects first, then destroy the group explicitly.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        gc.collect()
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
