"""Writing a prepared split folder from a :class:`~.plan.SplitPlan`, after checking it.

The three dataset converters (``tools/dataset_converters/prepare_*.py``) only read their
official layout and decide which image goes where (a :class:`~.plan.SplitPlan`); the checks and
the output are here, once:

* checks before anything is written: every listed image exists and decodes, no image is listed
  twice, no split is empty, and no two files with the same bytes sit in different splits
  (:mod:`.imagecheck`);
* the output (the layout of :mod:`hifuse_mm.datasets.splits`), written only after every check
  passed and never over an earlier split unless ``force``. ``OUT/source`` links to the untouched
  source unless SRC is OUT or lies inside it (paths in the lists then start there). Paths are
  relative to OUT (the configs' ``data_root``), so the output is byte-identical on any machine
  for the same source, protocol and seed.

:func:`~.check.check_prepared` (``--check OUT``) re-verifies a written folder.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from ...utils.classes_file import format_classes_file
from ...utils.file_hash import file_sha256
from ..splits import (CLASSES_TXT, META, SOURCE_LINK, SPLIT_JSON, SPLITS, DatasetError, Sample,
                      index_file, split_key)
from .imagecheck import MISSING, OK, duplicate_groups, inspect_images, split_leaks
from .plan import SplitPlan

FORMAT_VERSION = 1
# How many offending files an error message lists before "... and N more".
MAX_LISTED = 20


def _listing(items: Sequence[str], more_hint: str = '') -> str:
    shown = '\n'.join(f'  {item}' for item in items[:MAX_LISTED])
    if len(items) > MAX_LISTED:
        shown += f'\n  ... and {len(items) - MAX_LISTED} more{more_hint}'
    return shown


def image_root_for(src: Path, out: Path) -> str:
    """Where the source images are, seen from the output folder.

    ``''`` when SRC is OUT, the relative path when SRC lies inside OUT, otherwise
    :data:`SOURCE_LINK` (a symlink OUT/source -> SRC is created).
    """
    src_r, out_r = src.resolve(), out.resolve()
    if src_r == out_r:
        return ''
    try:
        return src_r.relative_to(out_r).as_posix()
    except ValueError:
        return SOURCE_LINK


def join_root(root: str, path: str) -> str:
    """``path`` below ``root`` (POSIX); ``path`` itself when ``root`` is empty."""
    return str(PurePosixPath(root) / path) if root else path


def _format_lines(samples: Iterable[Sample], image_root: str) -> str:
    lines = sorted(f'{join_root(image_root, s.path)} {s.label}' for s in samples)
    return ''.join(f'{line}\n' for line in lines)


def split_counts(samples: Sequence[Sample], classes: Sequence[str]) -> dict:
    """``{total, per_class: {class name: count}}`` of one split, as in ``split.json``."""
    per_class = Counter(s.label for s in samples)
    return dict(total=len(samples),
                per_class={name: per_class.get(i, 0) for i, name in enumerate(classes)})


def _validate_plan(plan: SplitPlan) -> None:
    """Structural checks of a plan (a bad source list shows up here as a clear error)."""
    problems = []
    for partition, splits in plan.partitions.items():
        if set(splits) != set(SPLITS):
            raise ValueError(f'partition {partition!r} must have splits {SPLITS}, '
                             f'got {sorted(splits)}')
        seen: Dict[str, str] = {}
        for split in SPLITS:
            samples = splits[split]
            if not samples:
                problems.append(f'split {split_key(partition, split)!r} is empty')
            for sample in samples:
                if '\n' in sample.path or '\r' in sample.path:
                    problems.append(f'file name with a line break: {sample.path!r}')
                if not 0 <= sample.label < len(plan.classes):
                    raise ValueError(f'label {sample.label} of {sample.path} out of range')
                where = split_key(partition, split)
                if sample.path in seen:
                    problems.append(f'{sample.path} is listed in both {seen[sample.path]} '
                                    f'and {where}')
                seen.setdefault(sample.path, where)
    if problems:
        raise DatasetError('The split is not valid:\n' + _listing(problems) +
                           '\nFix the source lists (or pick another protocol/ratio).')


def verify_images(root: Path, partitions: Mapping[str, Mapping[str, Sequence[Sample]]],
                  shown_root: str = '', workers: Optional[int] = None) -> List[str]:
    """Problems with the images of ``partitions`` (paths relative to ``root``).

    Missing files, undecodable images, and files with the same bytes in two splits of one
    partition. Returns human-readable problem paragraphs (empty: all good). Duplicates inside
    one split are harmless and only printed.
    """
    paths = sorted({s.path for splits in partitions.values()
                    for samples in splits.values() for s in samples})
    print(f'Checking {len(paths)} images (exists, decodes, duplicate bytes) ...', flush=True)
    status = inspect_images([root / p for p in paths], workers=workers)
    by_rel = {p: status[root / p] for p in paths}
    shown = {p: join_root(shown_root, p) for p in paths}
    problems = []
    missing = [shown[p] for p, s in by_rel.items() if s.state == MISSING]
    if missing:
        problems.append(f'{len(missing)} listed image(s) do not exist:\n' + _listing(missing))
    unreadable = [f'{shown[p]}: {s.detail}' for p, s in by_rel.items()
                  if s.state not in (OK, MISSING)]
    if unreadable:
        problems.append(f'{len(unreadable)} image(s) cannot be decoded:\n' +
                        _listing(unreadable))
    groups = duplicate_groups({p: s.sha256 for p, s in by_rel.items()})
    for partition, splits in sorted(partitions.items()):
        split_of = {s.path: split_key(partition, split)
                    for split, samples in splits.items() for s in samples}
        leaking, within = split_leaks(groups, split_of)
        if leaking:
            lines = [', '.join(f'{shown[p]} ({split_of[p]})' for p in group)
                     for group in leaking]
            problems.append(f'{len(leaking)} group(s) of identical images (same bytes) are in '
                            'different splits, which leaks test data into training:\n' +
                            _listing(lines) +
                            '\nRemove the duplicates from the source (keep one copy of each).')
        if within:
            where = f' of {partition}' if partition else ''
            print(f'Note: {len(within)} group(s) of identical images sit inside one split'
                  f'{where} (no leak), e.g. {", ".join(shown[p] for p in within[0])}')
    return problems


def _check_destination(out: Path, plan_files: Sequence[str], force: bool,
                       image_root: str, src: Path) -> List[Path]:
    """Refuse to overwrite an earlier split without ``force``; returns stale files to delete."""
    existing = [f for f in [SPLIT_JSON, CLASSES_TXT, *plan_files] if (out / f).exists()]
    if existing and not force:
        raise DatasetError(f'{out} already holds a prepared split ({", ".join(existing)}). '
                           'Pass --force to overwrite it, or choose another OUT folder.')
    link = out / SOURCE_LINK
    if image_root == SOURCE_LINK and (link.exists() or link.is_symlink()):
        if not link.is_symlink():
            raise DatasetError(f'{link} exists and is not a link; it would hold the link to '
                               'the source images. Move it away or choose another OUT folder.')
        if Path(os.readlink(link)) != src.resolve() and not force:
            raise DatasetError(f'{link} links to {os.readlink(link)}, not to {src.resolve()}. '
                               'Pass --force to re-point it.')
    stale = []
    if force and (out / SPLIT_JSON).is_file():
        try:
            old = json.loads((out / SPLIT_JSON).read_text())
            old_files = list(old.get('index_files', {}))
        except (ValueError, AttributeError):
            old_files = []
        for name in old_files:
            path = PurePosixPath(name)
            if (path.parts[:1] == (META, ) and path.suffix == '.txt'
                    and name not in plan_files and name != CLASSES_TXT):
                stale.append(out / name)
    return stale


def write_split(plan: SplitPlan, src: Path, out: Path, force: bool = False,
                workers: Optional[int] = None) -> dict:
    """Verify ``plan`` against the images under ``src`` and write the prepared folder ``out``.

    Nothing is written unless every check passes. Returns the ``split.json`` content.

    Raises:
        DatasetError: missing/unreadable/duplicate images, an empty split, an existing split
            without ``force``.
    """
    _validate_plan(plan)
    image_root = image_root_for(src, out)
    plan_files = [index_file(p, s) for p in sorted(plan.partitions) for s in SPLITS]
    stale = _check_destination(out, plan_files, force, image_root, src)

    shown = str(src) if image_root == SOURCE_LINK else image_root
    problems = verify_images(src, plan.partitions, shown_root=shown, workers=workers)
    if problems:
        raise DatasetError('\n'.join(problems) + '\nNothing was written.')

    contents = {CLASSES_TXT: format_classes_file(plan.classes)}
    counts = {}
    for partition in sorted(plan.partitions):
        for split in SPLITS:
            samples = plan.partitions[partition][split]
            contents[index_file(partition, split)] = _format_lines(samples, image_root)
            counts[split_key(partition, split)] = split_counts(samples, plan.classes)
    info = dict(
        format_version=FORMAT_VERSION,
        dataset=plan.dataset,
        protocol=plan.protocol,
        seed=plan.seed,
        options=plan.options,
        classes=list(plan.classes),
        image_root=image_root,
        counts=counts,
        source_files={name: file_sha256(path)
                      for name, path in sorted(plan.source_files.items())},
        index_files={name: hashlib.sha256(text.encode()).hexdigest()
                     for name, text in sorted(contents.items())},
    )

    out.mkdir(parents=True, exist_ok=True)
    if image_root == SOURCE_LINK:
        link = out / SOURCE_LINK
        if link.is_symlink():
            link.unlink()
        link.symlink_to(src.resolve(), target_is_directory=True)
    for path in stale:
        path.unlink(missing_ok=True)
    for name, text in contents.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    (out / SPLIT_JSON).write_text(json.dumps(info, indent=2) + '\n')
    return info
