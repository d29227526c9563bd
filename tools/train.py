#!/usr/bin/env python
"""Train a hifuse-mm (MMPretrain) model: ``python tools/train.py CONFIG [options]``.

Same CLI as MMPretrain's tools/train.py; see ``python tools/train.py -h`` and
hifuse_mm/cli/ (the front end) and hifuse_mm/engine/ (config transforms, runs).
"""
from hifuse_mm.cli import train_main

if __name__ == '__main__':
    train_main()
