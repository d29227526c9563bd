"""COVID19-CT (UCSD-AI4H COVID-CT): the split protocols of ``prepare_covid19ct.py``.

Official layout (the UCSD-AI4H repository with ``Images-processed/*.zip`` unpacked)::

    SRC/CT_COVID/*.png|jpg            (or SRC/Images-processed/CT_COVID/)
    SRC/CT_NonCOVID/*.png|jpg         (or SRC/Images-processed/CT_NonCOVID/)
    SRC/Data-split/COVID/{train,val,test}CT_COVID.txt
    SRC/Data-split/NonCOVID/{train,val,test}CT_NonCOVID.txt     one file name per line

Classes: COVID = 0, NonCOVID = 1 (the UCSD baseline's order).

Protocols:

* ``official``: the released split lists (patient-level: no patient spans two splits):
  425 / 118 / 203 images (191 / 60 / 98 COVID).
* ``random``: the papers' 0.6 / 0.15 / 0.25 per class (train = ceil(0.6 n), test =
  floor(0.25 n), val = the rest: test 87 + 99 = 186). Image-level, as in the papers, so slices
  of one patient can land in different splits; prefer ``official`` for new results.

Terms (source README): images collected from COVID-19 papers (medRxiv, bioRxiv, NEJM, JAMA,
Lancet, ...), copyrights with the papers' authors and publishers; research use. Cite Zhao et
al., "COVID-CT-Dataset: a CT scan dataset about COVID-19", arXiv:2003.13865 (2020).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Dict, List

from ...utils.image_files import is_image_name
from ..covid19ct import COVID19CT_CLASSES
from ..splits import SPLITS, DatasetError, Sample
from .allocation import head_tail_split, shuffled
from .plan import SplitPlan, assign_units

IMAGE_DIRS = {'COVID': 'CT_COVID', 'NonCOVID': 'CT_NonCOVID'}
PROTOCOLS = ('official', 'random')
DESCRIPTION = __doc__


def split_list_path(name: str, split: str) -> str:
    """``Data-split/COVID/trainCT_COVID.txt`` etc., relative to SRC."""
    return f'Data-split/{name}/{split}CT_{name}.txt'


def find_image_base(src: Path) -> str:
    """``''`` or ``'Images-processed/'``: where CT_COVID/ and CT_NonCOVID/ are."""
    for base in ('', 'Images-processed/'):
        if all((src / f'{base}{folder}').is_dir() for folder in IMAGE_DIRS.values()):
            return base
    raise DatasetError(f'{src} has no CT_COVID/ and CT_NonCOVID/ folders (also looked in '
                       f'{src / "Images-processed"}); unpack Images-processed/CT_COVID.zip and '
                       'CT_NonCOVID.zip of the UCSD-AI4H COVID-CT repository')


def read_split_list(path: Path) -> List[str]:
    """File names of one split list (stripped, blank lines skipped, one per line)."""
    if not path.is_file():
        raise DatasetError(f'{path} not found; the official protocol needs the six '
                           'Data-split/*/*.txt lists of the UCSD-AI4H COVID-CT repository')
    try:
        text = path.read_text(encoding='utf-8-sig')
    except UnicodeDecodeError:
        raise DatasetError(f'{path} is not UTF-8 text (one file name per line expected)') from None
    names = [line.strip() for line in text.split('\n')]
    names = [name for name in names if name]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DatasetError(f'{path} lists {repeated[:5]} more than once')
    return names


def _folder_images(src: Path, folder: str) -> List[str]:
    return sorted(p.name for p in (src / folder).iterdir()
                  if p.is_file() and is_image_name(p))


def plan_covid19ct(src: Path, protocol: str, seed: int = 0) -> SplitPlan:
    """Split COVID19-CT by the official lists or at random (see the module docstring)."""
    if protocol not in PROTOCOLS:
        raise DatasetError(f'unknown protocol {protocol!r}; choose one of {PROTOCOLS}')
    base = find_image_base(src)
    notes: List[str] = []
    source_files = {}
    splits: Dict[str, List[Sample]] = {split: [] for split in SPLITS}
    if protocol == 'official':
        for label, name in enumerate(COVID19CT_CLASSES):
            folder = f'{base}{IMAGE_DIRS[name]}'
            listed = set()
            for split in SPLITS:
                rel = split_list_path(name, split)
                source_files[rel] = src / rel
                for file_name in read_split_list(src / rel):
                    splits[split].append(Sample(f'{folder}/{file_name}', label))
                    listed.add(file_name)
            unlisted = [n for n in _folder_images(src, folder) if n not in listed]
            if unlisted:
                notes.append(f'{len(unlisted)} image(s) in {folder} are in no split list and '
                             f'were left out, e.g. {unlisted[:3]}')
        seed_used = None
        options: Dict[str, object] = dict(lists='Data-split/{COVID,NonCOVID}/*.txt',
                                          level='patient (official lists)')
    else:
        units = {name: {f'{base}{IMAGE_DIRS[name]}/{f}': [
            Sample(f'{base}{IMAGE_DIRS[name]}/{f}', label)]
            for f in _folder_images(src, f'{base}{IMAGE_DIRS[name]}')}
            for label, name in enumerate(COVID19CT_CLASSES)}

        def rule(ids, name):
            return head_tail_split(shuffled(ids, seed, 'split', name), '0.6', '0.25')

        splits = assign_units(units, COVID19CT_CLASSES, rule)
        seed_used = seed
        options = dict(train='0.6 (ceil)', test='0.25 (floor)', val='rest',
                       level='image (slices of one patient may span splits)')
        notes.append('the random protocol splits images, not patients; use --protocol '
                     'official for patient-level splits')
    return SplitPlan('covid19ct', protocol, seed_used, COVID19CT_CLASSES, {'': splits},
                     source_files=source_files, options=options, notes=notes)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """COVID19-CT options of the converter."""
    parser.add_argument('--protocol', choices=PROTOCOLS,
                        help='official: the released patient-level lists; random: '
                        '0.6/0.15/0.25 per class (image level)')


def plan_from_args(src: Path, args: argparse.Namespace) -> SplitPlan:
    """Converter entry: plan from parsed arguments."""
    if args.protocol is None:
        raise DatasetError(f'--protocol is required ({" or ".join(PROTOCOLS)})')
    return plan_covid19ct(src, args.protocol, args.seed)
