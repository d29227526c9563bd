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

A signed file is verified and loaded from the **same bytes** (read once, hashed, unpickled
from memory: :func:`may_unpickle_fully` takes them), so swapping the file between the check and
the load achieves nothing; and it is unpickled with the restricted unpickler of
:mod:`hifuse_mm.engine.checkpoint_allowlist` (:attr:`TrustDecision.restricted`), which refuses
globals that run code whatever the signature says. Only explicit trust unpickles fully.

The key is used only if it can be trusted: a key file not owned by this account, readable or
writable by others, or in a folder others can write to (without the sticky bit) is ignored with
a :class:`SigningKeyWarning` (as if there were no key: nothing is signed or verified with it),
and so is a key file too short to be a key, with a warning naming it and what to do. A new key
is written to a temporary file (mode 0600), synced and then linked to its name, so it appears
whole or not at all; if that fails (disk or quota full) the checkpoint is saved unsigned with a
warning, and the next save tries again.
"""
from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import secrets
import stat
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Union

from ..utils.atomic_files import fsync_folder
from ..utils.file_hash import file_sha256
from .atomic_io import atomic_write_text

PathLike = Union[str, Path]

#: Environment variable naming the signing key file.
KEY_ENV = 'HIFUSE_MM_TRUST_KEY'
#: Suffix of the signature sidecar: ``epoch_3.pth`` -> ``epoch_3.pth.sig``.
SIGNATURE_SUFFIX = '.sig'
SIGNATURE_FORMAT = 'hifuse_mm-checkpoint-signature/1'
_KEY_BYTES = 32
#: A key file shorter than this is not used (a key this package makes has ``_KEY_BYTES``).
_MIN_KEY_BYTES = 16
_DOMAIN = b'hifuse_mm checkpoint v1\x00'
#: errno values of a file system that cannot hard-link (the key is then renamed into place).
_NO_LINKS = {errno.EPERM, errno.EXDEV, errno.ENOSYS, errno.EMLINK, errno.EOPNOTSUPP,
             getattr(errno, 'ENOTSUP', errno.EOPNOTSUPP)}


class SigningKeyWarning(UserWarning):
    """The signing key cannot be used or made: checkpoints are not signed or verified with it."""


@dataclass(frozen=True)
class TrustDecision:
    """Whether a checkpoint may be unpickled fully, and why (for messages).

    ``restricted``: only with the restricted unpickler (a signed checkpoint), not fully.
    """

    allowed: bool
    reason: str
    restricted: bool = False


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


def _warn(message: str) -> None:
    warnings.warn(message, SigningKeyWarning, stacklevel=3)


def _private_group(gid: int) -> bool:
    """Whether ``gid`` is this account's own group (a "user private group", as Debian and
    Ubuntu give every account, where a umask of 002 makes folders group-writable)."""
    try:
        import grp
        import pwd
        user = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(gid)
    except (ImportError, KeyError, OSError):
        return False
    return gid == os.getegid() and group.gr_name == user and set(group.gr_mem) <= {user}


def _unsafe_folder(folder: Path) -> Optional[str]:
    """Why ``folder`` lets others replace the key file in it; None when it does not."""
    try:
        info = folder.stat()
    except OSError as err:
        return f'its folder {folder} cannot be checked ({err.strerror})'
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid not in (os.geteuid(), 0):
        return f'its folder {folder} belongs to another account (uid {info.st_uid})'
    if mode & stat.S_ISVTX:  # like /tmp: others cannot rename or delete our files there
        return None
    if mode & stat.S_IWOTH or (mode & stat.S_IWGRP and not _private_group(info.st_gid)):
        return (f'its folder {folder} is writable by others (mode {mode:04o}), so they could '
                f'replace the key (chmod go-w {folder})')
    return None


def _key_problem(path: Path, info: os.stat_result) -> Optional[str]:
    """Why the key file (``info``: its ``fstat``) cannot be trusted; None when it can."""
    if not hasattr(os, 'geteuid'):  # no POSIX owners and modes (Windows): nothing to check
        return None
    uid = os.geteuid()
    if not stat.S_ISREG(info.st_mode):
        return 'it is not a regular file'
    if info.st_uid != uid:
        return (f'it belongs to another account (uid {info.st_uid}; you are {uid}): use a key '
                'file of your own')
    mode = stat.S_IMODE(info.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (f'others may write it (mode {mode:04o}), so anyone could have replaced it: '
                f'delete it (the next training run makes a new one) or, if you are sure it is '
                f'yours, chmod 600 {path}')
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return (f'others may read it (mode {mode:04o}), and whoever knows the key can sign '
                f'checkpoints as you: chmod 600 {path}, or delete it if others may have read it')
    for folder in dict.fromkeys((path.parent, path.resolve().parent)):
        problem = _unsafe_folder(folder)
        if problem:
            return problem
    return None


def _read_key(path: Path) -> Tuple[Optional[bytes], Optional[str]]:
    """(key, None), (None, None) if there is no key file, or (None, why it is not used)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0))
    except FileNotFoundError:
        return None, None
    except OSError as err:
        return None, f'the signing key {path} cannot be read ({err.strerror})'
    try:
        problem = _key_problem(path, os.fstat(fd))
        if problem:
            return None, (f'the signing key {path} is not used because {problem}. '
                          'Until then checkpoints are neither signed nor verified')
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        key = b''.join(chunks)
    except OSError as err:
        return None, f'the signing key {path} cannot be read ({err.strerror})'
    finally:
        os.close(fd)
    if len(key) < _MIN_KEY_BYTES:
        return None, (f'the signing key file {path} holds {len(key)} bytes, too few for a key '
                      f'(at least {_MIN_KEY_BYTES}; probably a key whose creation was '
                      'interrupted), so checkpoints are neither signed nor verified. Delete '
                      'it: the next training run makes a new key (checkpoints signed with '
                      'another key then need --trust-checkpoint to resume)')
    return key, None


