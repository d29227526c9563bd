"""COVID19-CT (UCSD-AI4H COVID-CT): the registered dataset and its class names.

Classes: COVID = 0, NonCOVID = 1 (the UCSD baseline's order). The split protocols and the
official layout: :mod:`hifuse_mm.datasets.prepare.covid19ct`.
"""
from __future__ import annotations

from typing import Tuple

from mmpretrain.registry import DATASETS

from .base import MedicalImageDataset

COVID19CT_CLASSES: Tuple[str, ...] = ('COVID', 'NonCOVID')


@DATASETS.register_module()
class COVID19CT(MedicalImageDataset):
    """UCSD-AI4H COVID-CT, 2 classes: COVID, NonCOVID."""

    METAINFO = {'classes': COVID19CT_CLASSES}
    CONVERTER = 'tools/dataset_converters/prepare_covid19ct.py'
