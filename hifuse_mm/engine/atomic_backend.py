"""``hifuse_atomic_local``: mmengine's local file backend with atomic writes.

mmengine's ``LocalBackend.put`` opens the final path and writes into it, so a kill while a
checkpoint is being written leaves a truncated file under the real name. This backend, a
subclass registered in mmengine's file backends under its own name (``local`` stays
mmengine's), writes through :func:`hifuse_mm.engine.atomic_io.atomic_write_bytes`: the old
complete file or the new complete one, never a torn one. Select it with
``backend_args=dict(backend='hifuse_atomic_local')``; a
:class:`~hifuse_mm.engine.runner.HiFuseRunner` and the
:class:`~hifuse_mm.engine.hooks.CrashSafeCheckpointHook` save local checkpoints with it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Union

from mmengine.fileio.backends import LocalBackend, register_backend

from .atomic_io import atomic_write_bytes, atomic_write_text

#: The backend's registered name (``backend_args=dict(backend=ATOMIC_LOCAL_BACKEND)``).
ATOMIC_LOCAL_BACKEND = 'hifuse_atomic_local'


@register_backend(ATOMIC_LOCAL_BACKEND)
class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` whose ``put`` / ``put_text`` replace the file atomically."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        atomic_write_text(filepath, obj, encoding)


def is_local_path(path: Any) -> bool:
    """Whether mmengine would write ``path`` with its local backend (no ``scheme://`` prefix)."""
    return '://' not in str(path)


def atomic_backend_args(path: Any, file_client_args: Optional[dict] = None,
                        backend_args: Optional[dict] = None) -> Optional[Dict[str, Any]]:
    """``backend_args`` that write ``path`` atomically: the caller's choice when it made one
    (or chose a file client), else this backend for a local path."""
    if backend_args is not None or file_client_args is not None or not is_local_path(path):
        return backend_args
    return dict(backend=ATOMIC_LOCAL_BACKEND)
