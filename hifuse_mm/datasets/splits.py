"""Prepared split folders: the layout, writing one from a :class:`SplitPlan`, and re-checking it.

The three dataset converters (``tools/dataset_converters/prepare_*.py``) only read their
official layout and decide which image goes where (a :class:`SplitPlan`); everything else is
here, once:

* checks before anything is written: every listed image exists and decodes, no image is listed
  twice, no split is empty, and no two files with the same bytes sit in different splits
  (:mod:`hifuse_mm.datasets.imagecheck`);
* the output, written only after every check passed and never over an earlier split unless
  ``force``::

      OUT/meta/{train,val,test}.txt        "relative/path label" per line, sorted by path
      OUT/meta/<fold>/{train,val,test}.txt the same per fold (Kvasir's fold1, fold2)
      OUT/meta/classes.txt                 class names in label order
      OUT/meta/split.json                  protocol, seed, options, per-class counts per split,
                                           SHA-256 of the source index files and of the files
                                           above
      OUT/source -> SRC                    a link to the untouched source (unless SRC is OUT or
                                           lies inside it; paths in the lists then start there)

  Paths are relative to OUT (the configs' ``data_root``), so the output is byte-identical on
  any machine for the same source, protocol and seed;
* :func:`check_prepared` (``--check OUT``) re-verifies a prepared folder.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..utils.file_hash import file_sha256
from .imagecheck import MISSING, OK, duplicate_groups, inspect_images, split_leaks

SPLITS: Tuple[str, ...] = ('train', 'val', 'test')
SOURCE_LINK = 'source'
META = 'meta'
SPLIT_JSON = f'{META}/split.json'
CLASSES_TXT = f'{META}/classes.txt'
FORMAT_VERSION = 1
# How many offending files an error message lists before "... and N more".
MAX_LISTED = 20


class DatasetError(Exception):
    """Bad input or a bad prepared folder; the message names the file and what to do."""


@dataclass(frozen=True)
class Sample:
    """One image of a plan: ``path`` relative to the source root (POSIX), class ``label``."""
    path: str
    label: int


@dataclass
class SplitPlan:
    """Which image goes to which split: made by a dataset module, written by :func:`write_split`.

    Attributes:
        dataset: Dataset name (``'isic2018'``, ...), recorded in ``split.json``.
        protocol: Protocol name (``'hemf'``, ``'official'``, ...).
        seed: The shuffling seed (``None`` when the protocol does not shuffle).
        classes: Class names in label order.
        partitions: ``{partition: {split: samples}}``. Partition ``''`` is written to
            ``meta/<split>.txt``, any other (``'fold1'``) to ``meta/<partition>/<split>.txt``.
            A partition must have all of :data:`SPLITS`.
        source_files: Source index files to checksum, ``{name: path}`` (name relative to the
            source root where possible).
        options: Protocol settings to record (ratios, grouping, ...).
        notes: Things the user should know (printed, not errors).
    """
    dataset: str
    protocol: str
    seed: Optional[int]
    classes: Tuple[str, ...]
    partitions: Dict[str, Dict[str, List[Sample]]]
    source_files: Dict[str, Path] = field(default_factory=dict)
    options: Dict[str, object] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


def index_file(partition: str, split: str) -> str:
    """Path of a split list relative to the prepared folder."""
    return f'{META}/{partition}/{split}.txt' if partition else f'{META}/{split}.txt'


def split_key(partition: str, split: str) -> str:
    """Name of a split in ``split.json`` (``'train'`` or ``'fold1/train'``)."""
    return f'{partition}/{split}' if partition else split


def _listing(items: Sequence[str], more_hint: str = '') -> str:
    shown = '\n'.join(f'  {item}' for item in items[:MAX_LISTED])
    if len(items) > MAX_LISTED:
        shown += f'\n  ... and {len(items) - MAX_LISTED} more{more_hint}'
    return shown


# ---------------------------------------------------------------------------------------------
# Planning helper shared by the dataset modules
# ---------------------------------------------------------------------------------------------
#: ``rule(unit_ids, class_name) -> {split: unit_ids}``
SplitRule = Callable[[List[str], str], Dict[str, List[str]]]


def assign_units(units: Mapping[str, Mapping[str, Sequence[Sample]]],
                 classes: Sequence[str],
                 rule: SplitRule) -> Dict[str, List[Sample]]:
    """Split every class's units with ``rule`` and expand the units into their images.

    Args:
        units: ``{class name: {unit id: images of that unit}}``; a unit (an image or a lesion)
            always lands in one split as a whole.
        classes: Class names in the order the rule is applied.
        rule: ``rule(unit_ids, class_name) -> {split: unit_ids}``.
    Returns:
        ``{split: samples}`` for every split the rule produced.
    """
    result: Dict[str, List[Sample]] = {}
    for name in classes:
        by_unit = units.get(name, {})
        for split, ids in rule(list(by_unit), name).items():
            bucket = result.setdefault(split, [])
            for unit in ids:
                bucket.extend(by_unit[unit])
    return result


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------
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


def _join(root: str, path: str) -> str:
    return str(PurePosixPath(root) / path) if root else path


def _format_lines(samples: Iterable[Sample], image_root: str) -> str:
    lines = sorted(f'{_join(image_root, s.path)} {s.label}' for s in samples)
    return ''.join(f'{line}\n' for line in lines)


def _counts(samples: Sequence[Sample], classes: Sequence[str]) -> dict:
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
    shown = {p: _join(shown_root, p) for p in paths}
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

    contents = {CLASSES_TXT: ''.join(f'{name}\n' for name in plan.classes)}
    counts = {}
    for partition in sorted(plan.partitions):
        for split in SPLITS:
            samples = plan.partitions[partition][split]
            contents[index_file(partition, split)] = _format_lines(samples, image_root)
            counts[split_key(partition, split)] = _counts(samples, plan.classes)
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


# ---------------------------------------------------------------------------------------------
# Reading and checking
# ---------------------------------------------------------------------------------------------
def read_index(path: Path, num_classes: Optional[int] = None) -> List[Sample]:
    """Parse a ``relative/path label`` list; errors name the file and line."""
    samples = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        name, _, label = line.rstrip().rpartition(' ')
        if not name or not label.lstrip('-').isdigit():
            raise DatasetError(f'{path}:{number}: expected "relative/path label", '
                               f'got {line!r}')
        value = int(label)
        if num_classes is not None and not 0 <= value < num_classes:
            raise DatasetError(f'{path}:{number}: label {value} is not in 0..{num_classes - 1}'
                               f' ({num_classes} classes in {CLASSES_TXT})')
        samples.append(Sample(name, value))
    return samples


def _partition_of(name: str) -> Optional[Tuple[str, str]]:
    """``('fold1', 'train')`` for ``meta/fold1/train.txt``; None for non-split files."""
    parts = PurePosixPath(name).parts
    if parts[0] != META or not name.endswith('.txt'):
        return None
    split = PurePosixPath(parts[-1]).stem
    if split not in SPLITS:
        return None
    return ('/'.join(parts[1:-1]), split)


def check_prepared(out: Path, workers: Optional[int] = None) -> List[str]:
    """Re-verify a prepared folder; returns the problems found (empty: it is intact).

    Checks that ``meta/split.json`` exists, that every index file still has the checksum
    recorded there, that the lists agree with ``meta/classes.txt`` and the recorded per-class
    counts, that every image exists and decodes, that no identical images sit in different
    splits, and (when the source is reachable) that the source index files are unchanged.
    """
    info_path = out / SPLIT_JSON
    if not info_path.is_file():
        raise DatasetError(f'{info_path} not found: {out} is not a folder prepared by '
                           'tools/dataset_converters/prepare_*.py')
    try:
        info = json.loads(info_path.read_text())
        classes = info['classes']
        index_files = info['index_files']
        counts = info['counts']
    except (ValueError, KeyError, TypeError) as err:
        raise DatasetError(f'{info_path} is not a valid split.json ({err}); '
                           're-run the converter with --force') from err

    problems = []
    for name, digest in sorted(index_files.items()):
        path = out / name
        if not path.is_file():
            problems.append(f'{path} is missing (listed in {SPLIT_JSON})')
        elif file_sha256(path) != digest:
            problems.append(f'{path} was changed after it was prepared (its SHA-256 differs '
                            f'from {SPLIT_JSON}); re-run the converter with --force')
    if (out / CLASSES_TXT).is_file():
        listed = [x.strip() for x in (out / CLASSES_TXT).read_text().splitlines() if x.strip()]
        if listed != list(classes):
            problems.append(f'{out / CLASSES_TXT} lists {listed}, split.json {classes}')

    partitions: Dict[str, Dict[str, List[Sample]]] = {}
    for name in sorted(index_files):
        where = _partition_of(name)
        if where is None or not (out / name).is_file():
            continue
        try:
            samples = read_index(out / name, len(classes))
        except DatasetError as err:
            problems.append(str(err))
            continue
        partitions.setdefault(where[0], {})[where[1]] = samples
        key = split_key(*where)
        if key in counts and _counts(samples, classes) != counts[key]:
            problems.append(f'{out / name}: per-class counts differ from {SPLIT_JSON}')
    problems += verify_images(out, partitions, shown_root=str(out), workers=workers)

    root = out / info.get('image_root', '')
    for name, digest in sorted(info.get('source_files', {}).items()):
        path = root / name
        if not path.is_file():
            print(f'Note: source file {path} not reachable; its checksum was not re-checked')
        elif file_sha256(path) != digest:
            problems.append(f'{path} changed since the split was prepared (SHA-256 differs '
                            f'from {SPLIT_JSON}): re-run the converter with --force')
    return problems


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
