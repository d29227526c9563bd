"""ISIC 2018 Task 3 (HAM10000): the split protocols of ``prepare_isic2018.py``.

Official layout (the challenge's training download, unpacked into SRC)::

    SRC/ISIC2018_Task3_Training_Input/ISIC_0024306.jpg ...
    SRC/ISIC2018_Task3_Training_GroundTruth.csv        (or inside
    SRC/ISIC2018_Task3_Training_GroundTruth/)           image,MEL,NV,BCC,AKIEC,BKL,DF,VASC
                                                        one-hot rows ("1.0"/"0.0")

Class names and label order are the CSV's columns: MEL, NV, BCC, AKIEC, BKL, DF, VASC.

Protocols (per class, units shuffled as in :mod:`hifuse_mm.datasets.prepare.allocation`):

* ``hemf``: the HEMF authors' notebook: train = the first ceil(0.6 n), test = the last
  floor(0.3 n), val = the rest. On the 10015 official images: 6012 / 1002 / 3001.
* ``hifuse``: the HiFuse paper's 70 / 30 stratified train / test split (train part =
  ceil(0.7 n), test = floor(0.3 n)); ``--val-fraction`` (default 0.1) of each class's images,
  floor(0.1 n), is then carved out of the training part for model selection, so train ~ 60 %,
  val ~ 10 %, test 30 %. The test split does not depend on the validation fraction.

``--group-by-lesion HAM10000_metadata.csv`` makes the unit a lesion (``lesion_id``) instead of
an image: HAM10000 has several images of many lesions, and an image-level split puts the same
lesion into train and test. Lesions are stratified by their class; the counts then follow the
rules above in lesions, not images.

The data is CC BY-NC 4.0 ((c) ViDIR Group, Department of Dermatology, Medical University of
Vienna); cite Tschandl et al., Sci. Data 5, 180161 (2018) and Codella et al., arXiv:1902.03368.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..isic2018 import ISIC2018_CLASSES
from ..splits import DatasetError, Sample
from .allocation import as_fraction, carve, head_tail_split, shuffled
from .plan import SplitPlan, assign_units

INPUT_DIR = 'ISIC2018_Task3_Training_Input'
GROUND_TRUTH = 'ISIC2018_Task3_Training_GroundTruth.csv'
PROTOCOLS = ('hemf', 'hifuse')
DESCRIPTION = __doc__


def find_ground_truth(src: Path) -> Path:
    """The ground-truth CSV, at SRC's top level or in its ``..._GroundTruth/`` folder."""
    for candidate in (src / GROUND_TRUTH, src / Path(GROUND_TRUTH).stem / GROUND_TRUTH):
        if candidate.is_file():
            return candidate
    raise DatasetError(f'{GROUND_TRUTH} not found in {src} or {src / Path(GROUND_TRUTH).stem}; '
                       'SRC must be the unpacked ISIC 2018 Task 3 training download')


def _read_csv(path: Path) -> Tuple[List[str], List[List[str]]]:
    try:
        with open(path, newline='', encoding='utf-8-sig') as stream:
            rows = [row for row in csv.reader(stream) if any(cell.strip() for cell in row)]
    except UnicodeDecodeError:
        raise DatasetError(f'{path} is not UTF-8 text (a CSV file is expected)') from None
    except csv.Error as err:
        raise DatasetError(f'{path}: not a readable CSV file ({err})') from None
    if not rows:
        raise DatasetError(f'{path} is empty')
    return [cell.strip() for cell in rows[0]], rows[1:]


def read_ground_truth(path: Path) -> Dict[str, int]:
    """``{image id: label}`` from the one-hot ground-truth CSV (errors name file and line)."""
    header, rows = _read_csv(path)
    expected = ['image', *ISIC2018_CLASSES]
    if header != expected:
        raise DatasetError(f'{path}: header is {header}, expected {expected}')
    labels: Dict[str, int] = {}
    for number, row in enumerate(rows, 2):
        if len(row) != len(expected):
            raise DatasetError(f'{path}:{number}: {len(row)} columns, expected {len(expected)}')
        image = row[0].strip()
        try:
            values = [float(cell) for cell in row[1:]]
        except ValueError:
            raise DatasetError(f'{path}:{number}: non-numeric class column in {row}') from None
        hot = [i for i, value in enumerate(values) if value == 1.0]
        if len(hot) != 1 or any(value not in (0.0, 1.0) for value in values):
            raise DatasetError(f'{path}:{number}: {image} must have exactly one class set to '
                               f'1 (got {row[1:]})')
        if image in labels:
            raise DatasetError(f'{path}:{number}: {image} is listed twice')
        labels[image] = hot[0]
    if not labels:
        raise DatasetError(f'{path} lists no images')
    return labels


