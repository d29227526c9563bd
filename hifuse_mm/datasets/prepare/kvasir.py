"""Kvasir v1 / v2 (8 endoscopy classes): the 2-fold protocol of ``prepare_kvasir.py``.

Official layout: a folder per class (``kvasir-dataset/`` or ``kvasir-dataset-v2/``)::

    SRC/dyed-lifted-polyps/*.jpg ... SRC/ulcerative-colitis/*.jpg

SRC may also be the folder that holds ``kvasir-dataset-v2/`` (the only sub-folder with the
class folders is used). Classes are the sorted folder names (the papers' label order).

Protocol ``2fold`` (the HEMF authors' 50 / 50 cross-validation, made leak-free): each class's
images are shuffled and halved (A = the first ceil(n/2), B = the rest). ``fold1`` trains on A
and tests on B, ``fold2`` the other way round. ``--val-fraction`` (default 0.1) of each
class's training half, floor(0.1 |half|), is carved off for validation, so the test half is
never used for model selection (the authors' notebook has no validation split and selected
on the test fold). Output::

    OUT/meta/fold1/{train,val,test}.txt
    OUT/meta/fold2/{train,val,test}.txt
    OUT/meta/{train,val,test}.txt       = fold1 (what the configs read by default;
                                          tools/kfold.py switches to meta/<fold>/)

Kvasir's notice permits research and educational use, copying and distribution with the
copyright and permission notice kept; cite Pogorelov et al., MMSys 2017.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List, Tuple

from ...utils.image_files import is_image_name
from ..kvasir import KVASIR_CLASSES
from ..splits import DatasetError, Sample
from .allocation import as_fraction, carve, halves, shuffled
from .plan import SplitPlan, assign_units

FOLDS: Tuple[str, ...] = ('fold1', 'fold2')
PROTOCOLS = ('2fold', )
DESCRIPTION = __doc__


def find_class_root(src: Path) -> Path:
    """SRC itself when it holds the class folders, else its only sub-folder that does."""
    def has_classes(folder: Path) -> bool:
        return all((folder / name).is_dir() for name in KVASIR_CLASSES)

    if has_classes(src):
        return src
    candidates = sorted(p for p in src.iterdir() if p.is_dir() and has_classes(p))
    if len(candidates) == 1:
        return candidates[0]
    missing = [name for name in KVASIR_CLASSES if not (src / name).is_dir()]
    raise DatasetError(f'{src} does not hold the 8 Kvasir class folders (missing: {missing}); '
                       'SRC must be kvasir-dataset/ or kvasir-dataset-v2/')


def plan_kvasir(src: Path, seed: int = 0, val_fraction: str = '0.1') -> SplitPlan:
    """Two stratified folds of the images under ``src`` (see the module docstring)."""
    root = find_class_root(src)
    prefix = root.relative_to(src).as_posix()
    prefix = '' if prefix == '.' else prefix + '/'
    notes = []
    if prefix:
        notes.append(f'using the class folders in {root}')
    ignored = sorted(p.name for p in root.iterdir()
                     if p.is_dir() and p.name not in KVASIR_CLASSES)
    if ignored:
        notes.append(f'ignored folders that are not Kvasir classes: {ignored}')
    units: Dict[str, Dict[str, List[Sample]]] = {}
    skipped = []
    for label, name in enumerate(KVASIR_CLASSES):
        units[name] = {}
        for path in sorted((root / name).iterdir()):
            if path.is_file() and is_image_name(path):
                rel = f'{prefix}{name}/{path.name}'
                units[name][rel] = [Sample(rel, label)]
            else:
                skipped.append(f'{name}/{path.name}')
        if len(units[name]) < 2:
            raise DatasetError(f'{root / name} has {len(units[name])} image(s); two folds need '
                               'at least 2 per class')
    if skipped:
        notes.append(f'skipped {len(skipped)} non-image entries, e.g. {skipped[:3]}')

    fraction = as_fraction(val_fraction, '--val-fraction')
    halves_of: Dict[str, Tuple[List[str], List[str]]] = {}
    partitions = {}
    for index, fold in enumerate(FOLDS):
        def rule(ids, name, index=index):
            if name not in halves_of:
                halves_of[name] = halves(shuffled(ids, seed, 'folds', name))
            train_part, test = halves_of[name][index], halves_of[name][1 - index]
            train, val = carve(train_part, fraction, len(train_part))
            return dict(train=train, val=val, test=test)

        partitions[fold] = assign_units(units, KVASIR_CLASSES, rule)
    partitions[''] = partitions[FOLDS[0]]
    options = dict(folds=list(FOLDS), halves='A = first ceil(n/2), B = rest (per class)',
                   fold1='train A, test B', fold2='train B, test A',
                   val=f'{val_fraction} of the fold\'s training half (floor), per class',
                   default_lists='meta/{train,val,test}.txt = fold1')
    return SplitPlan('kvasir', '2fold', seed, KVASIR_CLASSES, partitions,
                     options=options, notes=notes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Kvasir options of the converter."""
    parser.add_argument('--protocol', choices=PROTOCOLS, default='2fold',
                        help='2fold: two stratified 50/50 folds (default)')
    parser.add_argument('--val-fraction', default='0.1',
                        help='fraction of each fold\'s training half used for val (default 0.1)')


def plan_from_args(src: Path, args: argparse.Namespace) -> SplitPlan:
    """Converter entry: plan from parsed arguments."""
    try:
        return plan_kvasir(src, args.seed, args.val_fraction)
    except ValueError as err:
        raise DatasetError(str(err)) from None
