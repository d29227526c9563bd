"""Crash-safe training: SIGKILL at several points, ``--resume``, and the exact same result.

A narrow HiFuse (16-128 channels, one block per stage, with dropout and drop-path so the model
itself draws random numbers) trains on 32 px synthetic images with RandomResizedCrop + flips
(drawn in 2 dataloader worker processes), ``randomness=dict(seed=0, deterministic=True)``, 3
epochs of 2 iterations. The reference run
is uninterrupted. The crashed run is killed with SIGKILL (tests/train_faults.py) in the middle
of epoch 2, resumed with ``--resume``, killed again while its epoch-3 checkpoint is being
written (the temporary file half written), and resumed again to the end. Its final weights,
optimizer state and validation metrics must equal the reference's exactly. Another run is killed
after saving epoch 1's checkpoint but before validating it: the resume validates epoch 1 first,
so the best checkpoint is the reference's too.

The two killed runs are subprocesses (a SIGKILL has to hit a real process); the reference and
the last resume run in-process (``hifuse_mm.cli.train_main``) to keep the file fast.
"""
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hifuse_mm import cli
from hifuse_mm.datasets import make_demo_dataset
from hifuse_mm.engine import load_checkpoint_file, verify_signature
from hifuse_mm.engine.atomic_backend import AtomicLocalBackend
from hifuse_mm.engine.atomic_io import atomic_open, atomic_write_bytes
from hifuse_mm.engine.mmengine_patches import atomic_last_checkpoint
from tool_runner import REPO, TOOLS

TESTS = Path(__file__).resolve().parent
EPOCHS = 3
# SIGKILL, fork and /proc/self/fd (used by tests/train_faults.py) are POSIX / Linux.
pytestmark = pytest.mark.skipif(sys.platform != 'linux', reason='needs Linux')

CONFIG = """\
_base_ = [{base!r}]
custom_imports = dict(imports=['hifuse_mm', 'train_faults'], allow_failed_imports=False)
data_root = {data_root!r}
model = dict(
    backbone=dict(
        _delete_=True,
        type='HiFuse',
        arch=dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 4)),
        drop_rate=0.1,
        global_drop_path_rate=0.2),
    neck=dict(in_channels=(16, 32, 64, 128)),
    head=dict(in_channels=128))
train_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.5, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='CheckedLoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(batch_size=4, num_workers=2,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(max_epochs={epochs})
default_hooks = dict(logger=dict(interval=1))
randomness = dict(seed=0, deterministic=True)
custom_hooks = [dict(type='FaultInjectionHook')]
"""


@contextlib.contextmanager
def _restored_determinism():
    """In-process runs switch on deterministic algorithms; give the session its setting back."""
    before = torch.are_deterministic_algorithms_enabled()
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def _train_in_process(workspace: Path, *args: str) -> None:
    with contextlib.chdir(workspace), _restored_determinism():
        cli.train_main(['crash.py', *args])


