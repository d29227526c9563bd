"""The command line shared by ``tools/dataset_converters/prepare_{isic2018,kvasir,covid19ct}.py``.

::

    prepare_X.py SRC OUT --protocol P [--seed S] [--force] [--allow-outside-root]
                 [--no-audit] [--hash-distance D] [options]
    prepare_X.py --check OUT [--no-audit]

Each script only names its converter module (:mod:`.isic2018`, :mod:`.kvasir`, :mod:`.covid19ct`);
that module provides ``DESCRIPTION``, ``add_arguments(parser)`` (its protocols and options) and
``plan_from_args(src, args) -> SplitPlan``. Problems with the
data are reported as ``error: ...`` on stderr with exit status 1 (2 for wrong arguments).

After writing, the converter runs the split audit (:mod:`.audit`: exact and near-duplicate
images, and with ISIC's ``--group-by-lesion`` the lesions, shared across train / val / test)
on every written set of lists and records it in ``meta/audit.json`` (``meta/<fold>/audit.json``
for folds). A leak is reported as a warning and does not fail the converter: the split is the
one asked for (an official split is kept as published), and the record says what it holds;
``tools/dataset_converters/audit_splits.py`` exits 1 on any leak, for pipelines that must stop.
``--check`` re-runs the audit without writing and fails when it finds other leaks than the
recorded ones (images replaced since the split was prepared). ``--no-audit`` skips it (the audit
needs the ``audit`` extra, imagehash).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import List, Optional, Sequence

from ..splits import DatasetError, read_split_record
from . import audit
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
    parser.add_argument('--no-audit', action='store_true',
                        help='skip the split audit (exact and near-duplicate images across '
                        'splits, recorded in meta/audit.json); with --check too')
    parser.add_argument('--hash-distance', type=int, default=audit.DEFAULT_HASH_DISTANCE,
                        help='largest perceptual-hash distance (of 64 bits) the audit counts '
                        f'as a near-duplicate (default {audit.DEFAULT_HASH_DISTANCE})')
    module.add_arguments(parser)
    return parser


def _partitions(out: Path) -> list:
    """The list sets a prepared folder holds: ``''`` (meta/*.txt) and any folds."""
    counts = read_split_record(out).get('counts')
    keys = counts if isinstance(counts, dict) else {}
    return sorted({key.rpartition('/')[0] for key in keys}) or ['']


def _need_audit_package() -> None:
    try:
        audit._imagehash()
    except DatasetError as err:
        raise DatasetError(f'{err}; or pass --no-audit to skip the split audit') from None


def _run_audits(out: Path, args: argparse.Namespace, groups: Optional[Path]) -> list:
    """Audit every list set of ``out`` (images hashed once); returns the reports."""
    cache: dict = {}
    return [audit.audit_split(out, groups, args.hash_distance, args.workers or 4,
                              partition=partition, hash_cache=cache)
            for partition in _partitions(out)]


def _print_audit(report: dict, written: bool) -> None:
    where = audit.audit_file(report['partition'])
    lines = audit.summary_lines(report)
    label = f'Split audit ({report["partition"]})' if report['partition'] else 'Split audit'
    if report['ok']:
        print(f'{label}: {lines[0]}' + (f'; recorded in {where}' if written else ''))
    else:
        print(f'WARNING: {label}: {lines[0]}; '
              + (f'every pair is listed in {where}' if written else 'pairs below'))
        print('  Images shared across splits inflate test scores. Look at the pairs; for '
              'lesion or patient data prepare with groups (ISIC: --group-by-lesion).')
    for line in lines[1:]:
        print(f'  {line}')


def _read_record(path: Path) -> Optional[dict]:
    """A recorded audit, or None when there is none; DatasetError when it is not one."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding='utf-8'))
        audit.leak_keys(record)
        groups = record.get('groups', {}).get('file')
    except (ValueError, TypeError, KeyError, AttributeError):
        raise DatasetError(f'{path} is not a valid audit record; re-run '
                           'tools/dataset_converters/audit_splits.py') from None
    if groups is not None and not isinstance(groups, str):
        raise DatasetError(f'{path} is not a valid audit record; re-run '
                           'tools/dataset_converters/audit_splits.py')
    return record


def _audit_problems(out: Path, args: argparse.Namespace) -> List[str]:
    """``--check``'s audit: re-run it (nothing written) with the groups file the record was made
    with; leaks the record does not hold are problems, recorded ones are shown as warnings."""
    _need_audit_package()
    problems, cache = [], {}
    for partition in _partitions(out):
        path = out / audit.audit_file(partition)
        record = _read_record(path)
        groups = (record or {}).get('groups', {}).get('file')
        if groups and not Path(groups).is_file():
            print(f'Note: the groups file {groups} of {path} is not reachable; lesion / patient '
                  'groups were not re-checked')
            groups = None
        report = audit.audit_split(out, groups, args.hash_distance, args.workers or 4,
                                   partition=partition, hash_cache=cache)
        _print_audit(report, written=False)
        if record is None:
            print(f'Note: {path} not found (prepared with --no-audit?): the audit above was not '
                  'compared with a record')
            continue
        recorded = audit.leak_keys(record)
        if not groups:
            recorded = {key for key in recorded if key[0] != 'group'}
        new = sorted(audit.leak_keys(report) - recorded)
        if new:
            problems.append(
                f'the split audit finds {len(new)} cross-split pair(s) or group(s) that {path} '
                'does not record (images replaced since the split was prepared?): '
                + '; '.join(' '.join(key) for key in new[:5]) + (' ...' if len(new) > 5 else '')
                + '. Look at them, then record the audit again with '
                'tools/dataset_converters/audit_splits.py (or re-run the converter with --force).')
    return problems


def _check(out: Path, args: argparse.Namespace) -> int:
    problems = check_prepared(out, workers=args.workers)
    if not args.no_audit and not problems:
        problems = _audit_problems(out, args)
    if problems:
        print(f'error: {out} failed the check:\n' + '\n'.join(problems), file=sys.stderr)
        return 1
    audited = '' if args.no_audit else ', split audit as recorded'
    print(f'{out}: OK (index checksums, classes, counts, images, no duplicates across splits'
          f'{audited})')
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
            return _check(args.check, args)
        if args.src is None or args.out is None:
            parser.error('SRC and OUT are required (or --check OUT)')
        if not args.src.is_dir():
            raise DatasetError(f'SRC {args.src} is not a folder')
        if not args.no_audit:
            _need_audit_package()
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
    audits = []
    if not args.no_audit:
        groups = getattr(module, 'audit_groups', lambda _: None)(args)
        try:
            audits = _run_audits(args.out, args, groups)
            for report in audits:
                audit.write_report(args.out, report)
        except (DatasetError, OSError) as err:
            print(f'error: the split was written to {args.out}, but its audit failed: {err}. '
                  f'Run tools/dataset_converters/audit_splits.py {args.out} once that is '
                  'fixed.', file=sys.stderr)
            return 1
    seed = '' if plan.seed is None else f', seed {plan.seed}'
    print(f'Prepared {plan.dataset} ({plan.protocol} protocol{seed}) in {args.out} '
          f'({time.time() - start:.1f} s):')
    print(format_counts(info))
    for report in audits:
        _print_audit(report, written=True)
    if args.no_audit:
        print('Split audit skipped (--no-audit): run tools/dataset_converters/audit_splits.py '
              f'{args.out} to look for images shared across splits')
    print(f'Check it again any time with: --check {args.out}')
    return 0
