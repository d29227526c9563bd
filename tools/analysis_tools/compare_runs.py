#!/usr/bin/env python
"""Paired significance tests of two runs on the same test images.

    python tools/analysis_tools/compare_runs.py RUN_A RUN_B [--resamples 10000] [--seed 0]
        [--confidence 0.95] [--pos-label 1] [--names A B] [--out compare.json] [--force]

RUN_A / RUN_B: a tools/test.py report folder (or its predictions.csv), a test work dir (newest
report) or a tools/kfold.py work dir (all folds' predictions together). Accuracy: McNemar's
exact test; macro F1 and AUC: paired bootstrap (more than two classes: of the one-vs-rest macro
AUC). Every metric gets A, B, A - B and the percentile bootstrap interval of A - B. Two classes:
also DeLong's test of the two correlated ROC AUCs (row "AUC (DeLong)": z, p-value and the
normal-approximation interval of A - B). Runs whose test images (or labels) differ are
refused. Prints a Markdown table; --out FILE.json (or .md) also saves it (kept unless --force).
See hifuse_mm/analysis/paired_tests.py and hifuse_mm/analysis/delong.py for the definitions.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('run_a', metavar='RUN_A', help='first run (A)')
    parser.add_argument('run_b', metavar='RUN_B', help='second run (B)')
    parser.add_argument('--resamples', type=int, default=10000,
                        help='paired bootstrap rounds (default 10000)')
    parser.add_argument('--seed', type=int, default=0, help='bootstrap seed (default 0)')
    parser.add_argument('--confidence', type=float, default=0.95,
                        help='interval level of the bootstrap and DeLong intervals '
                        '(default 0.95)')
    parser.add_argument('--pos-label', type=int, default=1,
                        help="positive class index of a binary AUC and of DeLong's test "
                        '(default 1, as MedicalMetrics)')
    parser.add_argument('--names', nargs=2, metavar=('A', 'B'),
                        help='labels of the runs (default: their config names)')
    parser.add_argument('--out', help='also write the result: .json (all numbers) or .md')
    parser.add_argument('--force', action='store_true', help='overwrite an existing --out')
    args = parser.parse_args(argv)
    if args.resamples < 1:
        parser.error(f'--resamples must be >= 1, got {args.resamples}')
    if not 0 < args.confidence < 1:
        parser.error(f'--confidence must be in (0, 1), got {args.confidence}')
    if args.out and Path(args.out).suffix not in ('.json', '.md'):
        parser.error('--out must end in .json or .md')
    return args


def _name(run: str) -> str:
    path = Path(run)
    return (path.parent if path.is_file() else path).resolve().name


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from hifuse_mm.analysis import (RunResultError, compare_predictions, comparison_markdown,
                                    load_predictions)
    from hifuse_mm.utils.output_files import check_new_files

    try:
        if args.out:
            check_new_files([args.out], force=args.force)
        run_a, run_b = load_predictions(Path(args.run_a)), load_predictions(Path(args.run_b))
        names = args.names or [run_a.name or _name(args.run_a), run_b.name or _name(args.run_b)]
        if names[0] == names[1]:
            names = [f'{names[0]} ({args.run_a})', f'{names[1]} ({args.run_b})']
        result = compare_predictions(
            run_a, run_b, name_a=names[0], name_b=names[1], resamples=args.resamples,
            seed=args.seed, confidence=args.confidence, pos_label=args.pos_label)
    except (RunResultError, FileExistsError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    text = comparison_markdown(result)
    print(text, end='')
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == '.json':
            out.write_text(json.dumps(result.to_dict(), indent=2) + '\n')
        else:
            out.write_text(text)
        print(f'Wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
