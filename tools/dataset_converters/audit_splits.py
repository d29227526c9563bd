#!/usr/bin/env python
"""Audit a prepared folder's splits for leaks (exact / near-duplicate images, shared groups).

    python tools/dataset_converters/audit_splits.py DATA_DIR [--groups FILE] [--hash-distance D]

Writes DATA_DIR/meta/audit.json; exits 1 listing every cross-split pair, 2 on bad input.
Needs the ``audit`` extra (imagehash). Details: hifuse_mm/datasets/prepare/audit.py.
"""
import sys

from hifuse_mm.datasets.prepare.audit import main

if __name__ == '__main__':
    sys.exit(main())
