"""The checkpoint signing key is trusted only when it is private, and made whole or not at all
(issue 14.3).

A key file that belongs to another account, that others may write or read, or that sits in a
folder others can write to is not used: a loud warning (``SigningKeyWarning``, a
``UserWarning``) says why and what to do, and nothing is signed or verified with it. Creating
the key on a full disk neither crashes the save nor leaves a short key file behind; a short key
file that exists is named in a warning, never silently taken for "no key".
"""
import errno
import os
from pathlib import Path

import pytest
import torch

from hifuse_mm.engine import (UntrustedCheckpointError, load_checkpoint_file, resuming,
                              sign_checkpoint, verify_signature)
from hifuse_mm.engine.checkpoint_trust import signing_key


@pytest.fixture
def key(tmp_path, monkeypatch) -> Path:
    """This test's key file (not created yet), in a private folder."""
    folder = tmp_path / 'keys'
    folder.mkdir(mode=0o700)
    path = folder / 'checkpoint-signing.key'
    monkeypatch.setenv('HIFUSE_MM_TRUST_KEY', str(path))
    return path


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    path = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=dict(weight=torch.ones(2))), path)
    return path


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize('calls', [('write', 'fdopen'), ('fsync', )])
def test_disk_full_while_creating_the_key(key, checkpoint, monkeypatch, calls):
    with monkeypatch.context() as patch:
        for name in calls:
            patch.setattr(os, name, _disk_full)
        with pytest.warns(UserWarning, match=f'could not create .*{key.name}'):
            assert sign_checkpoint(checkpoint) is None  # the save goes on, unsigned
    assert not key.exists(), 'a partial key was left behind'
    assert sorted(os.listdir(key.parent)) == []  # no temporary file either
    # The next save makes a whole key and signs.
    assert sign_checkpoint(checkpoint) is not None
    assert len(key.read_bytes()) == 32 and verify_signature(checkpoint).allowed


@pytest.mark.parametrize('content', [b'', b'12345'])
def test_short_key_file_is_named_not_ignored(key, checkpoint, content):
    key.write_bytes(content)
    key.chmod(0o600)
    with pytest.warns(UserWarning, match=rf'{key}.* {len(content)} bytes.*Delete it'):
        assert signing_key() is None
    with pytest.warns(UserWarning, match='Delete it'):
        assert sign_checkpoint(checkpoint) is None
    assert key.read_bytes() == content  # the user's file is not replaced


def _signed(key: Path, checkpoint: Path) -> Path:
    assert sign_checkpoint(checkpoint) is not None and key.is_file()
    assert verify_signature(checkpoint).allowed
    return checkpoint


@pytest.mark.parametrize('mode, why', [(0o620, 'others may write'), (0o602, 'others may write'),
                                       (0o640, 'others may read'), (0o604, 'others may read')])
def test_key_that_others_may_touch_is_not_used(key, checkpoint, mode, why):
    signed = _signed(key, checkpoint)
    key.chmod(mode)
    with pytest.warns(UserWarning, match=f'{key} is not used because {why}'):
        assert signing_key() is None
    with pytest.warns(UserWarning):
        decision = verify_signature(signed)
    assert not decision.allowed and why in decision.reason
    torch.save(dict(note=__import__('fractions').Fraction(1, 3)), signed)
    with pytest.warns(UserWarning):
        assert sign_checkpoint(signed) is None
    with resuming(), pytest.warns(UserWarning), \
            pytest.raises(UntrustedCheckpointError, match=why):
        load_checkpoint_file(signed)
    key.chmod(0o600)  # fixed as the message says: trusted again
    assert signing_key() is not None


def test_key_of_another_account_is_not_used(key, checkpoint, monkeypatch):
    signed = _signed(key, checkpoint)
    uid = os.geteuid()
    monkeypatch.setattr(os, 'geteuid', lambda: uid + 4321)
    monkeypatch.setattr(os, 'getuid', lambda: uid + 4321)
    with pytest.warns(UserWarning, match=f'{key} is not used because it belongs to '
                      'another account'):
        assert signing_key() is None
    with pytest.warns(UserWarning):
        assert not verify_signature(signed).allowed


def test_key_in_a_folder_others_can_write(key, checkpoint):
    signed = _signed(key, checkpoint)
    key.parent.chmod(0o777)
    try:
        with pytest.warns(UserWarning, match=f'folder {key.parent} is writable by others'):
            assert signing_key() is None
        with pytest.warns(UserWarning):
            assert not verify_signature(signed).allowed
        key.unlink()
        with pytest.warns(UserWarning, match='not creating the checkpoint signing key'):
            assert sign_checkpoint(checkpoint) is None
        assert not key.exists()
        key.parent.chmod(0o1777)  # sticky, like /tmp: others cannot replace our files
        assert sign_checkpoint(checkpoint) is not None and verify_signature(signed).allowed
    finally:
        key.parent.chmod(0o700)
