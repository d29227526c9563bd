"""``--check OUT``: re-verify a prepared folder against its ``split.json``."""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Tuple

from ...utils.classes_file import read_classes_file
from ...utils.file_hash import file_sha256
from ..splits import (CLASSES_TXT, META, SPLIT_JSON, SPLITS, DatasetError, Sample,
                      changed_index_files, read_index, read_split_record, repeated_lines,
                      shared_images, shown, split_key)
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
    info = read_split_record(out)
    classes, index_files, counts = info.get('classes'), info['index_files'], info.get('counts')
    if not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)
            and isinstance(counts, dict)):
        raise DatasetError(f'{info_path} is not a valid split.json (no "classes" list or '
                           '"counts"); re-run the converter with --force')

    problems = changed_index_files(out, info)
    if (out / CLASSES_TXT).is_file():
        try:
            listed = read_classes_file(out / CLASSES_TXT)
        except UnicodeDecodeError:
            listed = None
        if listed != list(classes):
            problems.append(f'{out / CLASSES_TXT} does not list the classes of {SPLIT_JSON}')

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
        for first, again in repeated_lines(samples):
            problems.append(f'{out / name}:{again.line}: the image of line {first.line} again')
    for partition, splits in sorted(partitions.items()):
        lists = {split_key(partition, split): samples for split, samples in splits.items()}
        for image, names in shared_images(lists):
            problems.append(f'{shown(image)} is listed in {" and ".join(names)}')
    problems += verify_images(out, partitions, shown_root=str(out), workers=workers)

    image_root = info.get('image_root')
    root = out / (image_root if isinstance(image_root, str) else '')
    source_files = info.get('source_files')
    for name, digest in sorted(source_files.items() if isinstance(source_files, dict) else []):
        path = root / name
        if not path.is_file():
            print(f'Note: source file {path} not reachable; its checksum was not re-checked')
        elif file_sha256(path) != digest:
            problems.append(f'{path} changed since the split was prepared (SHA-256 differs '
                            f'from {SPLIT_JSON}): re-run the converter with --force')
    return problems
