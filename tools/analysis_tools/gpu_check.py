#!/usr/bin/env python
"""GPU check in one command: parity files on CUDA (fp32), fp16 / bf16 training steps of
HiFuse-T/S/B and HEMF, torch.compile against eager, speed against the authors' code
(bench_vs_authors.py --device cuda --batch 64), peak memory; writes one JSON.

    python tools/analysis_tools/gpu_check.py [--out gpu_check.json] [--shared DIR]
        [--archs ...] [--steps 20] [--skip parity train compile bench]

Without CUDA it prints why, writes {"skipped": ...} and exits 0; exit 1 means a check
failed. Offline setup on a machine without the OpenMMLab packages: docs/gpu.md.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hifuse_mm.analysis.gpu_check import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
