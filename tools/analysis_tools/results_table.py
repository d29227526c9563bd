#!/usr/bin/env python
"""Tabulate test results in the papers' layout, as Markdown, CSV and LaTeX.

    python tools/analysis_tools/results_table.py RUN_DIR [RUN_DIR ...] [--out table] [--force]
        [--labels NAME ...] [--title TEXT] [--bold-best] [--no-complexity] [--shape H [W]]

Columns: Params, FLOPs, Acc, macro F1, Prec, Recall, MCC, kappa, AUC; one row per RUN_DIR.
A RUN_DIR is a tools/test.py report folder (metrics.json; its newest <timestamp>/ folder when
given the test work dir) or a tools/kfold.py work dir (kfold.json: mean ± sd over the folds).
Reports tested with --bootstrap N show their 95% intervals. Params/FLOPs are counted from the
run's config (its dumped vis_data/config.py) at the test pipeline's input size. Prints the
Markdown table; --out PREFIX also writes PREFIX.md, PREFIX.csv and PREFIX.tex (existing files
are kept unless --force). See hifuse_mm/analysis/results_table.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('runs', nargs='+', metavar='RUN_DIR',
                        help='test report folder, test work dir or k-fold work dir, one per row')
    parser.add_argument('--out', metavar='PREFIX',
                        help='also write PREFIX.md, PREFIX.csv and PREFIX.tex')
    parser.add_argument('--force', action='store_true', help='overwrite existing --out files')
    parser.add_argument('--labels', nargs='+', metavar='NAME',
                        help='row labels, one per RUN_DIR (default: the config names)')
    parser.add_argument('--title', default='Test results', help='table title / LaTeX caption')
    parser.add_argument('--bold-best', action='store_true',
                        help='bold the best value of every metric column')
    parser.add_argument('--no-complexity', action='store_true',
                        help='do not build the models to count params/FLOPs (shown as –)')
    parser.add_argument('--shape', type=int, nargs='+', metavar='SIZE',
                        help='input H [W] for the FLOPs (default: the test pipeline\'s size)')
    args = parser.parse_args(argv)
    if args.shape is not None and len(args.shape) not in (1, 2):
        parser.error('--shape takes H or H W')
    if args.labels is not None and len(args.labels) != len(args.runs):
        parser.error(f'--labels has {len(args.labels)} names for {len(args.runs)} runs')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from hifuse_mm.analysis import (RunResultError, build_table, load_run, run_complexity,
                                    table_paths, to_markdown, write_table)
    from hifuse_mm.utils.output_files import check_new_files

    shape = None if args.shape is None else tuple(args.shape * (3 - len(args.shape)))
    cache: Dict[str, dict] = {}
    try:
        if args.out:
            check_new_files(table_paths(Path(args.out)).values(), force=args.force)
        runs = [load_run(Path(run)) for run in args.runs]
        table = build_table(
            runs, labels=args.labels, title=args.title, bold_best=args.bold_best,
            complexity=None if args.no_complexity else
            (lambda run: run_complexity(run, shape, cache)))
        print(to_markdown(table), end='')
        if args.out:
            paths = write_table(table, Path(args.out), force=args.force)
            print('Wrote ' + ', '.join(str(p) for p in paths.values()))
    except (RunResultError, FileExistsError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
