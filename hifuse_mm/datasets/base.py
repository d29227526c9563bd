"""``MedicalImageDataset``: a prepared folder's ``meta/<split>.txt`` list as an MMPretrain dataset.

The folder layout is the one the converters write (:mod:`hifuse_mm.datasets.splits`) and the
demo generator uses::

    data_root/meta/{train,val,test}.txt   "relative/path label" per line (relative to data_root)
    data_root/meta/classes.txt            class names in label order

Compared with MMPretrain's ``CustomDataset`` it gives errors that say what to do (a missing
list names the converter to run; a bad line names file and line; a label outside the classes
is refused) and it takes the class names from ``meta/classes.txt`` when the config gives none.
Subclasses fix the official class names and order (``METAINFO``): a ``classes=`` or a
``meta/classes.txt`` that disagrees with them is an error, not a silent relabelling.
"""
from __future__ import annotations

import os.path as osp
from pathlib import Path
from typing import List, Optional, Sequence

from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

from .splits import CLASSES_TXT, DatasetError, read_index


def read_class_file(path: str) -> List[str]:
    """Non-empty, stripped lines of a ``classes.txt``."""
    with open(path) as stream:
        return [line.strip() for line in stream if line.strip()]


@DATASETS.register_module()
class MedicalImageDataset(CustomDataset):
    """A split of a prepared medical image folder.

    Args:
        data_root: The prepared folder.
        ann_file: The split list, relative to ``data_root`` (``'meta/train.txt'``).
        classes: Class names in label order; default: the official ones (subclasses) or
            ``data_root/meta/classes.txt``.
        **kwargs: Passed on to :class:`mmpretrain.datasets.CustomDataset` (``pipeline``,
            ``test_mode``, ``metainfo``, ...).
    """

    METAINFO: dict = {}
    #: The converter that writes this dataset's folder (named in error messages).
    CONVERTER: str = 'tools/dataset_converters/prepare_<dataset>.py'

    def __init__(self,
                 data_root: str = '',
                 ann_file: str = '',
                 classes: Optional[Sequence[str]] = None,
                 **kwargs) -> None:
        if not ann_file:
            raise ValueError(f'{type(self).__name__} needs ann_file, e.g. '
                             "ann_file='meta/train.txt' (relative to data_root)")
        official = self.METAINFO.get('classes')
        if classes is not None and official is not None \
                and tuple(classes) != tuple(official):
            raise ValueError(f'{type(self).__name__}: classes={list(classes)} differs from the '
                             f'official order {list(official)}; remove classes= from the '
                             'config or use MedicalImageDataset for a custom class list')
        if classes is None and official is None:
            class_file = osp.join(data_root, CLASSES_TXT)
            if osp.isfile(class_file):
                classes = read_class_file(class_file)
        super().__init__(data_root=data_root, ann_file=ann_file, classes=classes, **kwargs)

    def _hint(self) -> str:
        return (f'Prepare the dataset with `python {self.CONVERTER} SRC {self.data_root or "OUT"}'
                f' --protocol ...` (see README, "Datasets, splits and metrics"), or point '
                'data_root at a prepared folder.')

    def load_data_list(self) -> List[dict]:
        """Read the split list; check it against the classes."""
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(f'Split list {self.ann_file} not found. {self._hint()}')
        classes = self.CLASSES
        class_file = osp.join(self.data_root, CLASSES_TXT)
        if classes is not None and osp.isfile(class_file):
            listed = read_class_file(class_file)
            if listed != list(classes):
                raise ValueError(f'{class_file} lists {listed} but the config/dataset uses '
                                 f'{list(classes)}: the labels in {self.ann_file} would be '
                                 'misread. Fix the config\'s classes or re-prepare the data.')
        try:
            samples = read_index(Path(self.ann_file),
                                 None if classes is None else len(classes))
        except DatasetError as err:
            raise ValueError(str(err)) from None
        if not samples:
            raise ValueError(f'Split list {self.ann_file} is empty. {self._hint()}')
        return [dict(img_path=osp.join(self.img_prefix, s.path), gt_label=s.label)
                for s in samples]
