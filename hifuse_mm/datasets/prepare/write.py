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
  for the same source, protocol and seed. File names must be UTF-8 (the lists are UTF-8
  text): others are refused before anything is checked or written.
* images outside SRC (a ``..`` or absolute name in a source list, a symlink leading out of
  SRC) are refused up front unless ``allow_outside_root`` (``--allow-outside-root``), as the
  datasets refuse them unless ``allow_outside_root=True``.
* the new ``meta/`` is built beside the old one (``OUT/.prepare-meta.new``, ``split.json``
  last, every file synced) and swapped in with one rename (``renameat2(RENAME_EXCHANGE)`` on
  Linux; elsewhere two renames, the old folder kept as ``OUT/.prepare-meta.old`` until the new
  one is in place). Files of the old ``meta/`` that the converter does not write are carried
  over. An interrupted run therefore leaves the old split as it was; the next run removes its
  leftovers (and puts ``.prepare-meta.old`` back should the run have stopped between the two
  renames).

:func:`~.check.check_prepared` (``--check OUT``) re-verifies a written folder.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import json
import os
import shutil
import sys
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Set

from ...utils.atomic_files import fsync_folder
from ...utils.classes_file import format_classes_file
from ...utils.file_hash import file_sha256
from ..splits import (CLASSES_TXT, META, META_BACKUP, META_STAGING, SOURCE_LINK, SPLIT_JSON,
                      SPLITS, DatasetError, Sample, index_file, is_within, outside_reason,
                      split_key)
from ..splits import shown as shown_name
from .audit import audit_file
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
                       image_root: str, src: Path) -> List[str]:
    """Refuse to overwrite an earlier split without ``force``; returns the stale files (names
    relative to ``out``) not to carry over."""
    if (out / META).exists() and not (out / META).is_dir():
        raise DatasetError(f'{out / META} exists and is not a folder; it would hold the split '
                           'lists. Move it away or choose another OUT folder.')
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
                stale.append(name)
    return stale


def _not_utf8(plan: SplitPlan, image_root: str) -> List[str]:
    """The listed file names that are not UTF-8 (they cannot be written to a UTF-8 list)."""
    bad = set()
    for splits in plan.partitions.values():
        for samples in splits.values():
            for sample in samples:
                name = join_root(image_root, sample.path)
                try:
                    name.encode('utf-8')
                except UnicodeEncodeError:
                    bad.add(name)
    return sorted(bad)


def _outside_source(plan: SplitPlan, src: Path) -> List[str]:
    """Listed images that leave SRC (``..``, absolute, a symlink leading outside it): the
    datasets refuse them unless told otherwise, so the converter does too."""
    root = [os.path.realpath(src)]
    real_dirs: Dict[str, str] = {}
    bad = set()
    for splits in plan.partitions.values():
        for samples in splits.values():
            for sample in samples:
                reason = outside_reason(sample.path)
                if not reason:
                    folder, name = os.path.split(os.path.join(src, sample.path))
                    if folder not in real_dirs:
                        real_dirs[folder] = os.path.realpath(folder)
                    real = os.path.join(real_dirs[folder], name)
                    if os.path.islink(real):
                        real = os.path.realpath(real)
                    if not is_within(real, root):
                        reason = 'a symlink that leads outside SRC'
                if reason:
                    bad.add(f'{shown_name(sample.path)}: {reason}')
    return sorted(bad)


def _recover(out: Path) -> None:
    """Clean up after an interrupted earlier run (see the module docstring)."""
    meta, staging, backup = out / META, out / META_STAGING, out / META_BACKUP
    if backup.is_dir() and not backup.is_symlink() and not meta.exists():
        os.rename(backup, meta)
        print(f'Note: an interrupted earlier run had left the previous split in {backup}; '
              f'it is back in {meta}')
    for leftover in (staging, backup):
        _remove(leftover)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _write_synced(path: Path, data: bytes) -> None:
    """Write ``path`` and flush it to the disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'wb') as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def _carry_over(meta: Path, staging: Path, managed: Set[str]) -> None:
    """Copy (hard link where possible) what the old ``meta/`` holds besides ``managed``."""
    if not meta.is_dir():
        return
    for folder, dirs, files in os.walk(meta):
        rel_folder = Path(folder).relative_to(meta)
        for name in dirs:
            target = staging / rel_folder / name
            if (Path(folder) / name).is_symlink():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(os.readlink(Path(folder) / name))
            else:
                target.mkdir(parents=True, exist_ok=True)
        for name in files:
            source = Path(folder) / name
            rel = (Path(META) / rel_folder / name).as_posix()
            if rel in managed:
                continue
            target = staging / rel_folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                target.symlink_to(os.readlink(source))
                continue
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False: unsupported."""
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second),
                 rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(first))


