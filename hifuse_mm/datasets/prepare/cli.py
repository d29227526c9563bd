"""The command line shared by ``tools/dataset_converters/prepare_{isic2018,kvasir,covid19ct}.py``.

::

    prepare_X.py SRC OUT --protocol P [--seed S] [--force] [--allow-outside-root] [options]
    prepare_X.py --check OUT

Each script only names its converter module (:mod:`.isic2018`, :mod:`.kvasir`, :mod:`.covid19ct`);
that module provides ``DESCRIPTION``, ``add_arguments(parser)`` (its protocols and options) and
``plan_from_args(src, args) -> SplitPlan``. Problems with the
data are reported as ``error: ...`` on stderr with exit status 1 (2 for wrong arguments).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Optional, Sequence

from ..splits import DatasetError
from .check import check_prepared
from .write import write_split


def format_counts(info: dict) -> str:
    """A plain-text table of the per-class counts in ``split.json`` content."""
    classes = info['classes']
    keys = list(info['counts'])
    width = max(len(c) for c in [*classes, 'total'])
    cols = [max(len(k), 5) for k in keys]
    header = ' ' * width + ''.join(f'  {k:>{w}}' for k, w in zip(keys, cols))
    rows = [header]
    for name in classes:
        rows.append(f'{name:<{width}}' + ''.join(
            f'  {info["counts"][k]["per_class"][name]:>{w}}' for k, w in zip(keys, cols)))
    rows.append(f'{"total":<{width}}' + ''.join(
        f'  {info["counts"][k]["total"]:>{w}}' for k, w in zip(keys, cols)))
    return '\n'.join(rows)


def build_parser(module: ModuleType, prog: Optional[str] = None) -> argparse.ArgumentParser:
    """Common arguments plus the dataset module's own."""
    parser = argparse.ArgumentParser(
        prog=prog, description=module.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', nargs='?', type=Path,
                        help='the official download, unpacked (never modified)')
    parser.add_argument('out', nargs='?', type=Path,
                        help='prepared dataset folder (the configs\' data_root)')
    parser.add_argument('--seed', type=int, default=0,
                        help='shuffling seed (default 0); same seed, same files')
    parser.add_argument('--force', action='store_true',
                        help='overwrite a split prepared earlier in OUT')
    parser.add_argument('--check', type=Path, metavar='OUT',
                        help='only re-verify a prepared folder and exit')
    parser.add_argument('--allow-outside-root', action='store_true',
                        help='accept listed images outside SRC (symlinks leading out of it, '
                        '".." in a source list); the datasets then need '
                        'allow_outside_root=True too')
    parser.add_argument('--workers', type=int, default=None,
                        help='threads for reading images (default: min(8, CPUs))')
    module.add_arguments(parser)
    return parser


def _check(out: Path, workers: Optional[int]) -> int:
    problems = check_prepared(out, workers=workers)
    if problems:
        print(f'error: {out} failed the check:\n' + '\n'.join(problems), file=sys.stderr)
        return 1
    print(f'{out}: OK (index checksums, classes, counts, images, no duplicates across splits)')
    return 0


def converter_main(module: ModuleType, argv: Optional[Sequence[str]] = None,
                   prog: Optional[str] = None) -> int:
    """Run a converter; returns the exit status."""
    parser = build_parser(module, prog)
    args = parser.parse_args(argv)
    try:
        if args.check is not None:
            if args.src is not None:
                parser.error('--check takes only the prepared folder: prepare_X.py --check OUT')
            return _check(args.check, args.workers)
        if args.src is None or args.out is None:
            parser.error('SRC and OUT are required (or --check OUT)')
        if not args.src.is_dir():
            raise DatasetError(f'SRC {args.src} is not a folder')
        start = time.time()
        plan = module.plan_from_args(args.src, args)
        for note in plan.notes:
            print(f'Note: {note}')
        info = write_split(plan, args.src, args.out, force=args.force, workers=args.workers,
                           allow_outside_root=args.allow_outside_root)
    except DatasetError as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    except OSError as err:
        where = f'{err.filename}: ' if err.filename else ''
        kept = (f' Any split prepared earlier in {args.out} was left as it was.'
                if args.check is None else '')
        print(f'error: {where}{err.strerror or err}.{kept} Fix the cause and run the converter '
              'again.', file=sys.stderr)
        return 1
    seed = '' if plan.seed is None else f', seed {plan.seed}'
    print(f'Prepared {plan.dataset} ({plan.protocol} protocol{seed}) in {args.out} '
          f'({time.time() - start:.1f} s):')
    print(format_counts(info))
    print(f'Check it again any time with: --check {args.out}')
    return 0
