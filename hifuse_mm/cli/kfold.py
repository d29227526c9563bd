"""Cross-validation behind ``tools/kfold.py``: train and test every fold, then tabulate.

::

    python tools/kfold.py CONFIG --folds fold1 fold2 [--work-dir W] [--launcher pytorch]
                          [--amp] [--cfg-options k=v ...]

For each fold the config's split lists ``<dir>/<split>.txt`` (``meta/train.txt``) are replaced
by ``<dir>/<fold>/<split>.txt`` (``meta/fold1/train.txt``, as
``tools/dataset_converters/prepare_kvasir.py`` writes them). The fold is then trained exactly
as ``tools/train.py`` does (:func:`hifuse_mm.cli.train_config` /
:func:`hifuse_mm.engine.runs.run_train`, work dir ``W/<fold>``), its best checkpoint (chosen on
the fold's validation split) is tested exactly as ``tools/test.py`` does (work dir
``W/<fold>/test``, with the report), and finally

* ``W/kfold.json``: every float test metric per fold, their mean and standard deviation
  (sample standard deviation, ddof = 1; NaN for a single fold), the checkpoints and report
  folders;
* ``W/kfold.md``: the same as a markdown table (metrics as rows; folds, mean, std as columns).

The summary statistics and the table are :mod:`hifuse_mm.analysis.kfold_summary`.

Existing summary files stop the run before any training (nothing is overwritten).
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path, PurePosixPath
from typing import Dict, Optional, Sequence

from mmengine.config import Config

from .. import engine
from ..engine.run_config import DATALOADER_KEYS
from ..engine.runs import close_process_group
from .checks import check_launcher
from .errors import clear_errors
from .repeated_runs import (add_repeated_run_args, common_flags, existing_summaries,
                            train_then_test, write_summary)

SUMMARY_FILES = ('kfold.json', 'kfold.md')


def kfold_parser() -> argparse.ArgumentParser:
    """Arguments of ``tools/kfold.py``."""
    parser = argparse.ArgumentParser(description='Train and test every fold of a dataset')
    parser.add_argument('config', help='config file (its split lists are meta/<split>.txt)')
    parser.add_argument('--folds', nargs='+', default=['fold1', 'fold2'],
                        help='fold folders next to the split lists (default: fold1 fold2)')
    add_repeated_run_args(parser, 'kfold')
    return parser


def fold_ann_file(ann_file: str, fold: str) -> str:
    """``meta/train.txt`` (or ``meta/fold2/train.txt``) -> ``meta/<fold>/train.txt``."""
    path = PurePosixPath(ann_file)
    base = path.parent.parent if re.fullmatch(r'fold\w*', path.parent.name) else path.parent
    return str(base / fold / path.name)


def apply_fold(cfg: Config, fold: str) -> None:
    """Point every dataloader of ``cfg`` at ``fold``'s lists; errors if a list is missing."""
    for key in DATALOADER_KEYS:
        loader = cfg.get(key)
        if loader is None:
            continue
        dataset = loader.dataset
        if not dataset.get('ann_file'):
            raise SystemExit(f'{key}.dataset has no ann_file; k-fold needs split lists '
                             '(meta/<split>.txt) from tools/dataset_converters/prepare_*.py')
        dataset.ann_file = fold_ann_file(dataset.ann_file, fold)
        path = Path(dataset.get('data_root', '')) / dataset.ann_file
        if not path.is_file():
            raise SystemExit(f'{path} not found: {fold} is not a fold of this dataset (prepare '
                             'it with tools/dataset_converters/prepare_kvasir.py, which writes '
                             'meta/fold1/ and meta/fold2/)')


def run_kfold(args: argparse.Namespace) -> Dict[str, object]:
    """Train and test each fold; write and return the summary."""
    work_dir = Path(args.work_dir or Path('work_dirs') / f'{Path(args.config).stem}_kfold')
    existing = existing_summaries(work_dir, SUMMARY_FILES)
    if existing:
        raise SystemExit(f'{", ".join(existing)} exist(s) from an earlier run; choose another '
                         '--work-dir (nothing was overwritten)')
    if len(set(args.folds)) != len(args.folds):
        raise SystemExit(f'--folds has repeats: {args.folds}')
    # Fail on a missing fold before spending hours on the first one.
    probe = Config.fromfile(args.config)
    for fold in args.folds:
        apply_fold(probe, fold)

    options = ['--cfg-options', *args.cfg_options] if args.cfg_options else []
    stem = Path(args.config).stem
    results: Dict[str, Dict[str, float]] = {}
    details: Dict[str, Dict[str, Optional[str]]] = {}
    for fold in args.folds:
        outcome = train_then_test(args.config, work_dir / fold, f'{stem}_{fold}', common_flags(args),
                                  options, args.bootstrap,
                                  edit=lambda cfg, fold=fold: apply_fold(cfg, fold))
        results[fold] = outcome.metrics
        details[fold] = dict(checkpoint=outcome.checkpoint,
                             report_dir=None if outcome.report_dir is None
                             else str(outcome.report_dir))
    return write_summary(work_dir, 'kfold', results, details,
                         f'{stem}: {len(args.folds)}-fold test results', 'folds',
                         dict(config=args.config, folds=list(args.folds)))


def kfold_main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of ``tools/kfold.py``."""
    engine.install()
    args = kfold_parser().parse_args(argv)
    check_launcher(args.launcher, 'train')
    with clear_errors():
        run_kfold(args)
    close_process_group()
