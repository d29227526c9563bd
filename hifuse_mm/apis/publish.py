"""Publish a checkpoint: weights and plain metadata only, named with a content hash.

Training checkpoints hold the optimizer, the schedulers and the ``message_hub`` (mmengine
``HistoryBuffer`` and numpy objects), so on torch >= 2.6 plain
``torch.load(weights_only=True)`` refuses them (hifuse_mm reads them weights-only with an
allowlist of those types, :mod:`hifuse_mm.engine.checkpoint_allowlist`; other tools cannot).
A published checkpoint keeps ``state_dict`` and a ``meta`` of plain Python values (class names,
the config text, epoch...), loads with ``torch.load(weights_only=True)`` and gives the same
outputs. As MMPretrain's ``publish_model.py`` does, the file name gets the first 8 hex digits of
the file's SHA-256, e.g. ``hifuse-tiny_isic2018-1a2b3c4d.pth``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Union

import numpy as np
import torch

from ..utils.file_hash import file_sha256
from ..utils.output_files import OutputExistsError

PathLike = Union[str, Path]
#: Hex digits of the SHA-256 in the published name.
HASH_DIGITS = 8


class PublishError(ValueError):
    """The input is not a checkpoint that can be published; the message says why."""


@dataclass
class Published:
    """Result of :func:`publish_checkpoint`.

    Attributes:
        path: The published file.
        sha256: Its full SHA-256.
        dropped: Top-level entries of the input that were left out.
        created: False when an identical file was already published under that name.
    """

    path: Path
    sha256: str
    dropped: List[str]
    created: bool


def _plain(value: Any) -> Any:
    """``value`` with only types ``torch.load(weights_only=True)`` accepts; None if impossible."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return None


def slim_checkpoint(checkpoint: Dict[str, Any]) -> Dict[str, Any]:
    """Keep a checkpoint's ``state_dict`` (compact CPU tensors) and a plain ``meta``."""
    if not isinstance(checkpoint, dict):
        raise PublishError(f'expected a checkpoint dict, got {type(checkpoint).__name__}')
    state_dict = checkpoint.get('state_dict', checkpoint)
    tensors = {k: v for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise PublishError('no weights found (neither a `state_dict` entry nor tensors)')
    slim: Dict[str, Any] = {
        'state_dict': {k: v.detach().cpu().clone() for k, v in tensors.items()}}
    meta = checkpoint.get('meta') if 'state_dict' in checkpoint else None
    if isinstance(meta, dict):
        slim['meta'] = {k: v for k, v in _plain(meta).items() if v is not None}
    return slim


def hashed_name(out: PathLike, sha256: str) -> Path:
    """``dir/name.pth`` -> ``dir/name-<sha256[:8]>.pth``."""
    out = Path(out)
    stem = out.stem if out.suffix in ('.pth', '.pt') else out.name
    return out.with_name(f'{stem}-{sha256[:HASH_DIGITS]}.pth')


def publish_checkpoint(src: PathLike, out: PathLike,
                       trust_checkpoint: bool = False) -> Published:
    """Write the slim form of ``src`` as ``<out stem>-<sha256[:8]>.pth`` beside ``out``.

    Nothing is overwritten: if that name exists with the same bytes it is reported as already
    published; with other bytes, :class:`OutputExistsError` is raised.

    Args:
        src: The checkpoint (read weights-only, as every checkpoint; our training checkpoints
            load that way).
        out: Output name; the hash is added before ``.pth``.
        trust_checkpoint: Allow full unpickling of ``src`` if it does not load weights-only
            (it can run code: only for files you trust).

    Raises:
        FileNotFoundError: ``src`` is missing.
        PublishError: ``src`` is not a checkpoint, needs full unpickling and is not trusted,
            or the result does not load weights-only.
    """
    from ..engine import UntrustedCheckpointError, load_checkpoint_file
    from ..engine.safe_checkpoint import checkpoint_not_found_message
    if not Path(src).is_file():
        raise FileNotFoundError(checkpoint_not_found_message(src))
    src = Path(src)
    try:
        checkpoint = load_checkpoint_file(src, map_location='cpu', trust=trust_checkpoint)
    except UntrustedCheckpointError as err:
        raise PublishError(str(err)) from err
    except Exception as err:  # noqa: BLE001  (pickle/zip errors of many types)
        raise PublishError(f'{src}: not a readable PyTorch checkpoint ({err})') from err
    slim = slim_checkpoint(checkpoint)
    dropped = sorted(set(checkpoint) - set(slim)) if 'state_dict' in checkpoint else []

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f'.{out.name}.{os.getpid()}.tmp')
    try:
        # Through a file object: torch.save names the archive inside the file after a path's
        # stem, which would make the bytes (and the hash) depend on the temporary name.
        with open(tmp, 'wb') as stream:
            torch.save(slim, stream)
        _check_weights_only(tmp, slim)
        digest = file_sha256(tmp)
        final = hashed_name(out, digest)
        if final.exists():
            if file_sha256(final) == digest:
                return Published(final, digest, dropped, created=False)
            raise OutputExistsError(f'{final} exists with different contents; remove it or '
                                    'choose another output name')
        _move_without_replacing(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return Published(final, digest, dropped, created=True)


def _move_without_replacing(tmp: Path, final: Path) -> None:
    try:
        os.link(tmp, final)  # fails instead of replacing a file that appeared meanwhile
    except FileExistsError as err:
        raise OutputExistsError(f'{final} appeared while publishing; not replaced') from err
    except OSError:  # no hard links on this file system
        tmp.rename(final)


def _check_weights_only(path: Path, expected: Dict[str, Any]) -> None:
    try:
        loaded = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise PublishError(f'the slim checkpoint does not load with weights_only=True: {err}') \
            from err
    same = loaded['state_dict'].keys() == expected['state_dict'].keys() and all(
        torch.equal(loaded['state_dict'][k], v) for k, v in expected['state_dict'].items())
    if not same:
        raise PublishError('the slim checkpoint does not read back identical weights')
