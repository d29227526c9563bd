"""Crash-safe file writes: a file is never seen half written under its real name.

:func:`atomic_write_bytes` writes the bytes to a temporary file in the same folder, flushes
and ``fsync``-s it, and only then puts it under its name (atomic on POSIX and Windows); the
folder is synced too. A kill at any moment leaves either the old complete file (or none) or the
new complete one, plus at worst a hidden ``.<name>.tmp-<pid>-<random>`` file, removed by the
next write of that name.

* ``exclusive=False`` (default) replaces an existing file (``os.replace``);
* ``exclusive=True`` never replaces one: the temporary file is hard-linked to the name, which
  fails with :class:`FileExistsError` if the name exists (also when another process created it
  meanwhile); the user's file stays as it was. On a file system without hard links the name is
  checked and then replaced (a narrow window for a concurrent writer).

A leaf module (standard library only), so that every layer can use it: the checkpoints of
:mod:`hifuse_mm.engine` (re-exported by :mod:`hifuse_mm.engine.atomic_io`), the test report of
:mod:`hifuse_mm.evaluation.report`, the tools' output files.
"""
from __future__ import annotations

import builtins
import errno
import os
import secrets
from pathlib import Path
from typing import Union

PathLike = Union[str, Path]
_TMP_MARK = '.tmp-'
#: errno values of a file system that cannot hard-link (the exclusive write falls back then).
_NO_LINKS = {errno.EPERM, errno.EXDEV, errno.ENOSYS, errno.EMLINK,
             getattr(errno, 'ENOTSUP', errno.EOPNOTSUPP), errno.EOPNOTSUPP}


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


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (new names, renames) to the disk; a no-op where folders cannot
    be opened or synced."""
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


def _publish_new(tmp: Path, target: Path) -> None:
    """Give ``tmp`` the name ``target`` unless that name exists (:class:`FileExistsError`)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, 'exists already; nothing was overwritten',
                              str(target)) from None
    except OSError as err:
        if err.errno not in _NO_LINKS:
            raise
        if target.exists():
            raise FileExistsError(errno.EEXIST, 'exists already; nothing was overwritten',
                                  str(target)) from None
        os.replace(tmp, target)
        return
    tmp.unlink()


def atomic_write_bytes(path: PathLike, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` so that readers see the old file (or none) or the whole new one.

    Args:
        path: The file; its folder is created if needed.
        data: The content.
        exclusive: Refuse to replace an existing file (:class:`FileExistsError`, the file
            untouched) instead of replacing it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    tmp = target.with_name(f'.{target.name}{_TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}')
    try:
        with builtins.open(tmp, 'xb') as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if exclusive:
            _publish_new(tmp, target)
        else:
            os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(target.parent)


def atomic_write_text(path: PathLike, text: str, encoding: str = 'utf-8', *,
                      exclusive: bool = False) -> None:
    """:func:`atomic_write_bytes` for text (no newline translation: ``\\n`` stays ``\\n``)."""
    atomic_write_bytes(path, text.encode(encoding), exclusive=exclusive)

