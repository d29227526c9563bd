"""``tools/test.py``: parsed arguments -> test config and report options -> run."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from mmengine.config import Config

from .. import engine
from ..engine.runs import (METRICS_OUT_FORMATS, ReportOptions, close_process_group,
                           run_test_with_report)
from ..engine.testing_config import configure_testing
from .arguments import common_options, load_config, test_parser
from .checks import check_checkpoints, check_launcher, config_key_errors
from .errors import clear_errors, config_errors


def check_out_file(out: str, out_item: Optional[str]) -> None:
    """``--out`` must not exist and must have a suffix the run can write (checked before the
    run, not after it)."""
    if Path(out).exists():
        raise SystemExit(f'error: --out {out} exists; remove it or pick another file')
    if out_item == 'metrics':
        if Path(out).suffix.lstrip('.').lower() not in METRICS_OUT_FORMATS:
            raise SystemExit(f'error: --out {out}: metrics are written as '
                             f'{", ".join("." + f for f in METRICS_OUT_FORMATS)}; '
                             'name the file with one of these suffixes')
    elif not out.endswith(('.pkl', '.pickle')):
        raise SystemExit(f'error: --out {out}: predictions are written as a pickle; name the '
                         'file .pkl (or pass --out-item metrics for .json/.yaml)')


def test_config(args: argparse.Namespace) -> Config:
    """Build the test config from parsed :func:`~.arguments.test_parser` arguments."""
    cfg = load_config(args)
    if args.bootstrap < 0:
        raise SystemExit(f'error: --bootstrap must be >= 0, got {args.bootstrap}')
    if args.target_specificity is not None and not 0 < args.target_specificity < 1:
        raise SystemExit('error: --target-specificity must be between 0 and 1, got '
                         f'{args.target_specificity}')
    if args.out is not None:
        check_out_file(args.out, args.out_item)
    with config_errors():
        return configure_testing(
            cfg, **common_options(args), checkpoint=args.checkpoint, show=args.show,
            show_dir=args.show_dir, interval=args.interval, wait_time=args.wait_time,
            tta=args.tta, out=args.out, out_item=args.out_item)


def test_report(args: argparse.Namespace) -> ReportOptions:
    """The report options of parsed :func:`~.arguments.test_parser` arguments."""
    return ReportOptions(enable=not args.no_report, bootstrap=args.bootstrap,
                         bootstrap_seed=args.bootstrap_seed, config=args.config,
                         checkpoint=args.checkpoint, calibrate=args.calibrate,
                         threshold='val' if args.target_specificity is not None
                         else args.threshold, target_specificity=args.target_specificity)


def add_html_flag(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--html``: also write the HTML evaluation report of the run just tested."""
    parser.add_argument('--html', action='store_true',
                        help='also write report.html into the report folder: one '
                        'self-contained HTML report of this run (tools/analysis_tools/'
                        'report.py, docs/report.md)')
    return parser


def write_html(report_dir: Optional[Path], trust_checkpoint: bool = False) -> None:
    """Write ``report_dir/report.html`` (:mod:`hifuse_mm.analysis.html_report`); nothing on
    ranks that wrote no report."""
    if report_dir is None:
        return
    from ..analysis import RunResultError
    from ..analysis.html_report import HtmlReportOptions, write_html_report

    out = report_dir / 'report.html'
    argv = ['python', 'tools/analysis_tools/report.py', str(report_dir), '--out', str(out)]
    try:
        write_html_report([report_dir], out, HtmlReportOptions(
            trust_checkpoint=trust_checkpoint, argv=argv))
    except (RunResultError, FileExistsError) as err:
        raise SystemExit(f'error: {err}') from None
    print(f'HTML report: {out}')


def test_main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of ``tools/test.py``."""
    engine.install()
    args = add_html_flag(test_parser()).parse_args(argv)
    check_launcher(args.launcher, 'test')
    if args.html and args.no_report:
        raise SystemExit('error: --html builds on the test report; drop --no-report')
    with clear_errors(), engine.trust_all_checkpoints(args.trust_checkpoint):
        cfg = test_config(args)
        check_checkpoints(cfg, 'CHECKPOINT')
        with config_key_errors(cfg), config_errors():
            _, report_dir = run_test_with_report(cfg, test_report(args), out=args.out,
                                                 out_item=args.out_item)
    if args.html:
        write_html(report_dir, args.trust_checkpoint)
    close_process_group()
