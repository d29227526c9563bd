"""ISIC 2018 Task 3 (HAM10000): the registered dataset and its class names.

Class names and label order are the challenge ground-truth CSV's columns. The split protocols
and the official layout: :mod:`hifuse_mm.datasets.prepare.isic2018`.
"""
from __future__ import annotations

from typing import Tuple

from mmpretrain.registry import DATASETS

from .base import MedicalImageDataset

ISIC2018_CLASSES: Tuple[str, ...] = ('MEL', 'NV', 'BCC', 'AKIEC', 'BKL', 'DF', 'VASC')


@DATASETS.register_module()
class ISIC2018(MedicalImageDataset):
    """ISIC 2018 Task 3 skin lesions, 7 classes in the challenge CSV's column order."""

    METAINFO = {'classes': ISIC2018_CLASSES}
    CONVERTER = 'tools/dataset_converters/prepare_isic2018.py'
