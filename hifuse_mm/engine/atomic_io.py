"""Crash-safe file writes for training: checkpoints and ``last_checkpoint`` are never torn.

mmengine 0.10.7 writes a checkpoint by opening the final path and writing into it
(``LocalBackend.put``), and the ``last_checkpoint`` pointer with a plain ``open(..., 'w')``
(``CheckpointHook``). A kill during either leaves a truncated file under the real name, and a
truncated ``last_checkpoint`` breaks ``--resume``. :func:`install` makes both atomic: the bytes
go to a temporary file in the same folder, are flushed and ``fsync``-ed, and only then does
``os.replace`` (atomic on POSIX and Windows) put the file under its name; the folder is synced
too. A kill at any moment leaves either the old complete file or the new complete one (plus,
at worst, a hidden ``.<name>.tmp-<pid>-<random>`` file, removed by the next write of that name).

mmengine's ``CheckpointHook`` also deletes the checkpoint that falls out of ``max_keep_ckpts``
(and the previous best checkpoint) *before* it writes the new one, so with
``max_keep_ckpts=1`` a kill during the save leaves no checkpoint at all, and ``last_checkpoint``
naming a deleted file. :func:`install` defers those deletions until the new checkpoint and
the pointer are on disk.

It also signs every checkpoint a run saves (:func:`hifuse_mm.engine.checkpoint_trust.
sign_checkpoint`), which is how ``--resume`` recognises our own checkpoints.
"""
from __future__ import annotations

import builtins
import io
import os
import secrets
from pathlib import Path
from typing import IO, Any, Callable, Optional, Union

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


def _local_put(self: Any, obj: bytes, filepath: PathLike) -> None:
    atomic_write_bytes(filepath, obj)


def _local_put_text(self: Any, obj: str, filepath: PathLike, encoding: str = 'utf-8') -> None:
    atomic_write_text(filepath, obj, encoding)


def _signing_save(original: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``Runner.save_checkpoint``: sign the file it wrote (main process, local paths)."""

    def save_checkpoint(self: Any, out_dir: str, filename: str, *args: Any,
                        **kwargs: Any) -> None:
        original(self, out_dir, filename, *args, **kwargs)
        from mmengine.dist import is_main_process

        from .checkpoint_trust import remove_orphan_signatures, sign_checkpoint
        path = Path(out_dir) / filename
        if not is_main_process() or '://' in str(out_dir) or not path.is_file():
            return
        if sign_checkpoint(path) is None:
            self.logger.warning(f'could not create the checkpoint signing key; {path} is not '
                                'signed, so a --resume that needs full unpickling will ask '
                                'for --trust-checkpoint')
        remove_orphan_signatures(path.parent)

    save_checkpoint.__wrapped__ = original  # type: ignore[attr-defined]
    save_checkpoint._hifuse_signing = True  # type: ignore[attr-defined]
    return save_checkpoint


def _deferred_removals(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a ``CheckpointHook`` save method: old checkpoints are deleted after the new one is
    saved and ``last_checkpoint`` points at it, not before."""

    def save(self: Any, *args: Any, **kwargs: Any) -> Any:
        backend = self.file_backend
        if getattr(backend, '_hifuse_pending', None) is not None:  # nested: the outer call
            return original(self, *args, **kwargs)                # removes
        pending: list = []
        backend._hifuse_pending = pending
        backend.remove = lambda path: pending.append((type(backend).remove, path))
        backend.rmtree = lambda path: pending.append((type(backend).rmtree, path))
        try:
            result = original(self, *args, **kwargs)
        finally:
            del backend.remove, backend.rmtree, backend._hifuse_pending
        keep = {str(p) for p in (getattr(self, 'last_ckpt', None),
                                 getattr(self, 'best_ckpt_path', None),
                                 *(getattr(self, 'best_ckpt_path_dict', None) or {}).values())
                if p}
        for remove, path in pending:
            if str(path) in keep:
                continue
            remove(backend, path)
            from .checkpoint_trust import signature_path
            if '://' not in str(path):
                signature_path(path).unlink(missing_ok=True)
        return result

    save.__wrapped__ = original  # type: ignore[attr-defined]
    save._hifuse_deferred = True  # type: ignore[attr-defined]
    return save


def install() -> None:
    """Make mmengine's local file writes and ``last_checkpoint`` atomic; sign checkpoints."""
    from mmengine.fileio.backends import LocalBackend
    from mmengine.hooks import checkpoint_hook
    from mmengine.runner import Runner

    LocalBackend.put = _local_put
    LocalBackend.put_text = _local_put_text
    # CheckpointHook writes `last_checkpoint` with open(); give that module an atomic open.
    checkpoint_hook.open = atomic_open  # type: ignore[attr-defined]
    hook = checkpoint_hook.CheckpointHook
    for name in ('_save_checkpoint_with_step', '_save_best_checkpoint'):
        if not getattr(getattr(hook, name), '_hifuse_deferred', False):
            setattr(hook, name, _deferred_removals(getattr(hook, name)))
    if not getattr(Runner.save_checkpoint, '_hifuse_signing', False):
        Runner.save_checkpoint = _signing_save(Runner.save_checkpoint)
