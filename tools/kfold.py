#!/usr/bin/env python
"""Cross-validate a config: ``python tools/kfold.py CONFIG --folds fold1 fold2 [options]``.

Trains and tests every fold with the same code as tools/train.py and tools/test.py, then writes
<work-dir>/kfold.md and kfold.json (every test metric per fold, mean, std). See
``python tools/kfold.py -h`` and hifuse_mm/kfold.py.
"""
import hifuse_mm  # noqa: F401  (registers modules, installs the run-safety layer)
from hifuse_mm.kfold import kfold_main

if __name__ == '__main__':
    kfold_main()
