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

Checked when the dataset is built: every listed image exists (else an error naming the list,
line and file); an image stored in a folder named after a class carries that class's label
(else an error naming the lines: class folders that disagree with the classes); the split is not
empty. With ``skip_bad_images=True`` (``--skip-bad-images``) missing and undecodable images
are left out instead and listed at the end of the run (:mod:`hifuse_mm.datasets.bad_images`).
"""
from __future__ import annotations

import logging
import os.path as osp
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from mmengine.logging import print_log
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

from ..utils.classes_file import read_classes_file
from .bad_images import SkippedImage, find_bad_images, format_skipped
from .splits import CLASSES_TXT, DatasetError, Sample, read_index


class SplitListError(DatasetError, ValueError):
    """A split list, its classes or its images are wrong; the message says where and what to do.
    (A ``ValueError`` as before; a ``DatasetError``, so the tools show it without a traceback.)
    """


class SplitFileNotFoundError(DatasetError, FileNotFoundError):
    """A split list or a listed image does not exist."""


@DATASETS.register_module()
class MedicalImageDataset(CustomDataset):
    """A split of a prepared medical image folder.

    Args:
        data_root: The prepared folder.
        ann_file: The split list, relative to ``data_root`` (``'meta/train.txt'``).
        classes: Class names in label order; default: the official ones (subclasses) or
            ``data_root/meta/classes.txt``.
        skip_bad_images: Check every listed image when the dataset is built and leave out the
            missing or undecodable ones (kept in :attr:`skipped_images`) instead of stopping.
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
                 skip_bad_images: bool = False,
                 **kwargs) -> None:
        self.skip_bad_images = skip_bad_images
        #: Images left out by ``skip_bad_images``.
        self.skipped_images: List[SkippedImage] = []
        if not ann_file:
            raise SplitListError(f'{type(self).__name__} needs ann_file, e.g. '
                                 "ann_file='meta/train.txt' (relative to data_root)")
        official = self.METAINFO.get('classes')
        if classes is not None and official is not None \
                and tuple(classes) != tuple(official):
            raise SplitListError(
                f'{type(self).__name__}: classes={list(classes)} differs from the official '
                f'order {list(official)}; remove classes= from the config or use '
                'MedicalImageDataset for a custom class list')
        if classes is None and official is None:
            class_file = osp.join(data_root, CLASSES_TXT)
            if osp.isfile(class_file):
                classes = read_classes_file(class_file)
        super().__init__(data_root=data_root, ann_file=ann_file, classes=classes, **kwargs)

    def _hint(self) -> str:
        return (f'Prepare the dataset with `python {self.CONVERTER} SRC {self.data_root or "OUT"}'
                f' --protocol ...` (see docs/data_and_splits.md), or point '
                'data_root at a prepared folder.')

    def load_data_list(self) -> List[dict]:
        """Read the split list; check it against the classes."""
        if not osp.isfile(self.ann_file):
            raise SplitFileNotFoundError(
                f'Split list {self.ann_file} not found. {self._hint()}')
        classes = self.CLASSES
        class_file = osp.join(self.data_root, CLASSES_TXT)
        if classes is not None and osp.isfile(class_file):
            listed = read_classes_file(class_file)
            if listed != list(classes):
                raise SplitListError(
                    f'{class_file} lists {listed} but the config/dataset uses {list(classes)}: '
                    f'the labels in {self.ann_file} would be misread. Fix the config\'s classes '
                    'or re-prepare the data.')
        try:
            samples = read_index(Path(self.ann_file),
                                 None if classes is None else len(classes))
        except DatasetError as err:
            raise SplitListError(str(err)) from None
        if not samples:
            raise SplitListError(f'Split list {self.ann_file} is empty. {self._hint()}')
        if classes is not None:
            self._check_class_folders(samples, classes)
        paths = [osp.join(self.img_prefix, s.path) for s in samples]
        bad = self._bad_images(paths)
        if bad:
            self.skipped_images = [SkippedImage(path, reason, self.ann_file)
                                   for path, reason in sorted(bad.items())]
            print_log(f'--skip-bad-images: {len(bad)} of {len(paths)} image(s) of '
                      f'{self.ann_file} left out:\n  ' +
                      '\n  '.join(format_skipped(self.skipped_images)), logger='current',
                      level=logging.WARNING)
        data_list = [dict(img_path=path, gt_label=s.label)
                     for path, s in zip(paths, samples) if path not in bad]
        if not data_list:
            raise SplitListError(f'Split list {self.ann_file}: none of its {len(paths)} '
                                 'image(s) can be used (all missing or unreadable, see above).')
        return data_list

    def _line_numbers(self) -> Dict[str, int]:
        """Image path (as listed) -> its line number in the split list."""
        numbers = {}
        with open(self.ann_file) as stream:
            for number, line in enumerate(stream, 1):
                name = line.rstrip().rpartition(' ')[0]
                if name:
                    numbers.setdefault(name, number)
        return numbers

    def _check_class_folders(self, samples: List[Sample], classes: Sequence[str]) -> None:
        """An image in a folder named after a class must carry that class's label."""
        index = {name: i for i, name in enumerate(classes)}
        wrong = [s for s in samples
                 if index.get(Path(s.path).parent.name, s.label) != s.label]
        if not wrong:
            return
        lines = self._line_numbers()
        examples = '; '.join(
            f'line {lines.get(s.path, "?")}: {s.path} is in folder '
            f'{Path(s.path).parent.name!r} but has label {s.label} ({classes[s.label]!r})'
            for s in wrong[:5])
        raise SplitListError(
            f'{self.ann_file}: {len(wrong)} image(s) sit in a class folder that disagrees with '
            f'their label under classes={list(classes)}: {examples}. The class folders and the '
            'configured classes (their names or order) do not match: fix `classes` in the config '
            '(or meta/classes.txt) or re-prepare the split.')

    def _bad_images(self, paths: List[str]) -> Dict[str, str]:
        """``{path: reason}`` of the images to leave out; raises for a missing file unless
        ``skip_bad_images``."""
        if self.skip_bad_images:
            return find_bad_images(paths)
        missing = [path for path in paths if not osp.isfile(path)]
        if missing:
            lines = self._line_numbers()
            listed = {osp.join(self.img_prefix, name): name for name in lines}
            examples = '; '.join(f'line {lines.get(listed.get(path, ""), "?")}: {path}'
                                 for path in missing[:5])
            raise SplitFileNotFoundError(
                f'{self.ann_file}: {len(missing)} listed image(s) do not exist ({examples}). '
                'Check data_root / data_prefix, re-prepare the split, or pass '
                '--skip-bad-images to leave missing and unreadable images out.')
        return {}