def _swap_in(out: Path, staging: Path) -> None:
    """Make ``staging`` the new ``OUT/meta`` (see the module docstring)."""
    meta, backup = out / META, out / META_BACKUP
    if not (meta.exists() or meta.is_symlink()):
        os.rename(staging, meta)
    elif _exchange(staging, meta):
        fsync_folder(out)
        shutil.rmtree(staging, ignore_errors=True)  # now the old split (else: the next run)
    else:
        os.rename(meta, backup)
        try:
            os.rename(staging, meta)
        except BaseException:
            os.rename(backup, meta)
            raise
        fsync_folder(out)
        shutil.rmtree(backup, ignore_errors=True)
    fsync_folder(out)


def _point_source_link(out: Path, src: Path) -> None:
    """``OUT/source -> SRC``, replaced in one rename when it exists."""
    link, temporary = out / SOURCE_LINK, out / f'.{SOURCE_LINK}.new'
    _remove(temporary)
    temporary.symlink_to(src.resolve(), target_is_directory=True)
    os.replace(temporary, link)


def write_split(plan: SplitPlan, src: Path, out: Path, force: bool = False,
                workers: Optional[int] = None, allow_outside_root: bool = False) -> dict:
    """Verify ``plan`` against the images under ``src`` and write the prepared folder ``out``.

    Nothing is written unless every check passes. Returns the ``split.json`` content.

    Raises:
        DatasetError: missing/unreadable/duplicate images, an empty split, an existing split
            without ``force``, file names that are not UTF-8, images outside ``src`` (``..``,
            absolute, symlinks leading outside it) unless ``allow_outside_root``.
    """
    _validate_plan(plan)
    image_root = image_root_for(src, out)
    not_utf8 = _not_utf8(plan, image_root)
    if not_utf8:
        raise DatasetError(
            f'{len(not_utf8)} file name(s) are not valid UTF-8 and cannot be listed (split lists '
            'are UTF-8 text):\n' + _listing([shown_name(name) for name in not_utf8]) +
            '\nRename them to UTF-8 (e.g. `convmv -f latin1 -t utf8 -r --notest SRC`) and run the '
            'converter again. Nothing was written.')
    outside = [] if allow_outside_root else _outside_source(plan, src)
    if outside:
        raise DatasetError(
            f'{len(outside)} listed image(s) lie outside {src}:\n' + _listing(outside) +
            '\nThe datasets refuse list entries that leave the dataset folder. Copy the images '
            'into SRC (or fix the source lists); if you trust these links, pass '
            '--allow-outside-root here and allow_outside_root=True to the datasets. Nothing was '
            'written.')
    if out.is_dir():
        _recover(out)
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
    staging = out / META_STAGING
    _remove(staging)
    staging.mkdir()
    try:
        for name, text in contents.items():
            _write_synced(staging / Path(name).relative_to(META), text.encode())
        # an audit of the old lists would not describe the new ones: never carried over
        audits = {audit_file(partition) for partition in plan.partitions}
        _carry_over(out / META, staging, {*contents, SPLIT_JSON, *stale, *audits})
        _write_synced(staging / Path(SPLIT_JSON).relative_to(META),
                      (json.dumps(info, indent=2) + '\n').encode())
        fsync_folder(staging)
        _swap_in(out, staging)
    except BaseException:
        _remove(staging)
        raise
    if image_root == SOURCE_LINK:
        try:
            _point_source_link(out, src)
        except OSError as err:
            raise DatasetError(f'The new split is in {out / META}, but {out / SOURCE_LINK} could '
                               f'not be pointed to {src.resolve()} ({err.strerror or err}); fix '
                               'that and run the converter again with --force.') from None
    return info
