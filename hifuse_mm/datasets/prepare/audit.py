"""Split audit of a prepared folder: does any image (or lesion / patient) leak across splits?

Reads ``DATA_DIR/meta/{train,val,test}.txt`` (:func:`hifuse_mm.datasets.splits.read_index`)
and ``meta/classes.txt`` and looks for three kinds of leak between two different splits:

* **exact duplicates** -- two listed files with the same bytes (SHA-256,
  :func:`hifuse_mm.utils.file_hash.file_sha256`);
* **near-duplicates** -- two images whose perceptual hashes differ in at most ``D`` bits
  (Hamming distance). The hash is ``imagehash.phash`` (the ``audit`` extra: ``pip install
  -e .[audit]``): the image in greyscale, resized to 32x32, 2-D DCT, the top-left 8x8
  coefficients compared with their median, 64 bits. Recompressing, resizing and brightening
  move few bits, but cropping moves many (5% per side: 13 of 64 bits on average on
  COVID19-CT, as far as unrelated CT slices), so every image is hashed at a ladder of centre
  crops (:data:`CROPS`: 0, 2.5, 5, 7.5 and 10% per side) and the distance of two images is
  the smallest over the 5x5 pairs of their hashes. The default ``D``
  (:data:`DEFAULT_HASH_DISTANCE`) is chosen by measurement on the real COVID19-CT images
  (tests/test_split_audit.py; numbers in docs/data_and_splits.md). A pair that is an exact
  duplicate is reported only as such;
* **group overlap** -- with a groups file (CSV: image, group id; e.g. HAM10000's
  ``image_id,lesion_id``), a group whose images lie in more than one split. Images of the
  lists the groups file does not name are listed (``groups.missing``).

It also prints the per-split per-class counts, lists unreadable (or missing) images instead
of stopping, and reports an empty split. Every pair of images in different splits that is an
exact or near duplicate is listed (and every overlapping group); the command line
(``tools/dataset_converters/audit_splits.py``) exits 1 when there is any, 0 otherwise, 2 on
bad input (no lists, bad groups file). The report is written atomically to
``DATA_DIR/meta/audit.json``.

Pairs are compared by brute force on the packed 64-bit hashes with numpy (XOR and bit count,
in row blocks, 25 hash pairs per image pair): ISIC2018's 10015 images take ~3.5 s on one core.
At most :data:`MAX_PAIRS` pairs of each kind are listed (all are counted), so a degenerate
folder (blank images: everything pairs) cannot exhaust memory.
"""
from __future__ import annotations

import csv
import itertools
import json
import posixpath
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import (Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set,
                    Tuple)

import numpy as np

from ...utils.atomic_files import atomic_write_text
from ...utils.classes_file import read_classes_file
from ...utils.file_hash import file_sha256
from ..splits import CLASSES_TXT, META, DatasetError, Sample, image_key, read_index, shown

SPLITS = ('train', 'val', 'test')
AUDIT_JSON = f'{META}/audit.json'
#: Largest Hamming distance (of 64 phash bits) at which two images count as near-duplicates.
DEFAULT_HASH_DISTANCE = 4
HASH_SIZE = 8
#: Centre crops (fraction cut from each side) each image is hashed at.
CROPS = (0.0, 0.025, 0.05, 0.075, 0.1)
#: At most this many cross-split pairs of each kind are listed (all are counted).
MAX_PAIRS = 100_000


def _imagehash():
    try:
        import imagehash
    except ImportError:
        raise DatasetError('the split audit needs the imagehash package: pip install -e '
                           '".[audit]" (or pip install imagehash)') from None
    return imagehash


@dataclass
class AuditImage:
    """One listed image: its split, list path, label, SHA-256 and packed phash (``None`` and a
    ``problem`` when it could not be read or decoded)."""
    split: str
    path: str
    label: int
    sha256: Optional[str] = None
    phash: Optional[Tuple[int, ...]] = None
    problem: str = ''

    def ref(self) -> Dict[str, str]:
        return {'split': self.split, 'path': self.path}


def _bits(hash_value) -> int:
    return int(''.join('1' if b else '0' for b in hash_value.hash.flatten()), 2)


