"""Datasets: the registered medical datasets, their split converters and the demo generator.

Importing this package registers ``MedicalImageDataset``, ``ISIC2018``, ``Kvasir`` and
``COVID19CT`` in MMPretrain's ``DATASETS``, and ``CheckedLoadImageFromFile``
(:mod:`hifuse_mm.datasets.loading`) in its ``TRANSFORMS``. :func:`make_demo_dataset` writes the
synthetic demo dataset. The prepared folder layout and its reading are
:mod:`hifuse_mm.datasets.splits`; the offline converters that write it are
:mod:`hifuse_mm.datasets.prepare`.
"""
from .bad_images import SkippedImage, find_bad_images
from .base import MedicalImageDataset
from .covid19ct import COVID19CT, COVID19CT_CLASSES
from .demo import DEMO_CLASSES, make_demo_dataset
from .isic2018 import ISIC2018, ISIC2018_CLASSES
from .image_decoding import BadImageError, decode_image_bytes, read_image_file
from .kvasir import KVASIR_CLASSES, Kvasir
from .loading import CheckedLoadImageFromFile
from .prepare import SplitPlan, check_prepared, write_split
from .splits import DatasetError, read_classes

__all__ = [
    'BadImageError', 'COVID19CT', 'COVID19CT_CLASSES', 'CheckedLoadImageFromFile',
    'DEMO_CLASSES', 'DatasetError', 'ISIC2018', 'ISIC2018_CLASSES', 'KVASIR_CLASSES', 'Kvasir',
    'MedicalImageDataset', 'SkippedImage', 'SplitPlan', 'check_prepared', 'decode_image_bytes',
    'find_bad_images', 'make_demo_dataset', 'read_classes', 'read_image_file', 'write_split'
]
