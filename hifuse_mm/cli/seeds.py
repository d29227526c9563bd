"""Seed repeats behind ``tools/seeds.py``: how much of a result is seed luck.

::

    python tools/seeds.py CONFIG --seeds 0 1 2 [--work-dir W] [--amp] [--bootstrap N]
                          [--launcher pytorch] [--cfg-options k=v ...]

For each seed ``s`` the config is trained with ``randomness.seed = s`` exactly as
``tools/train.py`` does (work dir ``W/seed<s>``), and its best checkpoint (chosen on the
validation split) is tested exactly as ``tools/test.py`` does (``W/seed<s>/test``, with the
report), through :func:`hifuse_mm.cli.repeated_runs.train_then_test`, as ``tools/kfold.py``
does per fold. Then

* ``W/seeds.json``: every numeric test metric per seed, their mean and sample standard
  deviation (ddof = 1; NaN for one seed), the checkpoints and report folders;
* ``W/seeds.md``: the same as a Markdown table (metrics as rows; seeds, mean, sd as columns).

``tools/analysis_tools/results_table.py W`` shows such a run as mean ± sd.

**Resumable:** a seed whose test report (``W/seed<s>/test/<timestamp>/metrics.json``) exists
is neither trained nor tested again; its metrics are read from that report. A seed whose
training was interrupted is trained again from the start into its own work dir (pass ``--resume``
to ``tools/train.py`` by hand to continue it instead). Existing summary files stop the run before
any training (nothing is overwritten): delete them to add seeds to a finished run.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, Optional, Sequence

from .. import engine
from ..engine.runs import close_process_group
from .checks import check_launcher
from .errors import clear_errors
from .repeated_runs import (add_repeated_run_args, common_flags, existing_summaries,
                            float_metrics, train_then_test, write_summary)

SUMMARY_FILES = ('seeds.json', 'seeds.md')


def seeds_parser() -> argparse.ArgumentParser:
    """Arguments of ``tools/seeds.py``."""
    parser = argparse.ArgumentParser(description='Train and test a config once per seed '
                                     '(a randomness.seed in --cfg-options is replaced by each '
                                     'seed)')
    parser.add_argument('config', help='config file')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2],
                        help='random seeds (randomness.seed), default: 0 1 2')
    add_repeated_run_args(parser, 'seeds')
    return parser


def seed_name(seed: int) -> str:
    """The run name (and work-dir folder) of ``seed``."""
    return f'seed{seed}'


def finished_report(run_dir: Path) -> Optional[Path]:
    """The newest test report of a seed's run folder, if the seed was tested."""
    reports = sorted((run_dir / 'test').glob('*/metrics.json'), key=lambda p: p.parent.name)
    return reports[-1] if reports else None


def _reported(report: Path) -> Dict[str, object]:
    """Metrics and checkpoint recorded in a finished seed's ``metrics.json``."""
    try:
        content = json.loads(report.read_text())
        metrics = float_metrics({k: float('nan') if v is None else v
                                 for k, v in content['metrics'].items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise SystemExit(f'error: {report} is not a readable test report ({err}); delete its '
                         'folder to test that seed again') from None
    return dict(metrics=metrics, checkpoint=content.get('checkpoint'))


def run_seeds(args: argparse.Namespace) -> Dict[str, object]:
    """Train and test the config once per seed (skipping tested seeds); write the summary."""
    work_dir = Path(args.work_dir or Path('work_dirs') / f'{Path(args.config).stem}_seeds')
    existing = existing_summaries(work_dir, SUMMARY_FILES)
    if existing:
        raise SystemExit(f'error: {", ".join(existing)} exist(s) from an earlier run; choose '
                         'another --work-dir or delete them (nothing was overwritten)')
    if len(set(args.seeds)) != len(args.seeds):
        raise SystemExit(f'error: --seeds has repeats: {args.seeds}')
    own = [o for o in args.cfg_options if not o.startswith('randomness.seed=')]
    stem = Path(args.config).stem
    results: Dict[str, Dict[str, float]] = {}
    details: Dict[str, Dict[str, Optional[str]]] = {}
    for seed in args.seeds:
        name, run_dir = seed_name(seed), work_dir / seed_name(seed)
        report = finished_report(run_dir)
        if report is not None:
            recorded = _reported(report)
            print(f'{name}: tested already ({report}); not run again')
            results[name] = recorded['metrics']  # type: ignore[assignment]
            details[name] = dict(checkpoint=recorded['checkpoint'],  # type: ignore[dict-item]
                                 report_dir=str(report.parent))
            continue
        options = ['--cfg-options', *own, f'randomness.seed={seed}']
        outcome = train_then_test(args.config, run_dir, f'{stem}_{name}', common_flags(args), options,
                                  args.bootstrap)
        results[name] = outcome.metrics
        details[name] = dict(checkpoint=outcome.checkpoint,
                             report_dir=None if outcome.report_dir is None
                             else str(outcome.report_dir))
    return write_summary(work_dir, 'seeds', results, details,
                         f'{stem}: test results over {len(args.seeds)} seeds', 'seeds',
                         dict(config=args.config, seeds=list(args.seeds),
                              folds=[seed_name(s) for s in args.seeds]))


def seeds_main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of ``tools/seeds.py``."""
    engine.install()
    args = seeds_parser().parse_args(argv)
    check_launcher(args.launcher, 'train')
    with clear_errors():
        run_seeds(args)
    close_process_group()
