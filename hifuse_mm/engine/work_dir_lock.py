"""One training per work dir: an OS lock on ``<work_dir>/train.lock`` and a record of its holder.

Two trainings writing into one work dir overwrite each other's checkpoints, ``last_checkpoint``
and best checkpoint. :class:`~hifuse_mm.engine.runner.HiFuseRunner` holds this lock while it
trains (:func:`hold_work_dir`), so a second training into the same work dir stops at once with
a :class:`WorkDirLockedError` naming the process that holds it (pid, host, start time, command)
and what to do.

* The lock is ``fcntl.flock`` on ``train.lock``, which the kernel releases when the process
  ends however it ends (SIGKILL included), so a crashed run never blocks the next one. The file
  also holds a small JSON record of the holder, only used for messages. Dataloader workers and
  other children forked while the lock is held close their copy of it (``os.register_at_fork``),
  so a child that outlives a killed trainer does not keep the work dir locked.
* A record left by a run that ended without releasing the lock (killed, or its host went down)
  is *stale*: the lock is free, so the next training takes it over and logs who held it.
* On a clean end the holder deletes the file (while still holding the lock; whoever opened the
  old file in between notices that it is no longer the one at the path and opens the new one).
* Distributed runs: only global rank 0 takes the lock, and its verdict is broadcast, so the
  ranks of one job (on one or several nodes sharing the work dir) never refuse each other and
  all of them stop when another job holds it.
* A filesystem without ``flock`` support: the record alone decides (a live process on this
  host refuses the work dir); a warning says the lock is not enforced.

Windows has no ``fcntl``: there the lock is not taken (a warning says so). While a live
training on this host holds the work dir, the runner also leaves the config it dumped there as
it is (:func:`live_holder`). Standard library only (mmengine only for the defaults of
:func:`hold_work_dir`, imported when called).
"""
from __future__ import annotations

import errno
import json
import os
import shlex
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Union

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

#: The lock file's name in the work dir.
LOCK_NAME = 'train.lock'
#: Longest text taken from a record for a message (the record is a file anyone may edit).
_MAX_FIELD = 300
#: File descriptors of the locks this process holds (closed in forked children).
_HELD_FDS: set = set()
_FORK_HOOK_REGISTERED = False


class WorkDirLockedError(RuntimeError):
    """Another live training holds the work dir (the message names it and what to do)."""


def _close_held_in_child() -> None:
    """In a forked child: drop the inherited descriptors of the parent's locks. Only this
    process's reference goes; the parent keeps the lock (``flock`` belongs to the open file,
    which stays open in the parent)."""
    for fd in list(_HELD_FDS):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_FDS.clear()


def _register_fork_hook() -> None:
    global _FORK_HOOK_REGISTERED
    if not _FORK_HOOK_REGISTERED and hasattr(os, 'register_at_fork'):
        os.register_at_fork(after_in_child=_close_held_in_child)
        _FORK_HOOK_REGISTERED = True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, not ours (EPERM)
        return True
    return True


def _clean(value: object) -> str:
    """A record field fit for a one-line message: printable characters only, bounded."""
    text = ''.join(ch if ch.isprintable() else '?' for ch in str(value))
    return text if len(text) <= _MAX_FIELD else text[:_MAX_FIELD] + '...'


def own_record() -> Dict[str, object]:
    """The record this process writes into the lock file."""
    argv = getattr(sys, 'orig_argv', None) or [sys.executable, *sys.argv]
    return dict(pid=os.getpid(), host=socket.gethostname(),
                started=time.strftime('%Y-%m-%d %H:%M:%S %z'), command=shlex.join(argv))


def parse_record(data: bytes) -> Optional[Dict[str, object]]:
    """The holder's record from the lock file's bytes; None when missing or not a record."""
    try:
        record = json.loads(data.decode('utf-8'))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get('pid'), int) or \
            isinstance(record.get('pid'), bool):
        return None
    return record


def read_record(path: Union[str, Path]) -> Optional[Dict[str, object]]:
    """The record in the lock file ``path``; None when there is none."""
    try:
        with open(path, 'rb') as stream:
            return parse_record(stream.read(64 * 1024))
    except OSError:
        return None


def live_holder(work_dir: Union[str, Path]) -> Optional[Dict[str, object]]:
    """The record of another process on this host that holds (by its record, not the lock)
    ``work_dir``; None when there is none. Takes no lock: for decisions before
    :meth:`WorkDirLock.acquire` that must not race with it (the config dump)."""
    record = read_record(Path(work_dir) / LOCK_NAME)
    if record is None or record.get('pid') == os.getpid() or not _same_host(record):
        return None
    return record if _pid_alive(int(record['pid'])) else None  # type: ignore[arg-type]


def describe(record: Optional[Dict[str, object]]) -> str:
    """``pid 123 on host h, started ..., command: ...`` (sanitised; the record is untrusted)."""
    if record is None:
        return 'a process whose record in the lock file is missing or unreadable'
    parts = [f"pid {int(record['pid'])} on host {_clean(record.get('host', '?'))}"]
    if record.get('started'):
        parts.append(f"started {_clean(record['started'])}")
    if record.get('command'):
        parts.append(f"command: {_clean(record['command'])}")
    return ', '.join(parts)


