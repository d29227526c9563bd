"""The prepared folder layout, and reading its lists (what the runtime datasets need).

A prepared folder (written by ``tools/dataset_converters/prepare_*.py``, see
:mod:`hifuse_mm.datasets.prepare`, or by the demo generator)::

    OUT/meta/{train,val,test}.txt        "relative/path label" per line, sorted by path
    OUT/meta/<fold>/{train,val,test}.txt the same per fold (Kvasir's fold1, fold2)
    OUT/meta/classes.txt                 class names in label order
    OUT/meta/split.json                  protocol, seed, options, per-class counts per split,
                                         SHA-256 of the source index files and of the files
                                         above (converters only)
    OUT/source -> SRC                    a link to the untouched source (converters only)

Paths in the lists are relative to OUT (the configs' ``data_root``). A list is UTF-8 text
(a UTF-8 byte-order mark is allowed); it is read strictly: a line that is not UTF-8, holds a
NUL byte or is longer than :data:`MAX_LINE_BYTES` stops the reading with the file and line,
and a label is ASCII digits only. File names that are not UTF-8 cannot be listed (the
converters refuse them before writing anything). Error messages name the file and the line,
never the line's text.
"""
from __future__ import annotations

import codecs
import json
import os
import posixpath
import re
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path, PurePosixPath
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ..utils.classes_file import read_classes_file
from ..utils.file_hash import file_sha256
from ..utils.file_names import printable_name

SPLITS: Tuple[str, ...] = ('train', 'val', 'test')
SOURCE_LINK = 'source'
META = 'meta'
SPLIT_JSON = f'{META}/split.json'
CLASSES_TXT = f'{META}/classes.txt'
#: Where a converter builds the new ``meta/``, and where the old one waits while it is swapped in.
META_STAGING = '.prepare-meta.new'
META_BACKUP = '.prepare-meta.old'
#: Longest line (bytes) a split list may have; file names are far shorter (PATH_MAX 4096).
MAX_LINE_BYTES = 8192
#: Largest ``split.json`` read (it is a few KB).
MAX_SPLIT_JSON_BYTES = 16 << 20
_LABEL = re.compile(r'-?[0-9]+')


class DatasetError(Exception):
    """Bad input or a bad prepared folder; the message names the file and what to do."""


@dataclass(frozen=True)
class Sample:
    """One image of a split: ``path`` relative to the source root (POSIX), class ``label``;
    ``line``: its line number in the list it was read from (0: not read from a list; not part
    of equality)."""
    path: str
    label: int
    line: int = field(default=0, compare=False, repr=False)


def shown(text: str, limit: int = 160) -> str:
    """``text`` (a file name) as safe to print on one line: bytes that are not UTF-8 as
    ``\\xNN`` (:func:`~hifuse_mm.utils.file_names.printable_name`), control characters
    escaped, cut to ``limit`` characters."""
    text = printable_name(text)
    if not text.isprintable():
        text = ''.join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit] + '...'


def index_file(partition: str, split: str) -> str:
    """Path of a split list relative to the prepared folder."""
    return f'{META}/{partition}/{split}.txt' if partition else f'{META}/{split}.txt'


def split_key(partition: str, split: str) -> str:
    """Name of a split in ``split.json`` (``'train'`` or ``'fold1/train'``)."""
    return f'{partition}/{split}' if partition else split


def _lines(path: Path) -> Iterator[Tuple[int, str]]:
    """``(number, text)`` of every line of a UTF-8 list, read strictly (see the module)."""
    try:
        stream = open(path, 'rb')
    except OSError as err:
        raise DatasetError(f'{path}: cannot be read ({err.strerror or err})') from None
    with stream:
        number = 0
        while True:
            raw = stream.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            number += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b'\n'):
                raise DatasetError(f'{path}:{number}: line longer than {MAX_LINE_BYTES} bytes; '
                                   'not a split list ("relative/path label" per line)')
            raw = raw.rstrip(b'\n').rstrip(b'\r')
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            if b'\0' in raw:
                raise DatasetError(f'{path}:{number}: holds a NUL byte; a binary file, not a '
                                   'split list ("relative/path label" per line, UTF-8)')
            try:
                yield number, raw.decode('utf-8')
            except UnicodeDecodeError:
                raise DatasetError(
                    f'{path}:{number}: not UTF-8 text. A split list is UTF-8 "relative/path '
                    'label" lines; image file names that are not UTF-8 are not supported '
                    '(rename those files, e.g. with convmv, and re-run the converter).') from None


