"""Safe checkpoint loading: weights-only by default, full unpickling only when trusted.

:func:`load_checkpoint_file` is the one local loader of the project; :func:`load_from_local`
is the same as an mmengine ``CheckpointLoader`` scheme for local paths, and
:mod:`~hifuse_mm.engine.checkpoint_schemes` holds the loaders of every other scheme mmengine
knows (``http(s)://``, ``torchvision://``, ``open-mmlab://``, ``mmcls://``, ``s3://``,
``pavi://``): each fetches the bytes with that scheme's own transport and loads them here, by
:func:`load_fetched_checkpoint`, with the same policy. A
:class:`~hifuse_mm.engine.runner.HiFuseRunner` uses them for everything its runs load
(``load_from`` and ``tools/test.py``, ``--resume``, ``init_cfg=dict(type='Pretrained')``),
and :func:`hifuse_mm.engine.install` (called by our tools) makes them mmengine's loaders for
the whole process (:mod:`~hifuse_mm.engine.mmengine_patches`). The API
(:mod:`hifuse_mm.apis`) and the converters call :func:`load_checkpoint_file` directly (local
files only: a URL there is a clear error).

Every checkpoint is first read with ``torch.load(weights_only=True)`` plus the allowlist of
:mod:`hifuse_mm.engine.checkpoint_allowlist` (enough for our own training checkpoints,
published ones and converted released weights). Only if that is refused because the pickle
names other globals does the trust rule of :mod:`hifuse_mm.engine.checkpoint_trust` decide:
full unpickling for ``--trust-checkpoint``; for the resume of a local checkpoint our runs
signed, unpickling of the very bytes whose signature was checked (read once, kept in memory)
with the restricted unpickler (no globals that run code, whatever the signature says);
otherwise :class:`UntrustedCheckpointError`, and nothing from the file has run. Remote
checkpoints are never trusted by signature: only ``--trust-checkpoint`` unpickles them fully.
"""
from __future__ import annotations

import io
import logging
import os
import pickle
import re
from pathlib import Path
from typing import IO, Any, List, Optional, Union

import torch

from .checkpoint_allowlist import (RefusedAttributeError, RefusedGlobalError,
                                   allowed_global_names, allowed_globals, restricted_pickle,
                                   signed_checkpoint_globals)
from .checkpoint_trust import in_resume, may_unpickle_fully, trusted_explicitly

_REFUSAL = re.compile(r'(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)'
                      r'|unrecognized function (.+?)(?: which|$)'
                      r'|Can only (?:build|create new object)', re.MULTILINE)
#: A name that starts with a URL scheme (``https://``, ``s3://``, ``open-mmlab://``,
#: mmengine's ``<backend>:s3://``).
_SCHEME = re.compile(r'^[A-Za-z][A-Za-z0-9+.\-]*:(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//')


class UntrustedCheckpointError(RuntimeError):
    """The checkpoint needs full unpickling (which can run code) and is not trusted.

    Attributes:
        path: The checkpoint.
        refused: The pickled globals that weights-only loading refused.
        reason: Why the trust rule did not allow full unpickling.
    """

    def __init__(self, path: str, refused: List[str], reason: str) -> None:
        self.path, self.refused, self.reason = path, refused, reason
        shown = ', '.join(refused[:8]) + (f' (+{len(refused) - 8} more)' if len(refused) > 8
                                          else '')
        super().__init__(
            f'refusing to load {path}: it does not load with torch.load(weights_only=True) '
            f'because it pickles {shown}, and full unpickling can run arbitrary code; {reason}. '
            'Nothing from the file was run. If you trust where it comes from, pass '
            '--trust-checkpoint (Python: trust_checkpoint=True); then publish a weights-only '
            'copy with tools/model_converters/publish_model.py. See SECURITY.md.')


