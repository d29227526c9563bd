"""Crash-safe file writes: a file is never seen half written under its real name.

:func:`atomic_write_bytes` writes the bytes to a temporary file in the same folder, flushes
and ``fsync``-s it, and only then puts it under its name with ``os.replace`` (atomic on POSIX
and Windows); the folder is synced too. A kill at any moment leaves either the old complete
file or the new complete one (plus, at worst, a hidden ``.<name>.tmp-<pid>-<random>`` file,
removed by the next write of that name). :func:`atomic_open` is ``open`` whose text writes
go that way.

:func:`atomic_write_bytes` and :func:`atomic_write_text` are those of the leaf module
:mod:`hifuse_mm.utils.atomic_files` (re-exported here). The checkpoints and ``last_checkpoint``
of a :class:`~hifuse_mm.engine.runner.HiFuseRunner` run are written through it (the
``hifuse_atomic_local`` backend of :mod:`~hifuse_mm.engine.atomic_backend` and
``CrashSafeCheckpointHook``); so are checkpoint signatures and converted weights.
"""
from __future__ import annotations

import builtins
import io
from pathlib import Path
from typing import IO, Any, Optional

# The leaf functions live in hifuse_mm.utils.atomic_files (usable below the engine layer too);
# re-exported here under their old names.
from ..utils.atomic_files import (_TMP_MARK, PathLike, _pid_alive,  # noqa: F401
                                  _remove_stale_temporaries, atomic_write_bytes,
                                  atomic_write_text, fsync_folder)


class _AtomicTextWriter(io.StringIO):
    """What :func:`atomic_open` returns for text writes: committed when closed without error."""

    def __init__(self, path: PathLike, encoding: Optional[str]) -> None:
        super().__init__()
        self._path, self._encoding = path, encoding or 'utf-8'
        self._aborted = False

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        self._aborted = exc_type is not None
        super().__exit__(exc_type, *rest)

    def close(self) -> None:
        if not self.closed and not self._aborted:
            atomic_write_text(self._path, self.getvalue(), self._encoding)
        super().close()


def atomic_open(file: Any, mode: str = 'r', *args: Any, **kwargs: Any) -> IO:
    """``open`` whose plain text writes (``'w'``, used as a context manager) are atomic."""
    if mode in ('w', 'wt') and not args and isinstance(file, (str, Path)):
        return _AtomicTextWriter(file, kwargs.get('encoding'))
    return builtins.open(file, mode, *args, **kwargs)
