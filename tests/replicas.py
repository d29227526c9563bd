"""Synthetic replicas of the official dataset layouts (tiny images with unique bytes).

Every image encodes its own running number in its pixels, so no two files are identical
unless a test makes them so (the converters refuse identical images in different splits).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from hifuse_mm.datasets.covid19ct import COVID19CT_CLASSES
from hifuse_mm.datasets.isic2018 import ISIC2018_CLASSES
from hifuse_mm.datasets.kvasir import KVASIR_CLASSES
from hifuse_mm.datasets.prepare.covid19ct import IMAGE_DIRS, split_list_path
from hifuse_mm.datasets.prepare.isic2018 import GROUND_TRUTH, INPUT_DIR

# The real ISIC 2018 Task 3 training set (10015 images).
ISIC2018_COUNTS = dict(MEL=1113, NV=6705, BCC=514, AKIEC=327, BKL=1099, DF=115, VASC=142)

_counter = [0]


def image_bytes(size: int = 4, colour: Optional[Sequence[int]] = None,
                ext: str = '.png') -> bytes:
    """An encoded image whose pixels hold a process-wide running number (unique bytes)."""
    number = _counter[0]
    _counter[0] += 1
    if colour is None:
        img = np.zeros((size, size), np.uint8)
        img.flat[:8] = np.frombuffer(np.uint64(number).tobytes(), np.uint8)
    else:
        rng = np.random.default_rng(number)
        img = np.clip(np.array(colour, np.int16) + rng.integers(-20, 20, (size, size, 3)),
                      0, 255).astype(np.uint8)
        img[0, 0, :] = [number % 256, (number // 256) % 256, (number // 65536) % 256]
        ext = '.png'  # lossless, so the marker pixel keeps the bytes unique
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def make_isic2018(root: Path, counts: Mapping[str, int] = ISIC2018_COUNTS,
                  lesion_sizes: Optional[Sequence[int]] = None) -> Dict[str, Tuple[str, str]]:
    """ISIC 2018 Task 3 layout; returns ``{image id: (class, lesion id)}``.

    With ``lesion_sizes``, consecutive images of a class belong to one lesion, the sizes
    cycling through ``lesion_sizes``, and HAM10000_metadata.csv is written next to the CSV.
    """
    (root / INPUT_DIR).mkdir(parents=True)
    rows = [','.join(['image', *ISIC2018_CLASSES])]
    meta_rows = ['lesion_id,image_id,dx,dx_type,age,sex,localization']
    info = {}
    number = 0
    lesion_number = 0
    for name in ISIC2018_CLASSES:
        left_in_lesion = 0
        cycle = 0
        for _ in range(counts.get(name, 0)):
            if left_in_lesion == 0:
                lesion_number += 1
                left_in_lesion = lesion_sizes[cycle % len(lesion_sizes)] if lesion_sizes else 1
                cycle += 1
            left_in_lesion -= 1
            image = f'ISIC_{number:07d}'
            number += 1
            (root / INPUT_DIR / f'{image}.jpg').write_bytes(image_bytes())
            rows.append(','.join([image, *('1.0' if c == name else '0.0'
                                           for c in ISIC2018_CLASSES)]))
            lesion = f'HAM_{lesion_number:07d}'
            meta_rows.append(f'{lesion},{image},{name.lower()},histo,50.0,male,back')
            info[image] = (name, lesion)
    (root / GROUND_TRUTH).write_text('\n'.join(rows) + '\n')
    if lesion_sizes:
        (root / 'HAM10000_metadata.csv').write_text('\n'.join(meta_rows) + '\n')
    return info


def make_kvasir(root: Path, per_class: int, size: int = 4) -> List[str]:
    """Kvasir layout (a folder per class); returns the relative image paths."""
    paths = []
    for k, name in enumerate(KVASIR_CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            rel = f'{name}/{name}_{i:03d}.jpg'
            colour = None if size <= 4 else (30 * k, 255 - 30 * k, 120)
            (root / rel).write_bytes(image_bytes(size, colour))
            paths.append(rel)
    return paths


def make_covid19ct(root: Path, lists: Mapping[str, Mapping[str, int]],
                   unlisted: int = 0) -> Dict[str, Dict[str, List[str]]]:
    """UCSD-AI4H layout with ``lists[class][split]`` images per split list.

    File names mix PNG/JPG and contain ``%`` like the real ones. Returns the names per list.
    """
    names: Dict[str, Dict[str, List[str]]] = {}
    for name in COVID19CT_CLASSES:
        folder = root / IMAGE_DIRS[name]
        folder.mkdir(parents=True)
        names[name] = {}
        for split, count in lists[name].items():
            files = [f'{name.lower()}-{split}-{i}%{i % 3}.{"png" if i % 2 else "jpg"}'
                     for i in range(count)]
            for file in files:
                (folder / file).write_bytes(image_bytes())
            (root / split_list_path(name, split)).parent.mkdir(parents=True, exist_ok=True)
            (root / split_list_path(name, split)).write_text(''.join(f'{f}\n' for f in files))
            names[name][split] = files
        for i in range(unlisted):
            (folder / f'unlisted-{i}.png').write_bytes(image_bytes())
    return names


def rebuild_ucsd_layout(shared: Path, out: Path) -> int:
    """Rebuild the UCSD-AI4H layout from shared/data/covid_ct (links to the stored images).

    ``meta/original_names.tsv`` maps each stored file to its original ``CT_*/name``;
    ``meta/official_Data-split/`` holds the six official lists verbatim. Returns the number
    of linked images.
    """
    lines = (shared / 'meta' / 'original_names.tsv').read_text().splitlines()
    header = lines[0].split('\t')
    col_new, col_orig = header.index('new_path'), header.index('original_path')
    count = 0
    for line in lines[1:]:
        cells = line.split('\t')
        target = out / cells[col_orig]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to((shared / cells[col_new]).resolve())
        count += 1
    shutil.copytree(shared / 'meta' / 'official_Data-split', out / 'Data-split')
    return count


def read_split(path: Path) -> List[Tuple[str, int]]:
    """``[(path, label)]`` of a written split list."""
    result = []
    for line in path.read_text().splitlines():
        name, label = line.rsplit(' ', 1)
        result.append((name, int(label)))
    return result


def digest_tree(root: Path, names: Iterable[str]) -> Dict[str, bytes]:
    """Bytes of the named files under ``root``."""
    return {name: (root / name).read_bytes() for name in names}
