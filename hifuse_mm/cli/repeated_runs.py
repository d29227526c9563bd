"""One config trained and tested several times (k-fold, seeds): the step both tools share.

:func:`train_then_test` trains a config exactly as ``tools/train.py`` does and tests the best
checkpoint (chosen on the validation split) exactly as ``tools/test.py`` does, with the report.
:func:`write_summary` writes the ``<name>.json`` / ``<name>.md`` summary over the runs
(:mod:`hifuse_mm.analysis.kfold_summary`), never over an existing file.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from mmengine.config import Config
from mmengine.dist import get_rank

from ..analysis.kfold_summary import markdown_table, summarise
from ..engine.runs import run_test_with_report, run_train
from .arguments import LAUNCHERS, test_parser, train_parser
from .test import test_config, test_report
from .train import train_config


def add_repeated_run_args(parser: argparse.ArgumentParser, suffix: str) -> None:
    """The options ``tools/kfold.py`` and ``tools/seeds.py`` share (default work dir
    ``work_dirs/<config name>_<suffix>``)."""
    parser.add_argument('--work-dir', help='output folder (default: '
                        f'work_dirs/<config name>_{suffix})')
    parser.add_argument('--amp', action='store_true', help='mixed precision')
    parser.add_argument('--skip-bad-images', action='store_true',
                        help='leave out missing or undecodable images (listed at the end)')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                        help='config overrides, passed on to training and testing')
    parser.add_argument('--bootstrap', type=int, default=0, metavar='N',
                        help='bootstrap resamples for the test reports\' confidence intervals')


def common_flags(args: argparse.Namespace) -> List[str]:
    """The flags of :func:`add_repeated_run_args` both steps of a run get."""
    argv = ['--launcher', args.launcher, '--local-rank', str(args.local_rank)]
    if args.amp:
        argv.append('--amp')
    if getattr(args, 'skip_bad_images', False):
        argv.append('--skip-bad-images')
    return argv


@dataclass
class RunOutcome:
    """What one train-then-test run produced."""

    metrics: Dict[str, float]
    checkpoint: str
    report_dir: Optional[Path]


def float_metrics(metrics: Dict[str, object]) -> Dict[str, float]:
    """The numeric test metrics of a run (booleans and non-numbers left out)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def train_then_test(config: str, run_dir: Path, name: str, common: Sequence[str],
                    options: Sequence[str], bootstrap: int = 0,
                    edit: Optional[Callable[[Config], None]] = None) -> RunOutcome:
    """Train ``config`` into ``run_dir`` and test its best checkpoint into ``run_dir/test``.

    Args:
        config: The config file.
        run_dir: The run's work dir.
        name: Experiment name stem (``_train`` / ``_test`` appended).
        common: Tool flags for both steps (``--launcher``, ``--amp``, ...).
        options: ``['--cfg-options', ...]`` or empty, for both steps.
        bootstrap: Bootstrap resamples of the test report.
        edit: Applied to both built configs (e.g. pointing the datasets at a fold).
    """
    cfg = train_config(train_parser().parse_args(
        [config, '--work-dir', str(run_dir), *common, *options]))
    if edit is not None:
        edit(cfg)
    cfg.experiment_name = f'{name}_train'
    if cfg.get('val_dataloader') is None:
        raise SystemExit('the best checkpoint is selected on validation: the config needs '
                         'val_dataloader / val_evaluator')
    runner = run_train(cfg)
    best = runner.message_hub.get_info('best_ckpt')
    del runner
    gc.collect()
    if not best:
        raise SystemExit(f'{name}: training saved no best checkpoint (check '
                         'default_hooks.checkpoint.save_best)')
    test_args = test_parser().parse_args(
        [config, best, '--work-dir', str(run_dir / 'test'), *common,
         '--bootstrap', str(bootstrap), *options])
    cfg = test_config(test_args)
    if edit is not None:
        edit(cfg)
    cfg.experiment_name = f'{name}_test'
    metrics, report_dir = run_test_with_report(cfg, test_report(test_args))
    gc.collect()
    return RunOutcome(float_metrics(metrics), str(best), report_dir)


def nan_to_none(values: Dict[str, float]) -> Dict[str, Optional[float]]:
    """JSON-ready metrics: NaN becomes null."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}


def existing_summaries(work_dir: Path, files: Sequence[str]) -> List[str]:
    """The summary files that exist already in ``work_dir``."""
    return [str(work_dir / f) for f in files if (work_dir / f).exists()]


def write_summary(work_dir: Path, stem: str, results: Dict[str, Dict[str, float]],
                  details: Dict[str, Dict[str, Optional[str]]], title: str, unit: str,
                  extra: Dict[str, object]) -> Dict[str, object]:
    """Write ``<stem>.json`` and ``<stem>.md`` (rank 0; never over existing files).

    The JSON holds ``extra``, every metric per run, their mean and sample sd (ddof = 1) and
    each run's checkpoint and report folder; the Markdown, the table of
    :func:`~hifuse_mm.analysis.kfold_summary.markdown_table`.
    """
    summary = summarise(results)
    content = dict(extra, metrics={r: nan_to_none(m) for r, m in results.items()},
                   mean=nan_to_none(summary['mean']), std=nan_to_none(summary['std']),
                   std_ddof=1, runs=details)
    if get_rank() == 0:
        work_dir.mkdir(parents=True, exist_ok=True)
        table = markdown_table(results, summary, title, unit=unit)
        with open(work_dir / f'{stem}.json', 'x') as stream:
            json.dump(content, stream, indent=2)
            stream.write('\n')
        with open(work_dir / f'{stem}.md', 'x') as stream:
            stream.write(table)
        print(table)
        print(f'Wrote {work_dir / f"{stem}.md"} and {work_dir / f"{stem}.json"}')
    return content
