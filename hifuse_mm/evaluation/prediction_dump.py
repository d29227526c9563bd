"""``tools/test.py --out FILE.pkl``: the raw predictions pickled atomically, never over a file.

mmengine's ``DumpResults`` (which MMPretrain's ``--out`` uses) writes with ``mmengine.dump``
straight to the final name: a run killed or out of space while writing leaves a partial pickle
there, and an existing file is replaced. :class:`AtomicDumpResults` is the same metric (same
arguments, same collected results, the same pickle bytes ``mmengine.dump`` makes) with only the
write changed: the pickle is made in memory, written to a hidden temporary file and linked under
the name when complete (:func:`hifuse_mm.utils.atomic_files.atomic_write_bytes`,
``exclusive=True``), so the name holds the whole file or nothing, and an existing file is never
replaced (:class:`FileExistsError`; ``tools/test.py`` refuses an existing ``--out`` before the
run already). Only rank 0 writes, as in mmengine.
"""
from pathlib import Path

from mmengine.evaluator import DumpResults
from mmengine.fileio import dump
from mmengine.logging import print_log
from mmpretrain.registry import METRICS

from ..utils.atomic_files import atomic_write_bytes


@METRICS.register_module()
class AtomicDumpResults(DumpResults):
    """``DumpResults`` that writes its pickle atomically and never over an existing file."""

    def compute_metrics(self, results: list) -> dict:
        atomic_write_bytes(Path(self.out_file_path), dump(results, file_format='pkl'),
                           exclusive=True)
        print_log(f'Results have been saved to {self.out_file_path}.', logger='current')
        return {}
