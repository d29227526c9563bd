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

Paths in the lists are relative to OUT (the configs' ``data_root``).
"""
from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import List, Optional, Tuple, Union

from ..utils.classes_file import read_classes_file

SPLITS: Tuple[str, ...] = ('train', 'val', 'test')
SOURCE_LINK = 'source'
META = 'meta'
SPLIT_JSON = f'{META}/split.json'
CLASSES_TXT = f'{META}/classes.txt'


class DatasetError(Exception):
    """Bad input or a bad prepared folder; the message names the file and what to do."""


@dataclass(frozen=True)
class Sample:
    """One image of a split: ``path`` relative to the source root (POSIX), class ``label``."""
    path: str
    label: int


def index_file(partition: str, split: str) -> str:
    """Path of a split list relative to the prepared folder."""
    return f'{META}/{partition}/{split}.txt' if partition else f'{META}/{split}.txt'


def split_key(partition: str, split: str) -> str:
    """Name of a split in ``split.json`` (``'train'`` or ``'fold1/train'``)."""
    return f'{partition}/{split}' if partition else split


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


def read_classes(data_root: Union[str, 'PathLike[str]']) -> Tuple[str, ...]:
    """Class names of a prepared dataset, from ``<data_root>/meta/classes.txt``."""
    return tuple(read_classes_file(Path(data_root) / CLASSES_TXT))
