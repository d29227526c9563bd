"""Walk a list of image files in batches for the tools: unreadable files are recorded, not fatal.

``tools/infer.py`` and ``tools/visualization/vis_cam.py`` read folders that may hold a broken
file or two; each such file is kept in ``failures`` with its error while the rest go on.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, TextIO, Tuple

from mmengine.utils import ProgressBar

from ..utils.file_names import printable_name
from .images import ImageReadError
from .preprocess import ImagePreprocessor, InputSizeError, PreparedImage


@dataclass
class ReadFailure:
    """A file that could not be used, and why."""

    path: Path
    error: str


def prepared_batches(preprocessor: ImagePreprocessor, paths: Sequence[Path], batch_size: int,
                     failures: List[ReadFailure],
                     progress: bool = True) -> Iterator[List[Tuple[Path, PreparedImage]]]:
    """Yield batches of ``(path, prepared image)``; unreadable files go to ``failures``.

    Args:
        preprocessor: Reads and transforms the files.
        paths: Image files.
        batch_size: Files per batch (a batch may be smaller when files fail).
        failures: List that collects :class:`ReadFailure` entries.
        progress: Show a progress bar (on stderr) over the files.
    """
    if batch_size < 1:
        raise ValueError(f'batch size must be >= 1, got {batch_size}')
    bar = ProgressBar(len(paths), file=sys.stderr) if progress and paths else None
    for start in range(0, len(paths), batch_size):
        batch = []
        for path in paths[start:start + batch_size]:
            try:
                batch.append((path, preprocessor.prepare(preprocessor.read(path), path=path)))
            except (ImageReadError, InputSizeError) as err:
                failures.append(ReadFailure(path, str(err)))
            except Exception as err:  # noqa: BLE001  (a transform failing on odd content)
                failures.append(ReadFailure(path, f'{path}: {type(err).__name__}: {err}'))
        if batch:
            yield batch
        if bar is not None:
            bar.update(len(paths[start:start + batch_size]))
    if bar is not None:
        sys.stderr.write('\n')


def report_failures(failures: Sequence[ReadFailure], total: int,
                    stream: Optional[TextIO] = None) -> None:
    """Print a warning listing the files that could not be read (default stream: stderr)."""
    if not failures:
        return
    stream = sys.stderr if stream is None else stream
    stream.write(f'warning: {len(failures)} of {total} file(s) could not be read and were '
                 'skipped:\n')
    for failure in failures:
        stream.write(f'  {printable_name(failure.error)}\n')
