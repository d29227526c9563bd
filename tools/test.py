#!/usr/bin/env python
"""Test a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [options]``.

Same CLI as MMPretrain's tools/test.py; see ``python tools/test.py -h`` and hifuse_mm/cli.py.
"""
import hifuse_mm  # noqa: F401  (registers modules, installs the run-safety layer)
from hifuse_mm.cli import test_main

if __name__ == '__main__':
    test_main()
