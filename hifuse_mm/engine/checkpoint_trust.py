"""Which checkpoints may be unpickled fully: signatures of our own runs and explicit trust.

A pickle can run any code while it is loaded, so a checkpoint that does not load with
``torch.load(weights_only=True)`` (plus the harmless types of
:mod:`hifuse_mm.engine.checkpoint_allowlist`) is unpickled fully only when

* the user says so: ``--trust-checkpoint`` on the tools, ``trust_checkpoint=True`` in Python,
  or the :func:`trust_all_checkpoints` context; or
* it is being **resumed** (:meth:`hifuse_mm.engine.runner.HiFuseRunner.resume`, i.e.
  ``--resume``, or the :func:`resuming` context) and it is a checkpoint our training wrote:
  its sidecar ``<checkpoint>.sig`` holds an HMAC-SHA256, under this user account's signing
  key, of the file's SHA-256.

Why a keyed signature and not a plain hash next to the file: whoever hands you a checkpoint
can hand you a matching hash too. The key lives outside every work dir, in
``$HIFUSE_MM_TRUST_KEY`` or ``${XDG_CONFIG_HOME:-~/.config}/hifuse_mm/checkpoint-signing.key``
(32 random bytes, mode 0600, created the first time a run saves a checkpoint), so only
checkpoints written by this account's runs verify, wherever they were copied to. A run on
another machine or account (e.g. the other nodes of a multi-node job without a shared home)
signs with another key: resume those with ``--trust-checkpoint``, or share the key file.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Union

from ..utils.file_hash import file_sha256
from .atomic_io import atomic_write_text

PathLike = Union[str, Path]

#: Environment variable naming the signing key file.
KEY_ENV = 'HIFUSE_MM_TRUST_KEY'
#: Suffix of the signature sidecar: ``epoch_3.pth`` -> ``epoch_3.pth.sig``.
SIGNATURE_SUFFIX = '.sig'
SIGNATURE_FORMAT = 'hifuse_mm-checkpoint-signature/1'
_KEY_BYTES = 32
_DOMAIN = b'hifuse_mm checkpoint v1\x00'


@dataclass(frozen=True)
class TrustDecision:
    """Whether a checkpoint may be unpickled fully, and why (for messages)."""

    allowed: bool
    reason: str


class _Scope:
    """Process-wide trust state, changed only through the context managers below."""

    trust_all: int = 0
    resuming: int = 0


def key_path() -> Path:
    """Where the signing key is (or will be) stored."""
    configured = os.environ.get(KEY_ENV)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get('XDG_CONFIG_HOME') or os.path.join('~', '.config')
    return Path(base).expanduser() / 'hifuse_mm' / 'checkpoint-signing.key'


def signing_key(create: bool = False) -> Optional[bytes]:
    """This account's signing key; with ``create``, make one if there is none.

    Returns None when there is no key (and ``create`` is False) or it cannot be created.
    """
    path = key_path()
    try:
        key = path.read_bytes()
        return key if len(key) >= 16 else None
    except FileNotFoundError:
        if not create:
            return None
    except OSError:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it meanwhile
        return signing_key(create=False)
    except OSError:
        return None
    key = secrets.token_bytes(_KEY_BYTES)
    with os.fdopen(fd, 'wb') as stream:
        stream.write(key)
        stream.flush()
        os.fsync(stream.fileno())
    return key


def signature_path(checkpoint: PathLike) -> Path:
    """The sidecar of ``checkpoint``."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name + SIGNATURE_SUFFIX)


def _mac(key: bytes, sha256_hex: str) -> str:
    return hmac.new(key, _DOMAIN + bytes.fromhex(sha256_hex), hashlib.sha256).hexdigest()


def signature_record(sha256_hex: str, key: bytes) -> str:
    """The sidecar's JSON text for a file with this SHA-256."""
    return json.dumps(dict(format=SIGNATURE_FORMAT, sha256=sha256_hex,
                           hmac_sha256=_mac(key, sha256_hex)), indent=1) + '\n'


def verify_signature(checkpoint: PathLike) -> TrustDecision:
    """Check ``checkpoint`` against its sidecar with this account's key."""
    sidecar = signature_path(checkpoint)
    if not sidecar.is_file():
        return TrustDecision(False, f'it has no signature file {sidecar.name} (our training '
                             'writes one next to every checkpoint it saves)')
    key = signing_key(create=False)
    if key is None:
        return TrustDecision(False, f'there is no signing key at {key_path()} to check '
                             f'{sidecar.name} with (it was written by another account or '
                             'machine)')
    try:
        record = json.loads(sidecar.read_text())
        recorded_sha, recorded_mac = record['sha256'], record['hmac_sha256']
        expected_mac = _mac(key, recorded_sha)
    except (OSError, ValueError, KeyError, TypeError) as err:
        return TrustDecision(False, f'its signature file {sidecar.name} is unreadable ({err})')
    if not hmac.compare_digest(str(recorded_mac), expected_mac):
        return TrustDecision(False, f'its signature file {sidecar.name} was not made with this '
                             f"account's key {key_path()}")
    if file_sha256(checkpoint) != recorded_sha:
        return TrustDecision(False, f'its contents changed after {sidecar.name} was written')
    return TrustDecision(True, 'signed by a training run of this account')


@contextmanager
def trust_all_checkpoints(enabled: bool = True) -> Iterator[None]:
    """Allow full unpickling of every checkpoint loaded inside (``--trust-checkpoint``)."""
    _Scope.trust_all += int(bool(enabled))
    try:
        yield
    finally:
        _Scope.trust_all -= int(bool(enabled))


@contextmanager
def resuming() -> Iterator[None]:
    """Mark loads inside as ``--resume`` loads: our own signed checkpoints are then trusted."""
    _Scope.resuming += 1
    try:
        yield
    finally:
        _Scope.resuming -= 1


def may_unpickle_fully(checkpoint: PathLike) -> TrustDecision:
    """The trust rule: explicit trust, or a resume of a checkpoint signed by our runs."""
    if _Scope.trust_all > 0:
        return TrustDecision(True, 'trusted explicitly (--trust-checkpoint)')
    if _Scope.resuming > 0:
        decision = verify_signature(checkpoint)
        if decision.allowed:
            return decision
        return TrustDecision(False, f'it is being resumed but {decision.reason}')
    return TrustDecision(False, 'full unpickling is only done for --resume of a checkpoint '
                         'our training wrote, or with --trust-checkpoint')


def sign_checkpoint(checkpoint: PathLike) -> Optional[Path]:
    """Write ``checkpoint``'s sidecar (atomically); None when no key can be made."""
    key = signing_key(create=True)
    if key is None:
        return None
    sidecar = signature_path(checkpoint)
    atomic_write_text(sidecar, signature_record(file_sha256(checkpoint), key))
    return sidecar


def remove_orphan_signatures(folder: PathLike) -> List[Path]:
    """Delete sidecars whose checkpoint is gone (mmengine removes old checkpoints itself)."""
    removed = []
    for sidecar in Path(folder).glob(f'*{SIGNATURE_SUFFIX}'):
        if not sidecar.with_name(sidecar.name[:-len(SIGNATURE_SUFFIX)]).exists():
            sidecar.unlink(missing_ok=True)
            removed.append(sidecar)
    return removed
