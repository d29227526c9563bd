"""Crash-safe file writes: a file is never seen half written under its real name.

:func:`atomic_write_bytes` writes the bytes to a temporary file in the same folder, flushes
and ``fsync``-s it, and only then puts it under its name with ``os.replace`` (atomic on POSIX
and Windows); the folder is synced too. A kill at any moment leaves either the old complete
file or the new complete one (plus, at worst, a hidden ``.<name>.tmp-<pid>-<random>`` file,
removed by the next write of that name). :func:`atomic_open` is ``open`` whose text writes
go that way.

A leaf module (standard library only). The checkpoints and ``last_checkpoint`` of a
:class:`~hifuse_mm.engine.runner.HiFuseRunner` run are written through it (the
``hifuse_atomic_local`` backend of :mod:`~hifuse_mm.engine.atomic_backend` and
``CrashSafeCheckpointHook``); so are checkpoint signatures and converted weights.
"""
from __future__ import annotations

import builtins
import io
import os
import secrets
from pathlib import Path
from typing import IO, Any, Optional, Union

PathLike = Union[str, Path]
_TMP_MARK = '.tmp-'


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but not ours (EPERM)
        return True
    return True


def _remove_stale_temporaries(target: Path) -> None:
    """Delete temporaries of ``target`` left by processes that died while writing it."""
    for tmp in target.parent.glob(f'.{target.name}{_TMP_MARK}*'):
        try:
            pid = int(tmp.name[len(f'.{target.name}{_TMP_MARK}'):].split('-', 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            tmp.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    tmp = target.with_name(f'.{target.name}{_TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}')
    try:
        with builtins.open(tmp, 'wb') as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


def atomic_write_text(path: PathLike, text: str, encoding: str = 'utf-8') -> None:
    """:func:`atomic_write_bytes` for text."""
    atomic_write_bytes(path, text.encode(encoding))


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
