"""Kvasir v1 / v2 (8 endoscopy classes): the registered dataset and its class names.

Classes are the sorted class folder names of the download (the papers' label order). The 2-fold
protocol and the official layout: :mod:`hifuse_mm.datasets.prepare.kvasir`.
"""
from __future__ import annotations

from typing import Tuple

from mmpretrain.registry import DATASETS

from .base import MedicalImageDataset

KVASIR_CLASSES: Tuple[str, ...] = (
    'dyed-lifted-polyps', 'dyed-resection-margins', 'esophagitis', 'normal-cecum',
    'normal-pylorus', 'normal-z-line', 'polyps', 'ulcerative-colitis')


@DATASETS.register_module()
class Kvasir(MedicalImageDataset):
    """Kvasir v1/v2 endoscopy images, 8 classes (sorted folder names)."""

    METAINFO = {'classes': KVASIR_CLASSES}
    CONVERTER = 'tools/dataset_converters/prepare_kvasir.py'
