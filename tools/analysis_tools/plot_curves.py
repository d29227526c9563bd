#!/usr/bin/env python
"""Plot a training run's curves: training loss, learning rate and validation metrics by epoch.

    python tools/analysis_tools/plot_curves.py WORK_DIR [--all-runs] [--metrics KEY ...]
                                               [--out curves.png] [--force]

WORK_DIR is a training work dir (``--work-dir`` of tools/train.py) holding ``<timestamp>/``
run folders, or one run folder. The curves come from the run's logged scalars
(``<timestamp>/vis_data/scalars.json``): the latest run, or with ``--all-runs`` every run in
order (a run continued with ``--resume`` starts a new folder). Writes one PNG (default
``WORK_DIR/curves.png``); an existing file is kept unless ``--force``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from hifuse_mm.apis import (OutputExistsError, TrainingLogError, check_new_files,
                            load_training_log, plot_training_curves)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dir', help='training work dir, or one <timestamp> run folder')
    parser.add_argument('--all-runs', action='store_true',
                        help='join every run of the work dir (e.g. after --resume)')
    parser.add_argument('--metrics', nargs='+',
                        help='validation metrics to plot (default: all logged)')
    parser.add_argument('--out', help='PNG to write (default WORK_DIR/curves.png)')
    parser.add_argument('--title', help='figure title (default: the work dir name)')
    parser.add_argument('--force', action='store_true', help='overwrite an existing --out')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    work_dir = Path(args.work_dir)
    out = Path(args.out) if args.out else work_dir / 'curves.png'
    try:
        check_new_files([out], force=args.force)
        log = load_training_log(work_dir, all_runs=args.all_runs)
        plot_training_curves(log, out, metrics=args.metrics,
                             title=args.title or work_dir.resolve().name)
    except (OutputExistsError, TrainingLogError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) else err
        print(f'error: {message}', file=sys.stderr)
        return 2
    sources = ', '.join(str(s) for s in log.sources)
    print(f'{len(log.train)} training and {len(log.val)} validation entries from {sources} '
          f'-> {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
