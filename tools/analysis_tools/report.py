#!/usr/bin/env python
"""One self-contained HTML evaluation report of one or more runs.

    python tools/analysis_tools/report.py RUN_DIR [RUN_DIR ...] [--out report.html] [--force]
        [--title T] [--labels NAME ...] [--failures N] [--no-cam] [--device cpu]

RUN_DIR: a tools/test.py report folder or work dir, a tools/kfold.py or tools/seeds.py work dir
(what results_table.py takes). Sections: Data (split flow, per-split class counts, split.json,
split audit), Results (metrics with 95% intervals, per-class table, confusion matrix, ROC / PR,
reliability before / after temperature scaling, operating points, validation-chosen
thresholds; for several runs the comparison table and paired tests), Failure analysis (most
confident errors, least confident correct cases, Grad-CAM overlays with the cam extra), Run
facts (config, seed, checksums, versions, device, training time, commands) and the CLAIM 2024 /
TRIPOD+AI checklist. Images are embedded; the file opens offline. See docs/report.md and
hifuse_mm/cli/report.py.
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    from hifuse_mm.cli.report import report_main

    return report_main(argv)


if __name__ == '__main__':
    sys.exit(main())
