"""``--check OUT``: re-verify a prepared folder against its ``split.json``."""
from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Tuple

from ...utils.classes_file import read_classes_file
from ...utils.file_hash import file_sha256
from ..splits import (CLASSES_TXT, META, SPLIT_JSON, SPLITS, DatasetError, Sample, read_index,
                      split_key)
from .write import split_counts, verify_images


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
        listed = read_classes_file(out / CLASSES_TXT)
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
        if key in counts and split_counts(samples, classes) != counts[key]:
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
