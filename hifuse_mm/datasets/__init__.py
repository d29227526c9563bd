"""Datasets: the registered medical datasets, their split converters and the demo generator.

Importing this package registers ``MedicalImageDataset``, ``ISIC2018``, ``Kvasir`` and
``COVID19CT`` in MMPretrain's ``DATASETS``. :func:`make_demo_dataset` writes the synthetic demo
dataset. The converters' shared machinery is :mod:`hifuse_mm.datasets.splits`.
"""
from .base import MedicalImageDataset
from .covid19ct import COVID19CT, COVID19CT_CLASSES
from .demo import DEMO_CLASSES, make_demo_dataset, read_classes
from .isic2018 import ISIC2018, ISIC2018_CLASSES
from .kvasir import KVASIR_CLASSES, Kvasir
from .splits import DatasetError, SplitPlan, check_prepared, write_split

__all__ = [
    'COVID19CT', 'COVID19CT_CLASSES', 'DEMO_CLASSES', 'DatasetError', 'ISIC2018',
    'ISIC2018_CLASSES', 'KVASIR_CLASSES', 'Kvasir', 'MedicalImageDataset', 'SplitPlan',
    'check_prepared', 'make_demo_dataset', 'read_classes', 'write_split'
]
