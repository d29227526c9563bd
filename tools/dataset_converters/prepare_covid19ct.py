#!/usr/bin/env python
"""Prepare the COVID19-CT (UCSD-AI4H) splits.

    python tools/dataset_converters/prepare_covid19ct.py SRC OUT --protocol official|random
    python tools/dataset_converters/prepare_covid19ct.py --check OUT

Layout, protocols and options: ``--help`` and hifuse_mm/datasets/prepare/covid19ct.py; the
shared machinery (checks, output files, ``--check``, ``--force``): hifuse_mm/datasets/prepare/.
"""
import sys

from hifuse_mm.datasets.prepare import covid19ct
from hifuse_mm.datasets.prepare.cli import converter_main

if __name__ == '__main__':
    sys.exit(converter_main(covid19ct))
