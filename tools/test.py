#!/usr/bin/env python
"""Test a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [options]``.

Same CLI as MMPretrain's tools/test.py; see ``python tools/test.py -h`` and
hifuse_mm/cli/ (the front end) and hifuse_mm/engine/ (config transforms, runs, the report).
"""
from hifuse_mm.cli import test_main

if __name__ == '__main__':
    test_main()
