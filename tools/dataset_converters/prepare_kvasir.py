#!/usr/bin/env python
"""Prepare the Kvasir v1/v2 splits.

    python tools/dataset_converters/prepare_kvasir.py SRC OUT [--seed S]
    python tools/dataset_converters/prepare_kvasir.py --check OUT

Layout, protocols and options: ``--help`` and hifuse_mm/datasets/prepare/kvasir.py; the
shared machinery (checks, output files, ``--check``, ``--force``): hifuse_mm/datasets/prepare/.
"""
import sys

from hifuse_mm.datasets.prepare import kvasir
from hifuse_mm.datasets.prepare.cli import converter_main

if __name__ == '__main__':
    sys.exit(converter_main(kvasir))
