"""The arguments of ``tools/train.py`` and ``tools/test.py`` and how the shared ones map onto
the config transforms' keyword options (:mod:`hifuse_mm.engine.run_config`)."""
from __future__ import annotations

import argparse
import os
import re
from typing import Any, Dict

from mmengine.config import Config, DictAction

from .checks import read_config

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
_KEY = re.compile(r'[A-Za-z_]\w*(\.\w+)*')


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction`` (``KEY=VALUE`` pairs, values parsed as numbers, booleans,
    None, lists and tuples) that reports a malformed pair as a usage error naming it, not as
    a traceback: a pair without ``=``, a key that is no dotted name, unbalanced brackets."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: Any = None) -> None:
        for pair in values or ():
            key, sep, value = pair.partition('=')
            if not sep:
                raise argparse.ArgumentError(
                    self, f'{pair!r} is not KEY=VALUE (e.g. train_cfg.max_epochs=1)')
            if not _KEY.fullmatch(key):
                raise argparse.ArgumentError(
                    self, f'{pair!r}: {key!r} is not a config key (dotted names, e.g. '
                    'train_cfg.max_epochs)')
            try:
                self._parse_iterable(value)
            except (AssertionError, ValueError, IndexError) as err:
                raise argparse.ArgumentError(self, f'{pair!r}: malformed value ({err})') from None
        super().__call__(parser, namespace, values, option_string)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """The options both tools take (after their own)."""
    parser.add_argument('--work-dir', help='directory for logs and checkpoints '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config entries, e.g. train_cfg.max_epochs=5 '
                        '(applied last)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (bf16 autocast on CPU-only hosts)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the model (falls back to eager with a warning '
                        'when compiling fails; see docs/benchmarks.md)')
    parser.add_argument('--no-pin-memory', action='store_true',
                        help='do not pin dataloader memory')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow full unpickling of a checkpoint that does not load '
                        'weights-only; this can run code, use it only for files you trust '
                        '(SECURITY.md)')
    parser.add_argument('--skip-bad-images', action='store_true',
                        help='leave out missing or undecodable images (all listed at the end) '
                        'instead of stopping at the first one')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (older versions --local_rank).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def train_parser() -> argparse.ArgumentParser:
    """Arguments of ``tools/train.py`` (MMPretrain's train.py CLI)."""
    parser = argparse.ArgumentParser(description='Train a classifier')
    parser.add_argument('config', help='config file')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or without a value from the latest '
                        'checkpoint in the work dir')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip validation during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale lr by total batch size / auto_scale_lr.base_batch_size')
    parser.add_argument('--no-persistent-workers', action='store_true',
                        help='do not keep dataloader workers alive between epochs')
    add_common_args(parser)
    return parser


def test_parser() -> argparse.ArgumentParser:
    """Arguments of ``tools/test.py`` (MMPretrain's test.py CLI)."""
    parser = argparse.ArgumentParser(description='Test (and evaluate) a classifier')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='write predictions (.pkl) or metrics '
                        '(.json/.yaml/.pkl) to this file; it must not exist yet')
    parser.add_argument('--out-item', choices=['metrics', 'pred'],
                        help="what --out holds (default 'pred')")
    parser.add_argument('--show-dir', help='save visualized predictions here '
                        '(relative to the run\'s log dir)')
    parser.add_argument('--show', action='store_true', help='show predictions in a window')
    parser.add_argument('--interval', type=int, default=1,
                        help='visualize every N-th sample')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='seconds each shown image stays up')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation')
    parser.add_argument('--bootstrap', type=int, default=0, metavar='N',
                        help='add 95%% bootstrap confidence intervals of accuracy, macro F1 '
                        'and AUC from N resamples to metrics.json')
    parser.add_argument('--bootstrap-seed', type=int, default=0,
                        help='seed of the bootstrap resampling (default 0)')
    parser.add_argument('--no-report', action='store_true',
                        help='skip metrics.json, predictions.csv and the plots')
    parser.add_argument('--calibrate', choices=['val'],
                        help='fit a temperature on the validation split and report the test '
                        'metrics before and after temperature scaling')
    parser.add_argument('--threshold', choices=['val'],
                        help="choose each class's threshold on the validation split (Youden's "
                        'J) and report sensitivity/specificity/PPV/NPV on test at it')
    parser.add_argument('--target-specificity', type=float, metavar='S',
                        help='with --threshold: the best sensitivity at validation specificity '
                        '>= S instead of Youden (implies --threshold val)')
    add_common_args(parser)
    return parser


def load_config(args: argparse.Namespace) -> Config:
    """Load ``args.config`` (a missing or broken file is an ``error:`` exit); with a launcher,
    pass ``--local-rank`` on as ``LOCAL_RANK`` unless the launcher set it."""
    cfg = read_config(args.config)
    if args.launcher != 'none':
        os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return cfg


def common_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The keyword options of :func:`add_common_args`' flags, as the config transforms take
    them (``--trust-checkpoint`` is not one: it applies to the run, not the config)."""
    return dict(config_file=args.config, work_dir=args.work_dir, launcher=args.launcher,
                amp=args.amp, pin_memory=not args.no_pin_memory, compile_model=args.compile,
                cfg_options=args.cfg_options, skip_bad_images=args.skip_bad_images)
