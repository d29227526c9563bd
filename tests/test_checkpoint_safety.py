"""Safe checkpoint loading: weights-only by default, full unpickling only when trusted.

A planted checkpoint whose unpickling would run ``touch <marker>`` (with weights that fit the
config's model, so it would otherwise load fine) is refused by every entry point: tools/test.py,
``load_from`` and ``--resume`` in tools/train.py, tools/infer.py, vis_cam.py, both converters,
the Python API and mmengine's own loading functions; the marker file never appears. Only
``--trust-checkpoint`` unpickles it. A checkpoint of ours that needs full unpickling is resumed
(its signature verifies) but refused elsewhere; tampered or forged signatures are refused.
"""
import contextlib
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint, load_checkpoint

from hifuse_mm import cli
from hifuse_mm.apis import Classifier, ModelLoadError, PublishError, load_model, \
    publish_checkpoint
from hifuse_mm.engine import (UntrustedCheckpointError, load_checkpoint_file, resuming,
                              sign_checkpoint, trust_all_checkpoints, verify_signature)
from hifuse_mm.engine.checkpoint_trust import signature_path, signing_key
from mmpretrain.registry import MODELS
from helpers import Payload
from tiny_config import make_data, write_config
from tool_runner import call_tool

REFUSED = 'refusing to load'




@pytest.fixture(autouse=True, scope='module')
def installed():
    """mmengine's own loading functions are checked as our tools leave them: after the tools'
    process-wide opt-in (``import hifuse_mm`` alone does not change mmengine). Runs get the
    policy from HiFuseRunner (the configs' runner_type)."""
    from hifuse_mm import engine
    engine.install()