class UnsupportedCheckpointSourceError(UntrustedCheckpointError):
    """A checkpoint name with a scheme no safe loader handles (refused before any download)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.refused, self.reason = path, [], reason
        RuntimeError.__init__(self, f'refusing to load {path}: {reason}. See SECURITY.md.')


def url_scheme(name: Any) -> Optional[str]:
    """The scheme ``name`` starts with (``'https://'``, ``'s3://'``, ...); None for a plain
    path."""
    match = _SCHEME.match(str(name)) if isinstance(name, (str, os.PathLike)) else None
    return match.group(0) if match else None


def checkpoint_not_found_message(name: Any) -> str:
    """``'<name>: checkpoint file not found'``, or for a URL, that this loader reads local
    files only and what to do instead."""
    scheme = url_scheme(name)
    if scheme is None:
        return f'{Path(name)}: checkpoint file not found'
    return (f'{name}: a {scheme} URL, but this loader reads local checkpoint files only; '
            'download it first and pass the file (tools/test.py, load_from and '
            "init_cfg=dict(type='Pretrained') load URLs themselves, weights-only)")


def _refused_globals(source: Union[str, IO[bytes]], error: Exception) -> Optional[List[str]]:
    """Globals the weights-only load refused; None when it failed for another reason."""
    message = str(error)
    refused: List[str] = []
    try:
        allowed = allowed_global_names()
        refused = [name for name in torch.serialization.get_unsafe_globals_in_checkpoint(source)
                   if name not in allowed]
    except Exception:  # noqa: BLE001  (legacy, non-zip files cannot be listed)
        pass
    if 'only HistoryBuffer statistics methods' in message:
        refused.append('builtins.getattr (beyond HistoryBuffer methods)')
    if not refused:
        match = _REFUSAL.search(message)
        if match is None:
            return None
        refused = [match.group(1) or match.group(2) or 'an object type outside the allowlist']
    return refused


def _log(message: str) -> None:
    from mmengine.logging import print_log
    print_log(message, logger='current', level=logging.WARNING)


def _load(source: Union[str, bytes], name: str, map_location: Any, trust: bool,
          signed_ok: bool) -> Any:
    """Load a local file (``source`` a path) or fetched bytes under the policy.

    Args:
        source: The local path, or the checkpoint's bytes.
        name: What messages call it (the path, or the URL it came from).
        signed_ok: Whether a signature of our runs may allow (restricted) full unpickling: for
            local files only.
    """
    def stream() -> Union[str, IO[bytes]]:
        return io.BytesIO(source) if isinstance(source, bytes) else source

    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(stream(), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        refused = _refused_globals(stream(), err)
        if refused is None:
            raise
    if trust or trusted_explicitly():
        reason = 'trust_checkpoint=True' if trust else 'trusted explicitly (--trust-checkpoint)'
        _log(f'{name}: unpickling fully ({reason}); it pickles {", ".join(refused)}')
        return torch.load(stream(), map_location=map_location, weights_only=False)
    if not signed_ok:
        raise UntrustedCheckpointError(
            name, refused, 'it was fetched from a URL or remote storage, and such files are '
            'unpickled fully only with --trust-checkpoint (a signature counts only for local '
            'checkpoints of this account)')
    # One read: the signature is checked on these bytes and only these are unpickled, so the
    # file cannot be swapped between the check and the load (read only for a resume, the one
    # case where a signature counts).
    data = None
    if in_resume():
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    decision = may_unpickle_fully(name, data)
    if not decision.allowed or data is None:
        raise UntrustedCheckpointError(name, refused, decision.reason)
    # Allowed here means signed (explicit trust was handled above): restricted unpickling only.
    _log(f'{name}: unpickling it ({decision.reason}) with the restricted unpickler; it pickles '
         f'{", ".join(refused)}')
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=False,
                          pickle_module=restricted_pickle)
    except (RefusedGlobalError, RefusedAttributeError) as err:
        allowed = signed_checkpoint_globals()
        outside = [glob for glob in refused if glob not in allowed] or \
            [getattr(err, 'name', 'builtins.getattr (beyond HistoryBuffer methods)')]
        raise UntrustedCheckpointError(
            name, outside, f'it is signed by a training run of this account, but '
            f'{", ".join(outside)} is not among the types our training checkpoints hold, and a '
            'signature does not make globals that can run code acceptable') from None


def load_checkpoint_file(filename: Union[str, Path], map_location: Any = None,
                         trust: bool = False) -> Any:
    """Load a local checkpoint safely.

    Args:
        filename: The file.
        map_location: As for :func:`torch.load`.
        trust: Allow full unpickling if weights-only loading is refused (as
            ``--trust-checkpoint``); otherwise the trust rule decides.

    Raises:
        FileNotFoundError: No such file (for a URL: that this loader takes local files only).
        UntrustedCheckpointError: It needs full unpickling and is not trusted.
        pickle.UnpicklingError, RuntimeError, ...: It is not a readable checkpoint.
    """
    path = os.path.expanduser(str(filename))
    if not os.path.isfile(path):
        if url_scheme(filename):
            raise FileNotFoundError(checkpoint_not_found_message(filename))
        raise FileNotFoundError(f'{path} can not be found.')
    return _load(path, path, map_location, trust, signed_ok=True)


def load_fetched_checkpoint(source: Union[str, bytes], name: str, map_location: Any = None,
                            trust: bool = False) -> Any:
    """Load a checkpoint fetched from ``name`` (a URL or remote path): its bytes, or the local
    file it was downloaded to. Weights-only; full unpickling only with explicit trust (a
    signature of our runs does not count for files from elsewhere)."""
    return _load(source, name, map_location, trust, signed_ok=False)


def load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine ``CheckpointLoader`` scheme for local paths: :func:`load_checkpoint_file`.

    A name with a scheme that no loader took (mmengine tries ``''`` last) is refused."""
    scheme = url_scheme(filename)
    if scheme is not None and not os.path.isfile(os.path.expanduser(filename)):
        raise UnsupportedCheckpointSourceError(
            filename, f'no safe loader handles {scheme} names (hifuse-mm loads checkpoints '
            'from local files, http(s)://, torchvision://, open-mmlab://, mmcls://, s3://, '
            'petrel:// and pavi://)')
    return load_checkpoint_file(filename, map_location)