def _train_killed(workspace: Path, fault: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HIFUSE_FAULT=fault, PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO), str(TESTS), os.environ.get('PYTHONPATH')])))
    proc = subprocess.run([sys.executable, str(TOOLS / 'train.py'), 'crash.py', *args],
                          cwd=workspace, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, \
        f'expected a SIGKILL ({fault}), got {proc.returncode}:\n{proc.stdout[-4000:]}'
    return proc


@pytest.fixture(scope='module')
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('crash')
    data = make_demo_dataset(root / 'data', num_per_class=(2, 1, 1), image_size=32, seed=3)
    (root / 'crash.py').write_text(CONFIG.format(
        base=str(REPO / 'configs' / 'hifuse' / 'hifuse-tiny_demo.py'), data_root=str(data),
        epochs=EPOCHS))
    return root


def _final_state(run: Path) -> dict:
    return load_checkpoint_file(run / f'epoch_{EPOCHS}.pth', map_location='cpu')


@pytest.fixture(scope='module')
def reference(workspace) -> Path:
    """The uninterrupted run."""
    _train_in_process(workspace, '--work-dir', 'reference')
    return workspace / 'reference'


def test_killed_twice_then_resumed_equals_uninterrupted(workspace, reference):
    crashed = workspace / 'crashed'
    # 1. Killed mid-epoch 2 (after its first iteration): epoch 1 is on disk.
    out = _train_killed(workspace, 'iter:3', '--work-dir', 'crashed').stdout
    assert 'Epoch(train) [2][1/2]' in out and 'Epoch(train) [2][2/2]' not in out
    # deterministic=True: workers restart every epoch, seeded from (seed, epoch).
    assert "type='epoch_worker_seed'" in out and 'persistent_workers=False' in out
    assert (crashed / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')
    assert not (crashed / 'epoch_2.pth').exists()

    # 2. Resumed from epoch 1, killed while epoch_3.pth is being written.
    out = _train_killed(workspace, 'save:epoch_3.pth', '--work-dir', 'crashed',
                        '--resume').stdout
    assert re.search(r'resumed epoch: 1, iter: 2', out)
    assert 'Epoch(train) [2][1/2]' in out and 'Epoch(train) [3][2/2]' in out
    # The half-written temporary never became epoch_3.pth; the pointer still names epoch 2,
    # which is complete (the demo config keeps one epoch checkpoint: mmengine would have
    # deleted it before writing epoch 3), loads and carries our signature.
    assert not (crashed / 'epoch_3.pth').exists()
    partial, = crashed.glob('.epoch_3.pth.tmp-*')
    assert partial.stat().st_size > 0
    latest = crashed / (crashed / 'last_checkpoint').read_text().strip()  # relative to it
    assert latest.name == 'epoch_2.pth'
    assert load_checkpoint_file(latest)['meta']['epoch'] == 2
    assert verify_signature(latest).allowed

    # 3. Resumed again: finishes the run.
    _train_in_process(workspace, '--work-dir', 'crashed', '--resume')
    assert not list(crashed.glob('.epoch_3.pth.tmp-*'))  # the stale temporary is cleaned up
    assert verify_signature(crashed / f'epoch_{EPOCHS}.pth').allowed

    _assert_same_run(reference, crashed)


def _assert_same_run(reference_dir: Path, crashed: Path) -> None:
    """The crashed-and-resumed run ended exactly as the uninterrupted one: weights, optimizer
    state, every epoch's validation metrics, the best checkpoint (name, score, weights)."""
    reference, resumed = _final_state(reference_dir), _final_state(crashed)
    assert reference['meta']['epoch'] == resumed['meta']['epoch'] == EPOCHS
    _assert_same_weights(reference['state_dict'], resumed['state_dict'])
    assert reference['state_dict']['head.fc.weight'].abs().sum() > 0
    first = next(iter(reference['optimizer']['state'].values()))
    second = next(iter(resumed['optimizer']['state'].values()))
    assert all(torch.equal(first[k], second[k]) for k in first if torch.is_tensor(first[k]))

    # Every epoch's validation metrics (the crashed run's spread over its logs) and the
    # best-checkpoint bookkeeping are the same.
    assert _val_metrics(reference_dir) == _val_metrics(crashed)
    assert sorted(_val_metrics(crashed)) == list(range(1, EPOCHS + 1))
    ref_info, res_info = reference['message_hub']['runtime_info'], \
        resumed['message_hub']['runtime_info']
    assert ref_info['best_score'] == res_info['best_score']
    assert Path(ref_info['best_ckpt']).name == Path(res_info['best_ckpt']).name
    best = sorted(p.name for p in reference_dir.glob('best_*.pth'))
    assert sorted(p.name for p in crashed.glob('best_*.pth')) == best
    _assert_same_weights(load_checkpoint_file(reference_dir / best[0])['state_dict'],
                         load_checkpoint_file(crashed / best[0])['state_dict'])


def _assert_same_weights(expected: dict, actual: dict) -> None:
    assert expected.keys() == actual.keys()
    different = [k for k, v in expected.items() if not torch.equal(v, actual[k])]
    assert not different, f'weights differ after resuming: {different[:5]}'


def test_killed_before_validating_an_epoch_then_resumed_validates_it(workspace, reference):
    """Killed after epoch 1's checkpoint was saved, before epoch 1 was validated: the resume
    validates epoch 1 before training epoch 2, so the best checkpoint is the uninterrupted
    run's (every epoch scores the same macro F1 here: the best is the first, epoch 1)."""
    crashed = workspace / 'unvalidated'
    out = _train_killed(workspace, 'val:1', '--work-dir', 'unvalidated').stdout
    assert 'Saving checkpoint at 1 epochs' in out and 'Epoch(val)' not in out
    assert (crashed / 'last_checkpoint').read_text().strip().endswith('epoch_1.pth')
    assert not list(crashed.glob('best_*.pth')) and not (crashed / 'epoch_2.pth').exists()

    _train_in_process(workspace, '--work-dir', 'unvalidated', '--resume')
    _assert_same_run(reference, crashed)
    log = sorted(crashed.glob('*/*.log'))[-1].read_text()
    assert 'epoch_1.pth (epoch 1, iteration 2) was saved but the run stopped before ' \
        'validating it: validating it now' in log
    # Validated once, before epoch 2 trains.
    assert log.index('Epoch(val) [1][1/1]    medical/') < log.index('Epoch(train) [2][1/2]')
    assert log.count('Epoch(val) [1][1/1]    medical/') == 1


def _val_metrics(run: Path) -> dict:
    """``{epoch: {metric: value}}`` from the run's logs, oldest log first."""
    metrics = {}
    for log in sorted(run.glob('*/vis_data/scalars.json')):
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            values = {k: v for k, v in entry.items() if k.startswith('medical/')}
            if values:
                metrics[entry['step']] = values
    return metrics


def _in_child(write) -> int:
    """Run ``write`` in a forked child; return its exit signal (the child kills itself)."""
    pid = os.fork()
    if pid == 0:  # child: never returns to pytest
        try:
            write()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0


def _kill_at_fsync():
    def fsync(fd):
        os.ftruncate(fd, os.fstat(fd).st_size // 2)
        os.kill(os.getpid(), signal.SIGKILL)
    os.fsync = fsync


@pytest.mark.parametrize('kind', ['pointer', 'checkpoint'])
def test_kill_during_write_keeps_the_old_file(tmp_path, kind):
    """The real writers used for ``last_checkpoint`` (CheckpointHook's ``open``, as
    CrashSafeCheckpointHook saves) and for checkpoint bytes (the ``hifuse_atomic_local``
    backend HiFuseRunner saves with), killed in the middle of a write."""
    from mmengine.hooks import checkpoint_hook

    target = tmp_path / ('last_checkpoint' if kind == 'pointer' else 'epoch_1.pth')
    old = b'work_dirs/x/epoch_1.pth' if kind == 'pointer' else os.urandom(4096)
    atomic_write_bytes(target, old)
    with atomic_last_checkpoint():
        assert checkpoint_hook.open is atomic_open  # what CheckpointHook writes the pointer with

        def write():
            _kill_at_fsync()
            if kind == 'pointer':
                with checkpoint_hook.open(str(target), 'w') as stream:
                    stream.write('work_dirs/x/epoch_2.pth')
            else:
                AtomicLocalBackend().put(os.urandom(8192), str(target))

        assert _in_child(write) == signal.SIGKILL
    assert target.read_bytes() == old
    partial, = tmp_path.glob(f'.{target.name}.tmp-*')
    assert 0 < partial.stat().st_size < 8192
    # The next complete write replaces the file and removes the dead writer's temporary.
    AtomicLocalBackend().put(b'new', str(target))
    assert target.read_bytes() == b'new'
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
