"""``--resume`` of a signed checkpoint: the bytes verified are the bytes loaded, and even a
validly signed checkpoint may not name globals that run code (issue 14.2).

The signature (an HMAC under this account's key, tests/conftest.py points it to a temporary
folder) allows more than weights-only loading for our own checkpoints. Someone who can write to
a shared work dir must not be able to swap the file between the check and the load, and a
signature must not make ``os.system`` and friends acceptable: such a checkpoint is refused and
its payload (which would create a marker file) never runs.
"""
import builtins
import contextlib
import io
import os
import shlex
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from mmengine.logging import HistoryBuffer

from hifuse_mm import cli
from hifuse_mm.engine import (UntrustedCheckpointError, checkpoint_trust, load_checkpoint_file,
                              resuming, sign_checkpoint, trust_all_checkpoints,
                              verify_signature)
from tiny_config import make_data, write_config

REFUSED = 'refusing to load'


class Call:
    """Unpickling this calls ``function(*args)``."""

    def __init__(self, function, *args) -> None:
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def _touch(marker: Path) -> str:
    return f'touch {shlex.quote(str(marker))}'


def _payloads(marker: Path):
    """Pickled objects that would create ``marker`` (or reach code otherwise) when loaded."""
    return {
        'os.system': Call(os.system, _touch(marker)),
        'subprocess.call': Call(subprocess.call, ['touch', str(marker)]),
        'builtins.eval': Call(builtins.eval, f'__import__("os").system({_touch(marker)!r})'),
        'builtins.exec': Call(builtins.exec, f'import os; os.system({_touch(marker)!r})'),
        'builtins.getattr': Call(getattr, HistoryBuffer, '__init__'),
        'importlib.import_module': Call(__import__('importlib').import_module, 'this'),
    }


def _save(path: Path, note) -> Path:
    torch.save(dict(state_dict=dict(weight=torch.ones(2)),
                    meta=dict(epoch=1, harmless=Fraction(1, 3), note=note)), path)
    return path


@pytest.mark.parametrize('kind', list(_payloads(Path('m'))))
def test_signed_checkpoint_may_not_run_code(tmp_path, kind):
    marker = tmp_path / 'PWNED'
    path = _save(tmp_path / f'{kind}.pth', _payloads(marker)[kind])
    assert sign_checkpoint(path) is not None
    assert verify_signature(path).allowed  # validly signed by this account's key
    with resuming(), pytest.raises(UntrustedCheckpointError) as info:
        load_checkpoint_file(path)
    message = str(info.value)
    assert REFUSED in message and 'signed by a training run of this account, but' in message
    assert not marker.exists(), 'the payload ran'


def test_signed_harmless_checkpoint_still_resumes(tmp_path):
    """What the signature is for: our run's checkpoint that needs more than weights-only."""
    buffer = HistoryBuffer()
    buffer.update(2.0)
    path = tmp_path / 'ours.pth'
    torch.save(dict(meta=dict(note=Fraction(1, 3), buffer=buffer)), path)
    sign_checkpoint(path)
    with resuming():
        loaded = load_checkpoint_file(path)
    assert loaded['meta']['note'] == Fraction(1, 3) and loaded['meta']['buffer'].mean() == 2.0


def test_signed_resume_loads_the_bytes_it_verified(tmp_path, monkeypatch):
    """The file is swapped for a hostile one right after its signature was checked: what is
    loaded is still what was checked (one read, hashed and unpickled from memory)."""
    marker = tmp_path / 'PWNED'
    path = _save(tmp_path / 'epoch_1.pth', 'fine')
    sign_checkpoint(path)
    buffer = io.BytesIO()
    torch.save(dict(state_dict=dict(weight=torch.zeros(2)),
                    meta=dict(epoch=1, harmless=Fraction(1, 3), note=Call(os.system,
                                                                           _touch(marker)))),
               buffer)
    verify = checkpoint_trust.verify_signature

    def verify_then_swap(*args, **kwargs):
        decision = verify(*args, **kwargs)
        path.write_bytes(buffer.getvalue())  # someone who can write the work dir, just now
        return decision

    monkeypatch.setattr(checkpoint_trust, 'verify_signature', verify_then_swap)
    with resuming():
        loaded = load_checkpoint_file(path)
    assert not marker.exists(), 'the swapped-in payload ran'
    assert loaded['meta']['note'] == 'fine'
    assert torch.equal(loaded['state_dict']['weight'], torch.ones(2))


def test_resume_of_a_signed_hostile_checkpoint_is_refused(tmp_path):
    """Through tools/train.py --resume: one line, no payload."""
    marker = tmp_path / 'PWNED'
    write_config(tmp_path / 'tiny.py', make_data(tmp_path))
    path = _save(tmp_path / 'epoch_1.pth', Call(os.system, _touch(marker)))
    sign_checkpoint(path)
    before = torch.are_deterministic_algorithms_enabled()
    with contextlib.chdir(tmp_path), pytest.raises(SystemExit) as info:
        cli.train_main(['tiny.py', '--work-dir', 'w', '--resume', str(path)])
    torch.use_deterministic_algorithms(before)
    assert not marker.exists(), 'the payload ran'
    assert REFUSED in str(info.value.code) and 'posix.system' in str(info.value.code)


def test_explicit_trust_still_unpickles_fully(tmp_path):
    """--trust-checkpoint is the user's word for a file of any origin: full unpickling (so its
    payload runs; SECURITY.md says to use it only for files you trust)."""
    marker = tmp_path / 'PWNED'
    path = _save(tmp_path / 'trusted.pth', Call(os.system, _touch(marker)))
    with trust_all_checkpoints():
        load_checkpoint_file(path)
    assert marker.exists()
