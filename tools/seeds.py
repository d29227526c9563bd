#!/usr/bin/env python
"""Repeat a run over seeds: ``python tools/seeds.py CONFIG --seeds 0 1 2 [options]``.

Trains and tests the config once per seed with the same code as tools/train.py and
tools/test.py, then writes <work-dir>/seeds.md and seeds.json (every test metric per seed,
mean, sd). Resumable: tested seeds are not run again. See ``python tools/seeds.py -h`` and
hifuse_mm/cli/seeds.py.
"""
from hifuse_mm.cli.seeds import seeds_main

if __name__ == '__main__':
    seeds_main()
