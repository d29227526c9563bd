"""Running a built config: the runner, training, testing with the test report, the teardown.

* :func:`build_runner` builds the runner the way MMPretrain's tools do (``runner_type`` of the
  config honoured, e.g. ``HiFuseRunner`` of our default runtime).
* :func:`run_train` trains; :func:`run_test_with_report` tests and, with
  :class:`ReportOptions`, writes the test report into the run's timestamped log folder
  (``<work_dir>/<YYYYmmdd_HHMMSS>/``, so an earlier run's report is never overwritten):
  ``metrics.json``, ``predictions.csv``, ``confusion_matrix.png`` and ``roc.png``
  (:mod:`hifuse_mm.evaluation.report`), with bootstrap confidence intervals for
  ``bootstrap=N``.
* :func:`close_process_group` tears torch.distributed down after a successful run.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import mmengine
import torch
from mmengine.config import Config
from mmengine.dist import get_rank
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ..evaluation import MedicalMetrics, write_test_report
from ..utils.atomic_files import atomic_write_bytes
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
    """

    enable: bool = True
    bootstrap: int = 0
    bootstrap_seed: int = 0
    config: Optional[str] = None
    checkpoint: Optional[str] = None


class ReportExistsError(FileExistsError):
    """A report file of this run's log folder exists already (nothing was overwritten)."""


def build_runner(cfg: Config) -> Runner:
    """Build the runner the way MMPretrain's tools do (``runner_type`` honoured).

    A config that names no ``runner_type`` (one that does not inherit our default runtime) gets
    :class:`~hifuse_mm.engine.runner.HiFuseRunner`, not mmengine's plain ``Runner``, so every run
    of our tools has the run safety (strict, safe loading; crash-safe signed saving).
    """
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
    if get_rank() != 0:
        return metrics, None
    if out is not None and out_item == 'metrics':
        write_metrics_out(metrics, out)
    metric = _medical_metric(runner)
    if report is None or not report.enable or metric is None or metric.last is None:
        return metrics, None
    report_dir = Path(runner.log_dir)
    try:
        paths = write_test_report(
            metric.last, report_dir, metrics, bootstrap=report.bootstrap,
            bootstrap_seed=report.bootstrap_seed, pos_label=metric.pos_label,
            extra=dict(config=report.config, checkpoint=report.checkpoint),
            data_root=getattr(runner.test_dataloader.dataset, 'data_root', None))
    except FileExistsError as err:
        raise ReportExistsError(str(err)) from None
    runner.logger.info('Test report: ' + ', '.join(str(p) for p in paths.values()))
    return metrics, report_dir


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