@pytest.fixture(scope='module')
def space(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('safety')
    write_config(root / 'tiny.py', make_data(root))
    cfg = Config.fromfile(str(root / 'tiny.py'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        weights = MODELS.build(cfg.model).state_dict()
    torch.save(dict(state_dict=weights, meta=dict(epoch=1, note=Payload(root / 'PWNED'))),
               root / 'hostile.pth')
    return root


@pytest.fixture
def marker(space):
    path = space / 'PWNED'
    path.unlink(missing_ok=True)
    yield path
    path.unlink(missing_ok=True)


def _cli(space: Path, main, *argv: str) -> str:
    """Run a cli entry point in ``space``; return the error it exits with."""
    before = torch.are_deterministic_algorithms_enabled()
    with contextlib.chdir(space), pytest.raises(SystemExit) as exit_info:
        main([*argv])
    torch.use_deterministic_algorithms(before)
    return str(exit_info.value.code)


def test_hostile_checkpoint_is_refused_everywhere(space, marker):
    hostile = str(space / 'hostile.pth')
    assert not marker.exists()

    # tools/test.py, and tools/train.py with load_from, --resume FILE and auto --resume.
    error = _cli(space, cli.test_main, 'tiny.py', hostile, '--work-dir', 'w_test')
    assert REFUSED in error and 'posix.system' in error and '--trust-checkpoint' in error
    error = _cli(space, cli.train_main, 'tiny.py', '--work-dir', 'w_load',
                 '--cfg-options', f'load_from={hostile}')
    assert REFUSED in error
    error = _cli(space, cli.train_main, 'tiny.py', '--work-dir', 'w_resume', '--resume', hostile)
    assert REFUSED in error and 'it is being resumed but it has no signature file' in error
    work = space / 'w_auto'
    work.mkdir()
    shutil.copy(hostile, work / 'epoch_1.pth')  # planted in the work dir
    (work / 'last_checkpoint').write_text(str(work / 'epoch_1.pth'))
    error = _cli(space, cli.train_main, 'tiny.py', '--work-dir', 'w_auto', '--resume')
    assert REFUSED in error

    # The tools that take a checkpoint argument.
    image = next((space / 'data' / 'test').rglob('*.png'))
    for script, args in [
            ('infer.py', ['tiny.py', hostile, image, '--out', 'p.csv']),
            ('visualization/vis_cam.py', ['tiny.py', hostile, image, '--out-dir', 'cams']),
            ('model_converters/publish_model.py', [hostile, 'pub.pth']),
            ('model_converters/hifuse_official_to_mmpretrain.py', [hostile, 'conv.pth'])]:
        proc = call_tool(space, script, *args)
        assert proc.returncode == 2 and REFUSED in proc.stderr, (script, proc.stderr)
    assert not any((space / name).exists() for name in ('p.csv', 'cams', 'conv.pth'))
    assert not list(space.glob('pub*.pth'))

    # The Python API and mmengine's own loaders.
    with pytest.raises(ModelLoadError, match=REFUSED):
        load_model(space / 'tiny.py', hostile, device='cpu')
    with pytest.raises(ModelLoadError, match=REFUSED):
        Classifier(space / 'tiny.py', hostile, device='cpu')
    with pytest.raises(PublishError, match=REFUSED):
        publish_checkpoint(hostile, space / 'pub.pth')
    model = torch.nn.Linear(2, 2)
    for load in (lambda: load_checkpoint(model, hostile),
                 lambda: _load_checkpoint(hostile),
                 lambda: CheckpointLoader.load_checkpoint(hostile)):
        with pytest.raises(UntrustedCheckpointError):
            load()
    assert not marker.exists(), 'the payload ran'

    # A signature sidecar does not help unless this account's key made it.
    signing_key(create=True)
    forged = space / 'forged.pth'
    shutil.copy(hostile, forged)
    signature_path(forged).write_text(
        '{"format": "hifuse_mm-checkpoint-signature/1", "sha256": "%s", "hmac_sha256": "%s"}'
        % ('0' * 64, '1' * 64))
    with resuming(), pytest.raises(UntrustedCheckpointError, match="not made with this"):
        load_checkpoint_file(forged)
    assert not marker.exists(), 'the payload ran'


def test_trust_checkpoint_flag_unpickles_fully(space, marker):
    """The refusal is the policy, not an accident: with --trust-checkpoint the file loads and
    its payload runs (which is why the flag is only for files you trust)."""
    image = next((space / 'data' / 'test').rglob('*.png'))
    proc = call_tool(space, 'infer.py', 'tiny.py', space / 'hostile.pth', image, '--out',
                     'trusted.csv', '--trust-checkpoint')
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()


def test_restricted_getattr(tmp_path):
    """HistoryBuffer pickles getattr(HistoryBuffer, 'mean'); only such lookups are allowed."""
    buffer = HistoryBuffer()
    buffer.update(2.0)
    good = tmp_path / 'good.pth'
    torch.save(dict(buffer=buffer, scalar=np.float32(1.5), array=np.arange(3)), good)
    loaded = load_checkpoint_file(good)
    assert loaded['buffer'].mean() == 2.0 and loaded['scalar'] == 1.5

    class Sneaky:
        def __reduce__(self):
            return getattr, (HistoryBuffer, '__init__')

    bad = tmp_path / 'bad.pth'
    torch.save(dict(x=Sneaky()), bad)
    with pytest.raises(UntrustedCheckpointError, match='beyond HistoryBuffer methods'):
        load_checkpoint_file(bad)


def test_signature_rules(tmp_path):
    path = tmp_path / 'ours.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(2)), meta=dict(note=Fraction(1, 3))), path)
    with pytest.raises(UntrustedCheckpointError, match='no signature file'):
        with resuming():
            load_checkpoint_file(path)
    sign_checkpoint(path)
    assert verify_signature(path).allowed
    with resuming():
        assert load_checkpoint_file(path)['meta']['note'] == Fraction(1, 3)
    # Signed, but not a resume: refused.
    with pytest.raises(UntrustedCheckpointError, match='only done for --resume'):
        load_checkpoint_file(path)
    with trust_all_checkpoints():
        assert load_checkpoint_file(path)['meta']['note'] == Fraction(1, 3)
    # Changed after signing: refused.
    with open(path, 'ab') as stream:
        stream.write(b'\0')
    with resuming(), pytest.raises(UntrustedCheckpointError, match='contents changed'):
        load_checkpoint_file(path)


def test_resume_of_our_run_unpickles_fully_but_testing_it_does_not(space):
    """A run whose checkpoints need full unpickling (a hook stores a Fraction): --resume works
    (the signature verifies), tools/test.py refuses it, --trust-checkpoint accepts it."""
    write_config(space / 'custom.py', space / 'data', imports=('hifuse_mm', 'custom_state'),
                 extra="custom_hooks = [dict(type='CustomStateHook')]\n")
    with contextlib.chdir(space):
        cli.train_main(['custom.py', '--work-dir', 'w_custom'])
    checkpoint = space / 'w_custom' / 'epoch_1.pth'
    assert verify_signature(checkpoint).allowed
    with pytest.raises(UntrustedCheckpointError):
        load_checkpoint_file(checkpoint)

    with contextlib.chdir(space):
        cli.train_main(['custom.py', '--work-dir', 'w_custom', '--resume', '--cfg-options',
                        'train_cfg.max_epochs=2'])
    checkpoint = space / 'w_custom' / 'epoch_2.pth'
    assert load_checkpoint_file(checkpoint, trust=True)['meta']['epoch'] == 2
    error = _cli(space, cli.test_main, 'custom.py', str(checkpoint), '--work-dir', 'w_ct')
    assert REFUSED in error and 'fractions.Fraction' in error
    with contextlib.chdir(space):
        cli.test_main(['custom.py', str(checkpoint), '--work-dir', 'w_ct', '--no-report',
                       '--trust-checkpoint'])


def test_legacy_format_and_junk(tmp_path):
    """Old (non-zip) torch files are refused the same way; junk is not a checkpoint."""
    marker = tmp_path / 'PWNED'
    legacy = tmp_path / 'legacy.pth'
    torch.save(dict(w=torch.ones(2), note=Payload(marker)), legacy,
               _use_new_zipfile_serialization=False)
    with pytest.raises(UntrustedCheckpointError) as info:
        load_checkpoint_file(legacy)
    assert info.value.refused == ['posix.system'] and not marker.exists()
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint at all')
    with pytest.raises(Exception) as info:
        load_checkpoint_file(tmp_path / 'junk.pth')
    assert not isinstance(info.value, UntrustedCheckpointError)
