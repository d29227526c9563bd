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

Also checked, as the converters check (docs/data_and_splits.md):

* when ``data_root/meta/split.json`` exists (a converter wrote the folder), every file it
  records still has its SHA-256, so lists changed or mixed (an interrupted re-run) are refused
  (``verify_checksums=False`` skips this, for lists edited on purpose);
* every entry stays inside the folder the paths are relative to (``data_root``, or
  ``data_root/data_prefix``): absolute paths, ``..`` and symlinks that lead outside it are
  refused unless ``allow_outside_root=True``; the converters' ``source`` link to the download
  (``image_root`` in ``split.json``) counts as inside;
* no image is listed twice in the list, and none is also listed in a sibling split
  (``train.txt`` / ``val.txt`` / ``test.txt`` in the same folder); ``allow_duplicates=True``
  turns this into a warning.

Errors name the list and the line; the text of a malformed line is never shown (listed image
paths that are missing or in the wrong class folder are, escaped and cut short).
"""
from __future__ import annotations

import logging
import os.path as osp
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmengine.logging import print_log
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

from ..utils.classes_file import read_classes_file
from .bad_images import SkippedImage, find_bad_images, format_skipped
from .splits import (CLASSES_TXT, META, META_BACKUP, SOURCE_LINK, SPLIT_JSON, SPLITS,
                     DatasetError, Sample, changed_index_files, image_key, is_within,
                     outside_reason, read_index, read_split_record, repeated_lines, shown)

#: The converters by the ``dataset`` name they record in ``split.json``.
_CONVERTERS = {name: f'tools/dataset_converters/prepare_{name}.py'
               for name in ('isic2018', 'kvasir', 'covid19ct')}
#: How many offending lines an error names.
_SHOWN = 5


class SplitListError(DatasetError, ValueError):
    """A split list, its classes or its images are wrong; the message says where and what to do.
    (A ``ValueError`` as before; a ``DatasetError``, so the tools show it without a traceback.)
    """


class SplitFileNotFoundError(DatasetError, FileNotFoundError):
    """A split list or a listed image does not exist."""


def _brief(names: Sequence[str], limit: int = 12) -> str:
    """Class names for a message (each cut short; at most ``limit``)."""
    text = ', '.join(repr(shown(str(n), 40)) for n in list(names)[:limit])
    more = f', ... ({len(names)} in all)' if len(names) > limit else ''
    return f'[{text}{more}]'


def _read_class_file(path: Union[str, Path], what: str) -> List[str]:
    """A ``classes.txt``; errors name the file (never its text)."""
    try:
        return read_classes_file(path)
    except FileNotFoundError:
        raise SplitFileNotFoundError(f'{what} {path} not found; give the class names as a list '
                                     'or the path of a classes.txt (one name per line)') from None
    except (OSError, UnicodeDecodeError) as err:
        reason = 'not UTF-8 text' if isinstance(err, UnicodeDecodeError) else (
            err.strerror or type(err).__name__)
        raise SplitListError(f'{what} {path} cannot be read ({reason}); a classes.txt is UTF-8 '
                             'text with one class name per line') from None


@DATASETS.register_module()
class MedicalImageDataset(CustomDataset):
    """A split of a prepared medical image folder.

    Args:
        data_root: The prepared folder.
        ann_file: The split list, relative to ``data_root`` (``'meta/train.txt'``).
        classes: Class names in label order (or the path of a classes.txt, as in MMPretrain);
            default: the official ones (subclasses) or ``data_root/meta/classes.txt``.
        skip_bad_images: Check every listed image when the dataset is built and leave out the
            missing or undecodable ones (kept in :attr:`skipped_images`) instead of stopping.
        allow_outside_root: Accept list entries that leave the dataset folder (absolute paths,
            ``..``, symlinks that lead outside it); only for lists you trust.
        allow_duplicates: Only warn (instead of stopping) when an image is listed twice in the
            list or also in a sibling split list.
        verify_checksums: Check the lists against ``meta/split.json`` when the folder has one
            (``False``: for lists edited on purpose after the converter wrote them).
        **kwargs: Passed on to :class:`mmpretrain.datasets.CustomDataset` (``pipeline``,
            ``test_mode``, ``metainfo``, ...).
    """

    METAINFO: dict = {}
    #: The converter that writes this dataset's folder (named in error messages).
    CONVERTER: str = 'tools/dataset_converters/prepare_<dataset>.py'

    def __init__(self,
                 data_root: str = '',
                 ann_file: str = '',
                 classes: Optional[Union[str, Sequence[str]]] = None,
                 skip_bad_images: bool = False,
                 allow_outside_root: bool = False,
                 allow_duplicates: bool = False,
                 verify_checksums: bool = True,
                 **kwargs) -> None:
        self.skip_bad_images = skip_bad_images
        self.allow_outside_root = allow_outside_root
        self.allow_duplicates = allow_duplicates
        self.verify_checksums = verify_checksums
        #: Images left out by ``skip_bad_images``.
        self.skipped_images: List[SkippedImage] = []
        if not ann_file:
            raise SplitListError(f'{type(self).__name__} needs ann_file, e.g. '
                                 "ann_file='meta/train.txt' (relative to data_root)")
        if isinstance(classes, str):
            # MMPretrain reads a string as the path of a class file: do the same, here, so
            # that the official order below is compared with the names, not the path.
            classes = _read_class_file(osp.expanduser(classes), 'classes=')
        official = self.METAINFO.get('classes')
        if classes is not None and official is not None \
                and tuple(classes) != tuple(official):
            raise SplitListError(
                f'{type(self).__name__}: classes={_brief(classes)} differs from the official '
                f'order {list(official)}; remove classes= from the config or use '
                'MedicalImageDataset for a custom class list')
        if classes is None and official is None:
            class_file = osp.join(data_root, CLASSES_TXT)
            if osp.isfile(class_file):
                classes = _read_class_file(class_file, 'The class list')
        super().__init__(data_root=data_root, ann_file=ann_file, classes=classes, **kwargs)

    def _hint(self) -> str:
        return (f'Prepare the dataset with `python {self.CONVERTER} SRC {self.data_root or "OUT"}'
                f' --protocol ...` (see docs/data_and_splits.md), or point '
                'data_root at a prepared folder.')

    def load_data_list(self) -> List[dict]:
        """Read the split list; check it against the classes, ``split.json`` and its siblings."""
        if not osp.isfile(self.ann_file):
            backup = osp.join(self.data_root, META_BACKUP)
            if osp.isdir(backup) and not osp.isdir(osp.join(self.data_root, META)):
                raise SplitFileNotFoundError(
                    f'Split list {self.ann_file} not found: a converter run was interrupted '
                    f'while it swapped in a new split; the previous one is in {backup}. Run the '
                    f'converter again (it puts it back first), or rename {backup} to '
                    f'{osp.join(self.data_root, META)}.')
            raise SplitFileNotFoundError(
                f'Split list {self.ann_file} not found. {self._hint()}')
        classes = self.CLASSES
        class_file = osp.join(self.data_root, CLASSES_TXT)
        if classes is not None and osp.isfile(class_file):
            listed = _read_class_file(class_file, 'The class list')
            if listed != list(classes):
                raise SplitListError(
                    f'{class_file} lists {_brief(listed)} but the config/dataset uses '
                    f'{_brief(classes)}: the labels in {self.ann_file} would be misread. Fix the '
                    'config\'s classes or re-prepare the data.')
        record = self._split_record()
        num_classes = None if classes is None else len(classes)
        samples = self._read(self.ann_file, num_classes)
        if not samples:
            raise SplitListError(f'Split list {self.ann_file} is empty. {self._hint()}')
        if not self.allow_outside_root:
            self._check_inside_root(samples, record)
        self._check_duplicates(samples, num_classes)
        if classes is not None:
            self._check_class_folders(samples, classes)
        paths = [osp.join(self.img_prefix, s.path) for s in samples]
        bad = self._bad_images(paths, samples)
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

    @staticmethod
    def _read(path: str, num_classes: Optional[int]) -> List[Sample]:
        try:
            return read_index(Path(path), num_classes)
        except DatasetError as err:
            raise SplitListError(str(err)) from None

    def _converter_command(self, record: dict) -> str:
        """The command that re-prepares this folder (from what ``split.json`` records)."""
        dataset = record.get('dataset')
        converter = _CONVERTERS.get(dataset, self.CONVERTER) if isinstance(dataset, str) \
            else self.CONVERTER
        options = ''
        if isinstance(record.get('protocol'), str):
            options += f' --protocol {shown(record["protocol"], 40)}'
        if isinstance(record.get('seed'), int):
            options += f' --seed {record["seed"]}'
        return f'python {converter} SRC {self.data_root or "OUT"}{options} --force'

    def _split_record(self) -> Optional[dict]:
        """``split.json`` of ``data_root`` (None: none), its checksums verified unless
        ``verify_checksums=False``."""
        try:
            record = read_split_record(self.data_root)
        except DatasetError as err:
            if not self.verify_checksums:
                return None
            raise SplitListError(f'{err} (Or pass verify_checksums=False to use the lists as '
                                 'they are.)') from None
        if record is None or not self.verify_checksums:
            return record
        problems = changed_index_files(self.data_root, record)
        if problems:
            more = f' (and {len(problems) - _SHOWN} more)' if len(problems) > _SHOWN else ''
            raise SplitListError(
                f'{self.ann_file}: the prepared split in {self.data_root or "."} no longer '
                f'matches its record {SPLIT_JSON}: ' + '; '.join(problems[:_SHOWN]) + more +
                '. The lists were edited or mixed (an interrupted --force re-run of an older '
                f'converter leaves such a mix). Re-prepare it: `{self._converter_command(record)}`'
                ' (same options as before; check a folder with --check OUT). If you edited the '
                'lists on purpose, pass verify_checksums=False (dataset argument).')
        return record

    def _check_inside_root(self, samples: List[Sample], record: Optional[dict]) -> None:
        """Refuse entries that leave the folder they are relative to."""
        base = self.img_prefix or '.'
        roots = [osp.realpath(base)]
        link = osp.join(self.data_root, SOURCE_LINK)
        if record is not None and record.get('image_root') == SOURCE_LINK and osp.islink(link):
            roots.append(osp.realpath(link))
        real_dirs: Dict[str, str] = {}
        bad: List[Tuple[Sample, str]] = []
        for sample in samples:
            reason = outside_reason(sample.path)
            if not reason:
                folder, name = osp.split(osp.join(base, sample.path))
                if folder not in real_dirs:
                    real_dirs[folder] = osp.realpath(folder)
                real = osp.join(real_dirs[folder], name)
                if osp.islink(real):
                    real = osp.realpath(real)
                if not is_within(real, roots):
                    reason = 'a symlink that leads outside it'
            if reason:
                bad.append((sample, reason))
        if bad:
            more = f'; ... {len(bad) - _SHOWN} more' if len(bad) > _SHOWN else ''
            lines = '; '.join(f'line {s.line}: {reason}' for s, reason in bad[:_SHOWN])
            raise SplitListError(
                f'{self.ann_file}: {len(bad)} line(s) name an image outside {base} ({lines}'
                f'{more}). A split list must stay inside the dataset folder: move the images '
                'into it (list them relative to data_root) or re-run the converter; if you trust '
                'this list, pass allow_outside_root=True (dataset argument, e.g. --cfg-options '
                'train_dataloader.dataset.allow_outside_root=True).')

    def _sibling_lists(self, num_classes: Optional[int]) -> Dict[str, List[Sample]]:
        """The other split lists beside this one (``train.txt`` -> ``val.txt``, ``test.txt``)."""
        here = Path(self.ann_file)
        if here.suffix != '.txt' or here.stem not in SPLITS:
            return {}
        siblings = {}
        for split in SPLITS:
            other = here.with_name(f'{split}.txt')
            if split != here.stem and other.is_file():
                siblings[str(other)] = self._read(str(other), num_classes)
        return siblings

    def _check_duplicates(self, samples: List[Sample], num_classes: Optional[int]) -> None:
        """No image twice in this list, and none also in a sibling split."""
        found = [f'line {again.line} repeats line {first.line}'
                 for first, again in repeated_lines(samples)]
        here = {image_key(s.path): s for s in samples}
        for other, listed in self._sibling_lists(num_classes).items():
            for sample in listed:
                mine = here.get(image_key(sample.path))
                if mine is not None:
                    found.append(f'line {mine.line} is also line {sample.line} of {other}')
        if not found:
            return
        more = f'; ... {len(found) - _SHOWN} more' if len(found) > _SHOWN else ''
        what = (f'{self.ann_file}: {len(found)} duplicate listing(s) ({"; ".join(found[:_SHOWN])}'
                f'{more}): an image listed twice counts twice, and one in two splits leaks '
                'between training and evaluation.')
        if self.allow_duplicates:
            print_log(f'allow_duplicates=True: {what}', logger='current', level=logging.WARNING)
            return
        raise SplitListError(f'{what} Remove the duplicates or re-run the converter; pass '
                             'allow_duplicates=True (dataset argument) to use them anyway.')

    def _check_class_folders(self, samples: List[Sample], classes: Sequence[str]) -> None:
        """An image in a folder named after a class must carry that class's label."""
        index = {name: i for i, name in enumerate(classes)}
        wrong = [s for s in samples
                 if index.get(Path(s.path).parent.name, s.label) != s.label]
        if not wrong:
            return
        examples = '; '.join(
            f'line {s.line}: {shown(s.path)} is in folder '
            f'{shown(Path(s.path).parent.name)!r} but has label {s.label} ({classes[s.label]!r})'
            for s in wrong[:_SHOWN])
        raise SplitListError(
            f'{self.ann_file}: {len(wrong)} image(s) sit in a class folder that disagrees with '
            f'their label under classes={_brief(classes)}: {examples}. The class folders and '
            'the configured classes (their names or order) do not match: fix `classes` in the '
            'config (or meta/classes.txt) or re-prepare the split.')

    def _bad_images(self, paths: List[str], samples: List[Sample]) -> Dict[str, str]:
        """``{path: reason}`` of the images to leave out; raises for a missing file unless
        ``skip_bad_images``."""
        if self.skip_bad_images:
            return find_bad_images(paths)
        missing = [(path, s.line) for path, s in zip(paths, samples) if not osp.isfile(path)]
        if missing:
            examples = '; '.join(f'line {line}: {shown(path)}' for path, line in missing[:_SHOWN])
            raise SplitFileNotFoundError(
                f'{self.ann_file}: {len(missing)} listed image(s) do not exist ({examples}). '
                'Check data_root / data_prefix, re-prepare the split, or pass '
                '--skip-bad-images to leave missing and unreadable images out.')
        return {}
