#!/usr/bin/env python
"""Prepare the ISIC 2018 Task 3 splits.

    python tools/dataset_converters/prepare_isic2018.py SRC OUT --protocol hemf|hifuse [--seed S]
    python tools/dataset_converters/prepare_isic2018.py --check OUT

Layout, protocols and options: ``--help`` and hifuse_mm/datasets/prepare/isic2018.py; the
shared machinery (checks, output files, ``--check``, ``--force``): hifuse_mm/datasets/prepare/.
"""
import sys

from hifuse_mm.datasets.prepare import isic2018
from hifuse_mm.datasets.prepare.cli import converter_main

if __name__ == '__main__':
    sys.exit(converter_main(isic2018))
