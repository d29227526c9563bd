"""``BadImageReportHook``: list every image ``--skip-bad-images`` left out, at the end of a run.

The datasets log what they leave out when they are built (:mod:`hifuse_mm.datasets.bad_images`),
which is easy to miss at the top of a long log. At the end of the run this hook logs the whole
list again, one line per file, and writes it to ``<log_dir>/skipped_images.txt``.
"""
from __future__ import annotations

import logging
import os
from typing import Any, List

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop
from mmpretrain.registry import HOOKS

from ...datasets.bad_images import SkippedImage, format_skipped

REPORT_FILE = 'skipped_images.txt'


def skipped_in_run(runner: Any) -> List[SkippedImage]:
    """Images skipped by the datasets of the runner's built loops (each file once)."""
    seen, skipped = set(), []
    for name in ('train', 'val', 'test'):
        loop = getattr(runner, f'_{name}_loop', None)
        if not isinstance(loop, BaseLoop):
            continue
        for item in getattr(loop.dataloader.dataset, 'skipped_images', None) or []:
            if (item.path, item.source) not in seen:
                seen.add((item.path, item.source))
                skipped.append(item)
    return skipped


@HOOKS.register_module()
class BadImageReportHook(Hook):
    """Log (and write to ``skipped_images.txt``) every skipped image after the run."""

    priority = 'VERY_LOW'

    def after_run(self, runner: Any) -> None:
        skipped = skipped_in_run(runner)
        if not skipped or not is_main_process():
            return
        lines = format_skipped(skipped)
        path = os.path.join(runner.log_dir, REPORT_FILE)
        with open(path, 'w') as stream:
            stream.write('\n'.join(lines) + '\n')
        runner.logger.log(logging.WARNING, f'{len(skipped)} bad image(s) were skipped '
                          f'(--skip-bad-images), also listed in {path}:\n  ' +
                          '\n  '.join(lines))