def read_index(path: Path, num_classes: Optional[int] = None) -> List[Sample]:
    """Parse a ``relative/path label`` list; errors name the file and line (not its text)."""
    samples = []
    for number, line in _lines(Path(path)):
        if not line.strip():
            continue
        name, _, label = line.rstrip().rpartition(' ')
        problem = ''
        if not name.strip():
            problem = 'there is no image path before the label'
        elif not _LABEL.fullmatch(label):
            problem = 'the label (after the last space) is not a whole number in ASCII digits'
        if problem:
            raise DatasetError(f'{path}:{number}: expected "relative/path label", but {problem}.'
                               ' Fix the line, or re-run the converter that wrote the list.')
        value = int(label)
        if num_classes is not None and not 0 <= value < num_classes:
            raise DatasetError(f'{path}:{number}: label {value} is not in 0..{num_classes - 1}'
                               f' ({num_classes} classes in {CLASSES_TXT})')
        samples.append(Sample(name, value, number))
    return samples


def read_classes(data_root: Union[str, 'PathLike[str]']) -> Tuple[str, ...]:
    """Class names of a prepared dataset, from ``<data_root>/meta/classes.txt``."""
    return tuple(read_classes_file(Path(data_root) / CLASSES_TXT))


# -- consistency of the lists (shared by the datasets and ``--check``) -----------------------
def image_key(path: str) -> str:
    """The name two list entries are compared by (``a//b``, ``./a/b`` and ``a/b`` agree)."""
    return posixpath.normpath(path)


def repeated_lines(samples: Sequence[Sample]) -> List[Tuple[Sample, Sample]]:
    """``(first, repeat)`` for every image listed again in one list."""
    first: Dict[str, Sample] = {}
    repeats = []
    for sample in samples:
        key = image_key(sample.path)
        if key in first:
            repeats.append((first[key], sample))
        else:
            first[key] = sample
    return repeats


def shared_images(lists: Mapping[str, Sequence[Sample]]) -> List[Tuple[str, List[str]]]:
    """``(image, [list names])`` for every image that two or more of ``lists`` name."""
    where: Dict[str, List[str]] = {}
    for name, samples in lists.items():
        for key in sorted({image_key(s.path) for s in samples}):
            where.setdefault(key, []).append(name)
    return sorted((key, names) for key, names in where.items() if len(names) > 1)


def outside_reason(path: str) -> str:
    """Why a list entry leaves the folder it is relative to, by its text alone (``''``: it
    does not): an absolute path or a ``..`` component."""
    if path.startswith('/') or os.path.isabs(path) or os.path.splitdrive(path)[0]:
        return 'an absolute path'
    if '..' in path and ('..' in path.split('/') or (
            os.sep != '/' and '..' in path.replace(os.sep, '/').split('/'))):
        return "a path with '..'"
    return ''


def is_within(path: str, roots: Sequence[str]) -> bool:
    """``path`` (resolved) lies in one of ``roots`` (resolved)."""
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def _record_name_ok(name: object) -> bool:
    """A ``split.json`` entry names a file below ``meta/`` (never anything else)."""
    if not isinstance(name, str) or outside_reason(name):
        return False
    parts = PurePosixPath(name).parts
    return len(parts) >= 2 and parts[0] == META


def read_split_record(root: Union[str, 'PathLike[str]']) -> Optional[dict]:
    """``<root>/meta/split.json`` as a dict, ``None`` when there is none.

    Raises:
        DatasetError: it exists but is not a split record the converters write.
    """
    path = Path(root) / SPLIT_JSON
    if not path.is_file():
        return None
    hint = ('Re-run the converter (tools/dataset_converters/prepare_*.py) with --force, or '
            'check the folder with --check')
    if path.stat().st_size > MAX_SPLIT_JSON_BYTES:
        raise DatasetError(f'{path} is larger than {MAX_SPLIT_JSON_BYTES >> 20} MB: not a '
                           f'split record. {hint}.')
    try:
        info = json.loads(path.read_bytes().decode('utf-8'))
    except (UnicodeDecodeError, ValueError):
        raise DatasetError(f'{path} is not valid JSON (UTF-8). {hint}.') from None
    files = info.get('index_files') if isinstance(info, dict) else None
    if not isinstance(files, dict) or not all(
            _record_name_ok(k) and isinstance(v, str) for k, v in files.items()):
        raise DatasetError(f'{path} has no valid "index_files" (file -> SHA-256 below meta/). '
                           f'{hint}.')
    return info


def changed_index_files(root: Union[str, 'PathLike[str]'], info: dict) -> List[str]:
    """Problems with the files ``split.json`` records: missing, or SHA-256 differs."""
    root = Path(root)
    problems = []
    for name, digest in sorted(info['index_files'].items()):
        path = root / name
        if not path.is_file():
            problems.append(f'{path} is missing (listed in {SPLIT_JSON})')
        elif file_sha256(path) != digest:
            problems.append(f'{path} was changed after it was prepared (its SHA-256 differs '
                            f'from {SPLIT_JSON}); re-run the converter with --force')
    return problems
