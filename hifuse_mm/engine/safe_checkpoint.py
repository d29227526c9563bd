"""Safe checkpoint loading: weights-only by default, full unpickling only when trusted.

:func:`load_checkpoint_file` is the one local loader of the project; :func:`load_from_local`
is the same as an mmengine ``CheckpointLoader`` scheme for local paths. A
:class:`~hifuse_mm.engine.runner.HiFuseRunner` uses it for everything its runs load from local
files (``load_from`` and ``tools/test.py``, ``--resume``, ``init_cfg=dict(type='Pretrained')``),
and :func:`hifuse_mm.engine.install` (called by our tools) makes it mmengine's local loader for
the whole process (:mod:`~hifuse_mm.engine.mmengine_patches`). The API
(:mod:`hifuse_mm.apis`) and the converters call it directly.

Every file is first read with ``torch.load(weights_only=True)`` plus the allowlist of
:mod:`hifuse_mm.engine.checkpoint_allowlist` (enough for our own training checkpoints,
published ones and converted released weights). Only if that is refused because the pickle
names other globals does the trust rule of :mod:`hifuse_mm.engine.checkpoint_trust` decide:
full unpickling for ``--trust-checkpoint`` or for the resume of a checkpoint our runs signed;
otherwise :class:`UntrustedCheckpointError`, and nothing from the file has run.
"""
from __future__ import annotations

import logging
import os
import pickle
import re
from pathlib import Path
from typing import Any, List, Optional, Union

import torch

from .checkpoint_allowlist import allowed_global_names, allowed_globals
from .checkpoint_trust import TrustDecision, may_unpickle_fully

PathLike = Union[str, Path]
_REFUSAL = re.compile(r'(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)'
                      r'|unrecognized function (.+?)(?: which|$)'
                      r'|Can only (?:build|create new object)', re.MULTILINE)


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


def _refused_globals(path: str, error: Exception) -> Optional[List[str]]:
    """Globals the weights-only load refused; None when it failed for another reason."""
    message = str(error)
    refused: List[str] = []
    try:
        allowed = allowed_global_names()
        refused = [name for name in torch.serialization.get_unsafe_globals_in_checkpoint(path)
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


def load_checkpoint_file(filename: PathLike, map_location: Any = None,
                         trust: bool = False) -> Any:
    """Load a local checkpoint safely.

    Args:
        filename: The file.
        map_location: As for :func:`torch.load`.
        trust: Allow full unpickling if weights-only loading is refused (as
            ``--trust-checkpoint``); otherwise the trust rule decides.

    Raises:
        FileNotFoundError: No such file.
        UntrustedCheckpointError: It needs full unpickling and is not trusted.
        pickle.UnpicklingError, RuntimeError, ...: It is not a readable checkpoint.
    """
    path = os.path.expanduser(str(filename))
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path} can not be found.')
    try:
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        refused = _refused_globals(path, err)
        if refused is None:
            raise
    decision = TrustDecision(True, 'trust_checkpoint=True') if trust \
        else may_unpickle_fully(path)
    if not decision.allowed:
        raise UntrustedCheckpointError(path, refused, decision.reason)
    _log(f'{path}: unpickling fully ({decision.reason}); it pickles {", ".join(refused)}')
    return torch.load(path, map_location=map_location, weights_only=False)


def load_from_local(filename: str, map_location: Any = None) -> Any:
    """mmengine ``CheckpointLoader`` scheme for local paths: :func:`load_checkpoint_file`."""
    return load_checkpoint_file(filename, map_location)