def _same_host(record: Dict[str, object]) -> bool:
    return record.get('host') == socket.gethostname()


class WorkDirLock:
    """The training lock of ``work_dir``: :meth:`acquire`, :meth:`release`."""

    def __init__(self, work_dir: Union[str, Path]) -> None:
        self.work_dir = Path(work_dir)
        self.path = self.work_dir / LOCK_NAME
        self._fd: Optional[int] = None
        self._enforced = False

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, warn: Callable[[str], None] = lambda message: None) -> None:
        """Take the lock, or raise :class:`WorkDirLockedError` naming its live holder.

        ``warn`` receives the message about a stale lock taken over, or about a filesystem
        where the lock cannot be enforced.
        """
        if self._fd is not None:
            raise RuntimeError(f'{self.path} is already held by this object')
        self.work_dir.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, 'O_CLOEXEC', 0),
                             0o644)
            except PermissionError:
                raise WorkDirLockedError(
                    f'cannot open the lock file {self.path} (permission denied): the work dir '
                    f'{self.work_dir} may be in use by another account\'s training '
                    f'({describe(read_record(self.path))}). Train into another --work-dir, or, '
                    f'if no such training runs, have {self.path} deleted.') from None
            try:
                enforced = self._lock(fd)
                if enforced and not self._still_at_path(fd):
                    os.close(fd)  # released and deleted meanwhile: lock the new file
                    continue
                previous = parse_record(os.pread(fd, 64 * 1024, 0))
                if not enforced and previous is not None and previous.get('pid') != \
                        os.getpid() and _same_host(previous) and \
                        _pid_alive(int(previous['pid'])):  # type: ignore[arg-type]
                    raise WorkDirLockedError(self._locked_message(previous))
                self._write_record(fd)
            except BaseException:
                os.close(fd)
                raise
            break
        self._fd, self._enforced = fd, enforced
        _HELD_FDS.add(fd)
        _register_fork_hook()
        if not enforced:
            warn(f'the work dir {self.work_dir} cannot be locked here ({self._why_not}); '
                 'make sure no other training writes into it')
        if previous is not None and previous.get('pid') != os.getpid():
            where = ('' if _same_host(previous) else
                     ' (on another host; the lock was free, so it is no longer running)')
            warn(f'took over the work dir {self.work_dir} from a training that stopped without '
                 f'releasing it (killed or crashed?): {describe(previous)}{where}')

    def _lock(self, fd: int) -> bool:
        """flock ``fd`` without waiting: True when locked, False when the filesystem cannot;
        :class:`WorkDirLockedError` when another process holds it."""
        self._why_not = 'no fcntl on this platform'
        if fcntl is None:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise WorkDirLockedError(
                    self._locked_message(parse_record(os.pread(fd, 64 * 1024, 0)))) from None
            self._why_not = f'flock: {os.strerror(err.errno or 0)}'
            return False
        return True

    def _still_at_path(self, fd: int) -> bool:
        try:
            at_path = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (at_path.st_dev, at_path.st_ino) == (mine.st_dev, mine.st_ino)

    @staticmethod
    def _write_record(fd: int) -> None:
        data = json.dumps(own_record()).encode('utf-8')
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        try:
            os.fsync(fd)
        except OSError:
            pass

    def _locked_message(self, record: Optional[Dict[str, object]]) -> str:
        return (f'the work dir {self.work_dir} is in use by another training: '
                f'{describe(record)}. Two trainings in one work dir would overwrite each '
                "other's checkpoints: wait for that one to finish (or stop it), or train into "
                f'another --work-dir. If no such training runs, delete {self.path}.')

    def release(self) -> None:
        """Delete the lock file and let go of the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        _HELD_FDS.discard(fd)
        try:
            if not self._enforced or self._still_at_path(fd):
                self.path.unlink(missing_ok=True)
        except OSError:
            pass
        finally:
            os.close(fd)


@contextmanager
def hold_work_dir(work_dir: Union[str, Path], warn: Callable[[str], None] = lambda m: None,
                  main_process: Optional[bool] = None,
                  broadcast: Optional[Callable[[list], None]] = None) -> Iterator[None]:
    """Hold the training lock of ``work_dir`` inside (see the module docstring).

    Args:
        work_dir: The run's work dir.
        warn: Receives the messages about a stale lock taken over or a lock not enforced.
        main_process: Whether this process takes the lock (default: global rank 0).
        broadcast: ``broadcast(objects)`` replaces the list's items by rank 0's in place
            (default: mmengine's ``broadcast_object_list``, which does nothing outside a
            distributed run).

    Raises:
        WorkDirLockedError: Another live training holds it (in every rank).
    """
    if main_process is None or broadcast is None:
        from mmengine.dist import broadcast_object_list, is_main_process
        main_process = is_main_process() if main_process is None else main_process
        broadcast = broadcast_object_list if broadcast is None else broadcast
    lock = WorkDirLock(work_dir)
    verdict = [None]
    if main_process:
        try:
            lock.acquire(warn)
        except WorkDirLockedError as err:
            verdict[0] = str(err)
    broadcast(verdict)
    if verdict[0] is not None:
        lock.release()
        raise WorkDirLockedError(verdict[0])
    try:
        yield
    finally:
        lock.release()
