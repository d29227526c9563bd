"""``tools/analysis_tools/report.py``: one self-contained HTML evaluation report of one or more
runs (:mod:`hifuse_mm.analysis.html_report`).

::

    python tools/analysis_tools/report.py RUN_DIR [RUN_DIR ...] [--out report.html] [--force]
        [--title T] [--labels NAME ...] [--failures N] [--no-cam] [--device cpu]
        [--trust-checkpoint] [--resamples 10000] [--seed 0]

A RUN_DIR is what ``results_table.py`` takes: a ``tools/test.py`` report folder or work dir, a
``tools/kfold.py`` or ``tools/seeds.py`` work dir. The report is written atomically; an existing
``--out`` is kept unless ``--force``. A folder that is not a run, or an existing ``--out``, is
an ``error: ...`` line and exit status 1 (nothing written); bad arguments exit 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence


def report_parser() -> argparse.ArgumentParser:
    """Arguments of ``tools/analysis_tools/report.py``."""
    parser = argparse.ArgumentParser(
        description='One self-contained HTML evaluation report (data, results, failure '
        'analysis, run facts, CLAIM 2024 / TRIPOD+AI checklist) of one or more runs')
    parser.add_argument('runs', nargs='+', metavar='RUN_DIR',
                        help='tools/test.py report folder or work dir, tools/kfold.py or '
                        'tools/seeds.py work dir')
    parser.add_argument('--out', default='report.html',
                        help='the HTML file to write (default report.html); kept if it exists '
                        'unless --force')
    parser.add_argument('--force', action='store_true', help='overwrite an existing --out')
    parser.add_argument('--title', help='page title (default: the runs\' names)')
    parser.add_argument('--labels', nargs='+', metavar='NAME',
                        help='names of the runs, one per RUN_DIR (default: config names)')
    parser.add_argument('--failures', type=int, default=8, metavar='N',
                        help='images in each failure gallery (default 8)')
    parser.add_argument('--no-cam', action='store_true',
                        help='no Grad-CAM overlays (they need the cam extra and the checkpoint)')
    parser.add_argument('--device', help='device of the Grad-CAM model: cpu, cuda... '
                        '(default: cuda if available)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow full unpickling of a checkpoint that does not load '
                        'weights-only (can run code: only for files you trust; SECURITY.md)')
    parser.add_argument('--resamples', type=int, default=10000,
                        help='paired-bootstrap rounds when comparing runs (default 10000)')
    parser.add_argument('--seed', type=int, default=0, help='seed of that bootstrap (default 0)')
    return parser


def parse_report_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse and check the arguments (usage errors exit 2)."""
    parser = report_parser()
    args = parser.parse_args(argv)
    if args.failures < 0:
        parser.error(f'--failures must be >= 0, got {args.failures}')
    if args.resamples < 1:
        parser.error(f'--resamples must be >= 1, got {args.resamples}')
    if args.labels is not None and len(args.labels) != len(args.runs):
        parser.error(f'--labels has {len(args.labels)} names for {len(args.runs)} runs')
    if not args.out.lower().endswith(('.html', '.htm')):
        parser.error(f'--out {args.out}: name the file .html')
    return args


def report_main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``tools/analysis_tools/report.py``; returns the exit status."""
    args = parse_report_args(argv)
    from ..analysis import RunResultError
    from ..analysis.html_report import HtmlReportOptions, write_html_report

    shown = ['python', 'tools/analysis_tools/report.py', *args.runs, '--out', args.out]
    options = HtmlReportOptions(title=args.title, labels=args.labels, failures=args.failures,
                                cam=not args.no_cam, device=args.device,
                                trust_checkpoint=args.trust_checkpoint,
                                resamples=args.resamples, seed=args.seed, argv=shown)
    try:
        out = write_html_report([Path(r) for r in args.runs], Path(args.out), options,
                                force=args.force)
    except (RunResultError, FileExistsError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'Wrote {out}')
    return 0
