#!/usr/bin/env python
"""Cross-validate a config: ``python tools/kfold.py CONFIG --folds fold1 fold2 [options]``.

Trains and tests every fold with the same code as tools/train.py and tools/test.py, then writes
<work-dir>/kfold.md and kfold.json (every test metric per fold, mean, std). See
``python tools/kfold.py -h`` and hifuse_mm/cli/kfold.py.
"""
from hifuse_mm.cli.kfold import kfold_main

if __name__ == '__main__':
    kfold_main()