def perceptual_hash(path: Path) -> Tuple[int, ...]:
    """``imagehash.phash`` of an image file at each centre crop of :data:`CROPS`, as 64-bit
    integers (raises on a bad image)."""
    imagehash = _imagehash()
    from PIL import Image
    with Image.open(path) as image:
        image.load()
        width, height = image.size
        hashes = []
        for fraction in CROPS:
            dx, dy = round(width * fraction), round(height * fraction)
            part = image.crop((dx, dy, width - dx, height - dy)) if fraction else image
            hashes.append(_bits(imagehash.phash(part, hash_size=HASH_SIZE)))
    return tuple(hashes)


def hash_image(root: Path, image: AuditImage) -> AuditImage:
    """Fill ``sha256`` and ``phash`` of ``image`` (or ``problem``); never raises on bad files."""
    file = root / image.path
    try:
        image.sha256 = file_sha256(file)
    except OSError as err:
        image.problem = f'cannot be read ({err.strerror or err})'
        return image
    try:
        image.phash = perceptual_hash(file)
    except DatasetError:
        raise
    except Exception as err:  # PIL raises many types for bad files (OSError, SyntaxError ...)
        image.problem = f'cannot be decoded ({type(err).__name__}: {err})'
    return image


def hamming_blocks(hashes: Sequence[Sequence[int]], max_distance: int, block: int = 512
                   ) -> Iterator[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``(i, j, distance)`` arrays, block by block, of every pair ``i < j`` whose hashes are at
    most ``max_distance`` bits apart. Each image has ``K`` 64-bit hashes; the distance of two
    images is the smallest Hamming distance over the ``K x K`` pairs of their hashes (brute
    force: XOR and bit count on uint64, rows in blocks against the columns after them)."""
    values = np.array([[h & 0xFFFFFFFFFFFFFFFF for h in row] for row in hashes],
                      dtype=np.uint64).reshape(len(hashes), -1)
    for start in range(0, len(values), block):
        rows, cols = values[start:start + block], values[start:]
        distance = np.full((len(rows), len(cols)), 255, dtype=np.uint8)
        for a in range(values.shape[1]):
            for b in range(values.shape[1]):
                np.minimum(distance, np.bitwise_count(rows[:, a, None] ^ cols[None, :, b]),
                           out=distance)
        i, j = np.nonzero(distance <= max_distance)
        keep = j > i
        i, j = i[keep], j[keep]
        yield i + start, j + start, distance[i, j].astype(np.int64)


def hamming_pairs(hashes: Sequence[Sequence[int]], max_distance: int,
                  block: int = 512) -> List[Tuple[int, int, int]]:
    """All pairs of :func:`hamming_blocks` as sorted ``(i, j, distance)`` tuples."""
    pairs = []
    for i, j, d in hamming_blocks(hashes, max_distance, block):
        pairs.extend(zip(i.tolist(), j.tolist(), d.tolist()))
    return sorted(pairs)


def read_groups(path: Path) -> Dict[str, str]:
    """A groups CSV as ``{image: group}``: two columns (image path or name, group id); a first
    row whose columns are named ``image``/``image_id``/``path`` and ``group``/``lesion_id``/
    ``patient_id`` is a header (other columns are ignored)."""
    try:
        text = Path(path).read_text(encoding='utf-8-sig')
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f'{path}: groups file cannot be read ({err})') from None
    rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    if not rows:
        raise DatasetError(f'{path}: groups file is empty')
    image_col, group_col = 0, 1
    header = [c.strip().lower() for c in rows[0]]
    image_names = [n for n in ('image', 'image_id', 'path', 'file') if n in header]
    group_names = [n for n in ('group', 'lesion_id', 'patient_id', 'patient', 'lesion')
                   if n in header]
    if image_names and group_names:
        image_col, group_col = header.index(image_names[0]), header.index(group_names[0])
        rows = rows[1:]
    groups = {}
    for number, row in enumerate(rows, 1):
        if len(row) <= max(image_col, group_col):
            raise DatasetError(f'{path}: row {number} has {len(row)} column(s); expected '
                               '"image,group"')
        groups[row[image_col].strip()] = row[group_col].strip()
    return groups


def _group_of(path: str, groups: Mapping[str, str]) -> Optional[str]:
    """The group of a list path: by the full path, else the file name, else its stem."""
    key = image_key(path)
    name = posixpath.basename(key)
    for candidate in (path, key, name, posixpath.splitext(name)[0]):
        if candidate in groups:
            return groups[candidate]
    return None


def audit_file(partition: str = '') -> str:
    """Where the audit of a partition's lists is written, relative to the prepared folder:
    ``meta/audit.json`` for ``meta/{train,val,test}.txt``, ``meta/<partition>/audit.json``
    for ``meta/<partition>/{train,val,test}.txt`` (e.g. Kvasir's folds)."""
    return f'{META}/{partition}/audit.json' if partition else AUDIT_JSON


def audit_split(data_dir, groups_file=None, hash_distance: int = DEFAULT_HASH_DISTANCE,
                workers: int = 1, max_pairs: int = MAX_PAIRS, partition: str = '',
                hash_cache: Optional[Dict[str, AuditImage]] = None) -> dict:
    """Audit a prepared folder; returns the report (what ``meta/audit.json`` holds).

    Keys: ``splits`` (per split: ``count``, ``per_class``, ``empty``), ``unreadable``,
    ``exact_duplicates`` / ``near_duplicates`` (cross-split pairs: ``a``, ``b`` and, for near
    ones, ``distance``), ``within_split`` (counts of the same kinds inside one split, not
    leaks), ``groups`` (``file``, ``missing``, ``overlap``), ``cross_split_pairs`` (the full
    count) and ``ok``. At most ``max_pairs`` pairs of each kind are listed (``pairs_truncated``
    says when more were counted: a degenerate folder, e.g. blank images, pairs everything).

    ``partition`` audits ``meta/<partition>/{train,val,test}.txt`` instead of the top-level
    lists. ``hash_cache`` (a dict, filled here) lets several audits of one folder hash every
    image once.
    """
    root = Path(data_dir)
    if hash_distance < 0 or hash_distance > 64:
        raise DatasetError(f'--hash-distance {hash_distance}: must be within 0..64')
    _imagehash()
    classes: Tuple[str, ...] = ()
    if (root / CLASSES_TXT).is_file():
        classes = tuple(read_classes_file(root / CLASSES_TXT))
    lists: Dict[str, List[Sample]] = {}
    list_dir = root / META / partition if partition else root / META
    for split in SPLITS:
        file = list_dir / f'{split}.txt'
        if file.is_file():
            lists[split] = read_index(file)
    if not lists:
        where = f'{META}/{partition}/' if partition else f'{META}/'
        raise DatasetError(f'{root}: no split lists ({where}train.txt, {where}val.txt, '
                           f'{where}test.txt); is this a prepared folder?')
    images = [AuditImage(split, s.path, s.label) for split, samples in lists.items()
              for s in samples]
    cache = {} if hash_cache is None else hash_cache
    todo = [im for im in images if im.path not in cache]
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda im: hash_image(root, im), todo))
    else:
        for image in todo:
            hash_image(root, image)
    for image in todo:
        cache.setdefault(image.path, image)
    for image in images:
        known = cache[image.path]
        image.sha256, image.phash, image.problem = known.sha256, known.phash, known.problem

    def label_name(label: int) -> str:
        return classes[label] if 0 <= label < len(classes) else str(label)

    report: dict = {'data_dir': str(root), 'partition': partition, 'hash': {
        'method': 'imagehash.phash', 'bits': HASH_SIZE * HASH_SIZE, 'crops': list(CROPS),
        'distance': hash_distance}}
    report['splits'] = {}
    for split in SPLITS:
        if split not in lists:
            report['splits'][split] = {'count': 0, 'per_class': {}, 'empty': True,
                                       'missing_list': True}
            continue
        counts = Counter(label_name(s.label) for s in lists[split])
        report['splits'][split] = {'count': len(lists[split]), 'per_class': dict(
            sorted(counts.items())), 'empty': not lists[split]}
    report['unreadable'] = [dict(im.ref(), reason=im.problem) for im in images if im.problem]

    # exact duplicates (counted in full; pairs listed up to max_pairs)
    by_sha: Dict[str, List[AuditImage]] = defaultdict(list)
    for image in images:
        if image.sha256:
            by_sha[image.sha256].append(image)
    exact: List[dict] = []
    cross_exact = within_exact = 0
    for sha, same in sorted(by_sha.items()):
        per_split = Counter(im.split for im in same)
        within = sum(c * (c - 1) // 2 for c in per_split.values())
        within_exact += within
        cross_exact += len(same) * (len(same) - 1) // 2 - within
        in_split: Dict[str, List[AuditImage]] = defaultdict(list)
        for image in same:
            in_split[image.split].append(image)
        for first, second in itertools.combinations([s for s in SPLITS if s in in_split], 2):
            for a, b in itertools.product(in_split[first], in_split[second]):
                if len(exact) >= max_pairs:
                    break
                exact.append({'a': a.ref(), 'b': b.ref(), 'sha256': sha})
    # near duplicates (exact ones excluded)
    hashed = [im for im in images if im.phash is not None]
    split_of = np.array([SPLITS.index(im.split) for im in hashed], dtype=np.int64)
    sha_ids: Dict[str, int] = {}
    sha_of = np.array([sha_ids.setdefault(im.sha256 or '', len(sha_ids)) for im in hashed],
                      dtype=np.int64)
    near: List[dict] = []
    cross_near = within_near = 0
    for i, j, distance in hamming_blocks([im.phash for im in hashed], hash_distance):
        keep = sha_of[i] != sha_of[j]
        i, j, distance = i[keep], j[keep], distance[keep]
        cross = split_of[i] != split_of[j]
        within_near += int(np.count_nonzero(~cross))
        cross_near += int(np.count_nonzero(cross))
        for a, b, d in zip(i[cross].tolist(), j[cross].tolist(), distance[cross].tolist()):
            if len(near) >= max_pairs:
                break
            near.append({'a': hashed[a].ref(), 'b': hashed[b].ref(), 'distance': d})
    near.sort(key=lambda p: (p['distance'], p['a']['path'], p['b']['path']))
    report['exact_duplicates'] = exact
    report['near_duplicates'] = near
    report['within_split'] = {'exact_duplicate_pairs': within_exact,
                              'near_duplicate_pairs': within_near}
    # groups
    group_report: dict = {'file': None, 'missing': [], 'overlap': []}
    if groups_file is not None:
        groups = read_groups(Path(groups_file))
        group_report['file'] = str(groups_file)
        members: Dict[str, List[AuditImage]] = defaultdict(list)
        for image in images:
            group = _group_of(image.path, groups)
            if group is None:
                group_report['missing'].append(image.ref())
            else:
                members[group].append(image)
        for group, ims in sorted(members.items()):
            splits = sorted({im.split for im in ims}, key=SPLITS.index)
            if len(splits) > 1:
                group_report['overlap'].append({'group': group, 'splits': splits,
                                                'images': [im.ref() for im in ims]})
    report['groups'] = group_report
    report['cross_split_pairs'] = cross_exact + cross_near
    report['pairs_listed_limit'] = max_pairs
    report['pairs_truncated'] = len(exact) + len(near) < cross_exact + cross_near
    report['ok'] = not cross_exact and not cross_near and not group_report['overlap']
    return report


def write_report(data_dir, report: dict) -> Path:
    """Write ``report`` to its :func:`audit_file` (``DATA_DIR/meta/audit.json`` for the
    top-level lists) atomically; returns the path."""
    path = Path(data_dir) / audit_file(report.get('partition', ''))
    atomic_write_text(path, json.dumps(report, indent=2, sort_keys=False) + '\n')
    return path


def leak_keys(report: dict) -> Set[Tuple[str, ...]]:
    """What a report found, as comparable keys: every cross-split exact / near pair and every
    group in more than one split (two audits of the same images and lists give equal sets)."""
    keys: Set[Tuple[str, ...]] = set()
    for kind in ('exact_duplicates', 'near_duplicates'):
        for pair in report.get(kind, []):
            ends = sorted([(pair['a']['split'], pair['a']['path']),
                           (pair['b']['split'], pair['b']['path'])])
            keys.add((kind, *ends[0], *ends[1]))
    for item in report.get('groups', {}).get('overlap', []):
        keys.add(('group', item['group'], *item['splits']))
    return keys


def summary_lines(report: dict, limit: int = 10) -> List[str]:
    """A short form of :func:`format_report` for the converters: the verdict, the counts and at
    most ``limit`` of the listed pairs / groups / unreadable images (the rest is in the file)."""
    lines = list(format_report(report))
    verdict, details = lines[-1], [line for line in lines[:-1] if line.startswith(
        ('EXACT', 'NEAR', 'GROUP', 'UNREADABLE', 'WARNING'))]
    shown_lines = details[:limit]
    if len(details) > limit:
        shown_lines.append(f'... and {len(details) - limit} more in '
                           f'{audit_file(report.get("partition", ""))}')
    return [verdict, *shown_lines]


def format_report(report: dict) -> Iterable[str]:
    """Human-readable lines of a report (every cross-split pair and overlapping group)."""
    for split, info in report['splits'].items():
        if info.get('missing_list'):
            yield f'{split}: no list (meta/{split}.txt missing)'
            continue
        classes = ', '.join(f'{k} {v}' for k, v in info['per_class'].items())
        yield f'{split}: {info["count"]} images' + (f' ({classes})' if classes else '')
        if info['empty']:
            yield f'WARNING: split {split} is empty'
    for bad in report['unreadable']:
        yield f'UNREADABLE {bad["split"]}/{shown(bad["path"])}: {bad["reason"]}'
    for pair in report['exact_duplicates']:
        yield (f'EXACT DUPLICATE {pair["a"]["split"]}:{shown(pair["a"]["path"])} == '
               f'{pair["b"]["split"]}:{shown(pair["b"]["path"])}')
    for pair in report['near_duplicates']:
        yield (f'NEAR DUPLICATE (distance {pair["distance"]}) {pair["a"]["split"]}:'
               f'{shown(pair["a"]["path"])} ~ {pair["b"]["split"]}:{shown(pair["b"]["path"])}')
    groups = report['groups']
    if groups['file']:
        if groups['missing']:
            yield (f'WARNING: {len(groups["missing"])} image(s) not in the groups file '
                   f'{groups["file"]}:')
            for ref in groups['missing']:
                yield f'  {ref["split"]}/{shown(ref["path"])}'
        for item in groups['overlap']:
            yield (f'GROUP OVERLAP {shown(item["group"])} in {", ".join(item["splits"])}: '
                   + ', '.join(f'{r["split"]}:{shown(r["path"])}' for r in item['images']))
    within = report['within_split']
    yield (f'within one split (not leaks): {within["exact_duplicate_pairs"]} exact and '
           f'{within["near_duplicate_pairs"]} near-duplicate pair(s)')
    if report.get('pairs_truncated'):
        yield (f'(only the first {report["pairs_listed_limit"]} pairs of each kind are listed; '
               f'{report["cross_split_pairs"]} in all)')
    overlap = len(groups['overlap'])
    yield (f'{"OK" if report["ok"] else "LEAK"}: {report["cross_split_pairs"]} cross-split '
           f'pair(s) at hash distance <= {report["hash"]["distance"]}'
           + (f', {overlap} group(s) in more than one split' if groups['file'] else ''))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``audit_splits.py DATA_DIR [--groups FILE] [--hash-distance D]``; exit 1 on a leak."""
    import argparse
    import sys
    parser = argparse.ArgumentParser(
        description='Audit a prepared folder for images (exact or near-duplicate) and groups '
        'shared across train/val/test; writes DATA_DIR/meta/audit.json. Exit 1 when any '
        'cross-split pair or group is found, 2 on bad input.')
    parser.add_argument('data_dir', help='prepared folder (meta/{train,val,test}.txt)')
    parser.add_argument('--groups', help='CSV: image path or name, group (lesion/patient) id')
    parser.add_argument('--hash-distance', type=int, default=DEFAULT_HASH_DISTANCE,
                        help='largest phash Hamming distance (of 64 bits) that counts as a '
                        f'near-duplicate (default {DEFAULT_HASH_DISTANCE})')
    parser.add_argument('--workers', type=int, default=4, help='threads hashing the images')
    parser.add_argument('--no-write', action='store_true', help='do not write meta/audit.json')
    args = parser.parse_args(argv)
    try:
        report = audit_split(args.data_dir, args.groups, args.hash_distance, args.workers)
    except DatasetError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    for line in format_report(report):
        print(line)
    if not args.no_write:
        try:
            print(f'report: {write_report(args.data_dir, report)}')
        except OSError as err:
            print(f'error: cannot write {AUDIT_JSON}: {err}', file=sys.stderr)
            return 2
    return 0 if report['ok'] else 1