def read_lesions(path: Path, labels: Dict[str, int]) -> Dict[str, str]:
    """``{image id: lesion id}`` from HAM10000's metadata CSV, checked against the labels.

    Every labelled image must be in the metadata, a lesion must have one class, and the
    metadata's ``dx`` (when present) must agree with the ground truth.
    """
    if not path.is_file():
        raise DatasetError(f'--group-by-lesion: {path} not found (HAM10000_metadata.csv from '
                           'the HAM10000 download on the Harvard Dataverse)')
    header, rows = _read_csv(path)
    for column in ('lesion_id', 'image_id'):
        if column not in header:
            raise DatasetError(f'{path}: no {column!r} column (header: {header})')
    col_lesion, col_image = header.index('lesion_id'), header.index('image_id')
    col_dx = header.index('dx') if 'dx' in header else None
    lesion_of: Dict[str, str] = {}
    for number, row in enumerate(rows, 2):
        image, lesion = row[col_image].strip(), row[col_lesion].strip()
        if image not in labels:
            continue
        if col_dx is not None and row[col_dx].strip().upper() != ISIC2018_CLASSES[labels[image]]:
            raise DatasetError(f'{path}:{number}: {image} has dx={row[col_dx]!r} but the ground '
                               f'truth says {ISIC2018_CLASSES[labels[image]]}')
        lesion_of[image] = lesion
    missing = sorted(set(labels) - set(lesion_of))
    if missing:
        raise DatasetError(f'{path}: {len(missing)} image(s) of the ground truth have no '
                           f'lesion_id, e.g. {missing[:5]}')
    class_of: Dict[str, int] = {}
    for image, lesion in sorted(lesion_of.items()):
        if class_of.setdefault(lesion, labels[image]) != labels[image]:
            raise DatasetError(f'{path}: lesion {lesion} has images of two classes '
                               f'({ISIC2018_CLASSES[class_of[lesion]]} and '
                               f'{ISIC2018_CLASSES[labels[image]]}, e.g. {image})')
    return lesion_of


def plan_isic2018(src: Path, protocol: str, seed: int = 0,
                  lesion_csv: Optional[Path] = None, val_fraction: str = '0.1') -> SplitPlan:
    """Split the official ISIC 2018 Task 3 training set.

    Args:
        src: The unpacked download (see the module docstring).
        protocol: ``'hemf'`` or ``'hifuse'``.
        seed: Shuffling seed.
        lesion_csv: HAM10000_metadata.csv to keep each lesion in one split.
        val_fraction: ``hifuse`` only: fraction of each class carved from train for val.
    """
    if protocol not in PROTOCOLS:
        raise DatasetError(f'unknown protocol {protocol!r}; choose one of {PROTOCOLS}')
    gt_path = find_ground_truth(src)
    labels = read_ground_truth(gt_path)
    if not (src / INPUT_DIR).is_dir():
        raise DatasetError(f'{src / INPUT_DIR} not found; SRC must be the unpacked ISIC 2018 '
                           'Task 3 training download')
    lesion_of = read_lesions(lesion_csv, labels) if lesion_csv else None

    units: Dict[str, Dict[str, List[Sample]]] = {name: {} for name in ISIC2018_CLASSES}
    for image, label in labels.items():
        unit = lesion_of[image] if lesion_of else image
        sample = Sample(f'{INPUT_DIR}/{image}.jpg', label)
        units[ISIC2018_CLASSES[label]].setdefault(unit, []).append(sample)

    options: Dict[str, object] = dict(unit='lesion' if lesion_of else 'image')
    if protocol == 'hemf':
        options.update(train='0.6 (ceil)', test='0.3 (floor)', val='rest')

        def rule(ids, name):
            return head_tail_split(shuffled(ids, seed, 'split', name), '0.6', '0.3')
    else:
        fraction = as_fraction(val_fraction, '--val-fraction')
        options.update(train_part='0.7 (ceil)', test='0.3 (floor)',
                       val=f'{val_fraction} of each class (floor), carved from the train part')

        def rule(ids, name):
            parts = head_tail_split(shuffled(ids, seed, 'split', name), '0.7', '0.3')
            train, val = carve(parts['train'], fraction, len(ids))
            return dict(train=train, val=val, test=parts['test'])

    splits = assign_units(units, ISIC2018_CLASSES, rule)
    source_files = {gt_path.relative_to(src).as_posix(): gt_path}
    if lesion_csv:
        source_files[lesion_csv.name] = lesion_csv
    notes = []
    listed = {f'{image}.jpg' for image in labels}
    extra = sorted(p.name for p in (src / INPUT_DIR).glob('*.jpg') if p.name not in listed)
    if extra:
        notes.append(f'{len(extra)} image(s) in {INPUT_DIR} are not in {GROUND_TRUTH} and were '
                     f'left out, e.g. {extra[:3]}')
    return SplitPlan('isic2018', protocol, seed, ISIC2018_CLASSES, {'': splits},
                     source_files=source_files, options=options, notes=notes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """ISIC2018 options of the converter."""
    parser.add_argument('--protocol', choices=PROTOCOLS,
                        help='hemf: 60/10/30 per class (ceil/floor); hifuse: 70/30 with val '
                        'carved from the 70')
    parser.add_argument('--group-by-lesion', type=Path, metavar='HAM10000_metadata.csv',
                        help='keep all images of a lesion in one split')
    parser.add_argument('--val-fraction', default='0.1',
                        help='hifuse protocol: fraction of each class used for val (default 0.1)')


def audit_groups(args: argparse.Namespace) -> Optional[Path]:
    """The groups file of the converter's split audit: HAM10000's metadata (image_id,
    lesion_id) when the split was made by lesion, so the audit checks the lesions too."""
    return args.group_by_lesion


def plan_from_args(src: Path, args: argparse.Namespace) -> SplitPlan:
    """Converter entry: plan from parsed arguments."""
    if args.protocol is None:
        raise DatasetError(f'--protocol is required ({" or ".join(PROTOCOLS)})')
    try:
        return plan_isic2018(src, args.protocol, args.seed, args.group_by_lesion,
                             args.val_fraction)
    except ValueError as err:
        raise DatasetError(str(err)) from None