def _write_new(path: Path, tmp: Path, data: bytes) -> bool:
    """Write ``data`` to ``tmp`` (mode 0600), sync it and give it the name ``path`` unless that
    exists; False if it does (another process made the key meanwhile)."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError as err:  # a file system without hard links: rename, if still free
        if err.errno not in _NO_LINKS:
            raise
        if path.exists():
            return False
        os.replace(tmp, path)
    fsync_folder(path.parent)
    return True


def _create_key(path: Path) -> Optional[bytes]:
    """Make a key at ``path``: whole or not at all (temporary file, fsync, link)."""
    key = secrets.token_bytes(_KEY_BYTES)
    tmp = path.with_name(f'.{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}')
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        problem = _unsafe_folder(path.parent) if hasattr(os, 'geteuid') else None
        if problem:
            _warn(f'not creating the checkpoint signing key {path}: {problem}; checkpoints are '
                  'saved unsigned')
            return None
        if not _write_new(path, tmp, key):
            return signing_key(create=False)  # another process made it meanwhile: use that
        return key
    except OSError as err:
        _warn(f'could not create the checkpoint signing key {path} ({err}); checkpoints are '
              'saved unsigned until a key can be created (the next save tries again)')
        return None
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass


def signing_key(create: bool = False) -> Optional[bytes]:
    """This account's signing key; with ``create``, make one if there is none.

    Returns None when there is no usable key: none (and ``create`` is False, or it cannot be
    made), or a key file that cannot be trusted or is too short (a
    :class:`SigningKeyWarning` says which and what to do; such a file is never replaced).
    """
    path = key_path()
    key, problem = _read_key(path)
    if problem:
        _warn(problem)
        return None
    if key is not None or not create:
        return key
    return _create_key(path)


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


def verify_signature(checkpoint: PathLike, data: Optional[bytes] = None) -> TrustDecision:
    """Check ``checkpoint`` against its sidecar with this account's key.

    Args:
        checkpoint: The file (its sidecar is ``<checkpoint>.sig``).
        data: The file's bytes as read for loading: these are what is checked (pass them, so
            that what is loaded is what was verified); default: read the file.
    """
    sidecar = signature_path(checkpoint)
    if not sidecar.is_file():
        return TrustDecision(False, f'it has no signature file {sidecar.name} (our training '
                             'writes one next to every checkpoint it saves)')
    key, problem = _read_key(key_path())
    if problem:
        _warn(problem)
        return TrustDecision(False, problem)
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
    actual = hashlib.sha256(data).hexdigest() if data is not None else file_sha256(checkpoint)
    if actual != recorded_sha:
        return TrustDecision(False, f'its contents changed after {sidecar.name} was written')
    return TrustDecision(True, 'signed by a training run of this account', restricted=True)


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


def trusted_explicitly() -> bool:
    """Whether loads here are inside :func:`trust_all_checkpoints` (``--trust-checkpoint``)."""
    return _Scope.trust_all > 0


def in_resume() -> bool:
    """Whether loads here are inside :func:`resuming` (``--resume``)."""
    return _Scope.resuming > 0


def may_unpickle_fully(checkpoint: PathLike, data: Optional[bytes] = None) -> TrustDecision:
    """The trust rule: explicit trust, or a resume of a checkpoint signed by our runs.

    Args:
        checkpoint: The local file.
        data: Its bytes, read once: the signature is checked on these, and only these may
            then be unpickled (with the restricted unpickler: ``decision.restricted``).
    """
    if _Scope.trust_all > 0:
        return TrustDecision(True, 'trusted explicitly (--trust-checkpoint)')
    if _Scope.resuming > 0:
        decision = verify_signature(checkpoint, data)
        if decision.allowed:
            return decision
        return TrustDecision(False, f'it is being resumed but {decision.reason}')
    return TrustDecision(False, 'full unpickling is only done for --resume of a checkpoint '
                         'our training wrote, or with --trust-checkpoint')


def sign_checkpoint(checkpoint: PathLike) -> Optional[Path]:
    """Write ``checkpoint``'s sidecar (atomically); None, with a :class:`SigningKeyWarning`,
    when there is no usable key or the sidecar cannot be written (the checkpoint stays
    unsigned: a ``--resume`` that needs full unpickling then asks for ``--trust-checkpoint``).
    """
    key = signing_key(create=True)
    if key is None:
        return None
    sidecar = signature_path(checkpoint)
    try:
        atomic_write_text(sidecar, signature_record(file_sha256(checkpoint), key))
    except OSError as err:
        _warn(f'could not write the signature {sidecar} ({err}); {checkpoint} stays unsigned')
        return None
    return sidecar


def remove_orphan_signatures(folder: PathLike) -> List[Path]:
    """Delete sidecars whose checkpoint is gone (mmengine removes old checkpoints itself)."""
    removed = []
    for sidecar in Path(folder).glob(f'*{SIGNATURE_SUFFIX}'):
        if not sidecar.with_name(sidecar.name[:-len(SIGNATURE_SUFFIX)]).exists():
            sidecar.unlink(missing_ok=True)
            removed.append(sidecar)
    return removed
