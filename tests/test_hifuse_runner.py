"""HiFuseRunner and CrashSafeCheckpointHook, piece by piece and without the tools'
process-wide ``install()`` (the end-to-end behaviour through the tools is in
tests/test_checkpoint_safety.py, test_crash_resume.py, test_bad_inputs.py, test_distributed.py;
tests/test_import_isolation.py shows a run leaves mmengine as it was)."""
import socket
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.dist import utils as dist_utils
from mmengine.hooks import CheckpointHook
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import DefaultScope
from mmengine.runner import checkpoint as mm_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader
from mmpretrain.registry import HOOKS, MODELS, RUNNERS

from hifuse_mm.engine import (CheckpointMismatchError, CrashSafeCheckpointHook, HiFuseRunner,
                              UntrustedCheckpointError)
from hifuse_mm.engine.atomic_backend import ATOMIC_LOCAL_BACKEND, AtomicLocalBackend
from hifuse_mm.engine.checkpoint_trust import signature_path
from hifuse_mm.utils import device
from helpers import REPO
from tiny_config import make_data, write_config


def test_registered_and_selected_by_our_runtime():
    assert RUNNERS.get('HiFuseRunner') is HiFuseRunner
    assert HOOKS.get('CrashSafeCheckpointHook') is CrashSafeCheckpointHook
    runtime = Config.fromfile(str(REPO / 'configs' / '_base_' / 'default_runtime.py'))
    assert runtime.runner_type == 'mmpretrain.HiFuseRunner'
    # Found from mmengine's root RUNNERS too (what MMPretrain's tools/train.py builds with),
    # with no default scope set.
    assert MMENGINE_RUNNERS.get(runtime.runner_type) is HiFuseRunner
    assert runtime.default_hooks.checkpoint.type == 'CrashSafeCheckpointHook'


def _bare_runner() -> HiFuseRunner:
    runner = HiFuseRunner.__new__(HiFuseRunner)  # only what the tested methods use
    runner._hooks = []
    return runner


@pytest.mark.parametrize('kind', ['CheckpointHook', 'mmengine.CheckpointHook', CheckpointHook])
def test_plain_checkpoint_hook_becomes_crash_safe(kind):
    runner = _bare_runner()
    runner.register_hook(dict(type=kind, interval=2, max_keep_ckpts=1))
    hook, = runner._hooks
    assert type(hook) is CrashSafeCheckpointHook
    assert (hook.interval, hook.max_keep_ckpts) == (2, 1)
    other = _bare_runner()
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        other.register_hook(dict(type='EpochReseedHook'))
    assert type(other._hooks[0]).__name__ == 'EpochReseedHook'


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not device.on_cpu_only_host(), reason='CPU-only behaviour')
def test_setup_env_starts_gloo_itself_on_a_cpu_only_host(monkeypatch):
    for key, value in dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1', MASTER_ADDR='127.0.0.1',
                           MASTER_PORT=str(_free_port())).items():
        monkeypatch.setenv(key, value)
    for key in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS'):  # mmengine sets them for dist runs
        monkeypatch.delenv(key, raising=False)

    def must_not_run(*args, **kwargs):
        raise AssertionError("mmengine's initialiser (torch.cuda.set_device) was called")

    monkeypatch.setattr(dist_utils, '_init_dist_pytorch', must_not_run)
    monkeypatch.setattr(torch.cuda, 'set_device', must_not_run)
    runner = _bare_runner()
    runner._launcher, runner._distributed = 'pytorch', True
    runner.setup_env(dict(dist_cfg=dict(backend='nccl', timeout=60)))
    try:
        assert torch.distributed.get_backend() == 'gloo'
        assert (runner.rank, runner.world_size) == (0, 1)
    finally:
        torch.distributed.destroy_process_group()


class _SaveFails(RuntimeError):
    pass


def _fake_runner(work_dir: Path, name: str) -> SimpleNamespace:
    """What CheckpointHook uses of a runner; save_checkpoint writes (and signs) a small file,
    or dies half way when ``runner.fail`` is set."""
    runner = SimpleNamespace(work_dir=str(work_dir), logger=MMLogger.get_current_instance(),
                             message_hub=MessageHub.get_instance(name), fail=False,
                             backends=[])

    def save_checkpoint(out_dir, filename, *args, backend_args=None, **kwargs):
        runner.backends.append(backend_args)
        if runner.fail:
            raise _SaveFails(filename)
        path = Path(out_dir) / filename
        AtomicLocalBackend().put(filename.encode(), str(path))
        signature_path(path).write_text('{}')

    runner.save_checkpoint = save_checkpoint
    return runner


@pytest.mark.parametrize('hook_type', [CheckpointHook, CrashSafeCheckpointHook])
def test_old_checkpoint_is_deleted_only_after_the_new_one_is_saved(tmp_path, hook_type):
    hook = hook_type(interval=1, max_keep_ckpts=1)
    runner = _fake_runner(tmp_path, f'deferred-{hook_type.__name__}')
    hook.before_train(runner)
    for epoch in (1, 2):
        hook._save_checkpoint_with_step(runner, epoch, dict(epoch=epoch))
    saved = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    pointer = (tmp_path / 'last_checkpoint').read_text()
    assert pointer == str(tmp_path / 'epoch_2.pth')

    runner.fail = True  # the save of epoch 3 dies half way
    with pytest.raises(_SaveFails):
        hook._save_checkpoint_with_step(runner, 3, dict(epoch=3))
    if hook_type is CheckpointHook:  # mmengine: epoch 2 is gone, the pointer names it
        assert not (tmp_path / 'epoch_2.pth').exists()
        return
    # Ours: the checkpoint the pointer names is still there (and epoch 1 went with its .sig).
    assert saved == ['epoch_2.pth', 'epoch_2.pth.sig', 'last_checkpoint']
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == saved
    assert (tmp_path / 'last_checkpoint').read_text() == pointer
    assert runner.backends == [dict(backend=ATOMIC_LOCAL_BACKEND)] * 3


# -- loading, without the tools' process-wide install() ------------------------------------------
@pytest.fixture
def mmengine_loader(monkeypatch):
    """mmengine's own local loader under '' (as without install()), put back afterwards."""
    monkeypatch.setitem(CheckpointLoader._schemes, '', mm_checkpoint.load_from_local)
    return mm_checkpoint.load_from_local


def _runner(root: Path, name: str, **changes) -> HiFuseRunner:
    cfg = Config.fromfile(str(root / 'tiny.py'))
    cfg.work_dir = str(root / name)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].num_workers, cfg[key].persistent_workers = 0, False
    cfg.merge_from_dict(changes)
    runner = MMENGINE_RUNNERS.build(cfg)
    assert type(runner) is HiFuseRunner
    return runner


def test_runs_load_safely_and_strictly_by_themselves(tmp_path, mmengine_loader):
    write_config(tmp_path / 'tiny.py', make_data(tmp_path))
    cfg = Config.fromfile(str(tmp_path / 'tiny.py'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        weights = MODELS.build(cfg.model).state_dict()
        cfg.merge_from_dict({'model.head.num_classes': 3})
        three = MODELS.build(cfg.model).state_dict()
    untrusted = tmp_path / 'untrusted.pth'
    torch.save(dict(state_dict=weights, meta=dict(epoch=1, iter=1, note=Fraction(1, 3))),
               untrusted)
    torch.save(dict(state_dict=three, meta=dict(epoch=1)), tmp_path / 'three.pth')

    with pytest.raises(UntrustedCheckpointError, match='only done for --resume'):
        _runner(tmp_path, 'load', load_from=str(untrusted)).test()
    with pytest.raises(UntrustedCheckpointError, match='being resumed but it has no signature'):
        _runner(tmp_path, 'resume', load_from=str(untrusted), resume=True).train()
    with pytest.raises(UntrustedCheckpointError):  # init_cfg=dict(type='Pretrained')
        _runner(tmp_path, 'init', **{'model.backbone.init_cfg': dict(
            type='Pretrained', checkpoint=str(untrusted), prefix='backbone.')}).train()
    with pytest.raises(CheckpointMismatchError, match=rf'^{tmp_path / "three.pth"} does not fit '
                       r'.*head\.fc\.weight: checkpoint \[3, 128\] vs model \[4, 128\]'):
        _runner(tmp_path, 'strict', load_from=str(tmp_path / 'three.pth')).test()
    assert CheckpointLoader._schemes[''] is mmengine_loader  # put back after each run


def test_tools_give_a_config_without_runner_type_the_hifuse_runner(tmp_path):
    from hifuse_mm.engine.runs import build_runner
    write_config(tmp_path / 'tiny.py', make_data(tmp_path))
    cfg = Config.fromfile(str(tmp_path / 'tiny.py'))
    cfg.work_dir = str(tmp_path / 'plain')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].num_workers, cfg[key].persistent_workers = 0, False
    cfg.pop('runner_type', None)
    assert type(build_runner(cfg)) is HiFuseRunner
    cfg.runner_type = 'Runner'  # a runner the config names is honoured
    assert type(build_runner(cfg)) is not HiFuseRunner


def test_runs_built_in_one_process_never_share_a_name_or_a_log_file(tmp_path):
    """mmengine names a run (log folder, logger, visualizer) after its config and the second
    it is built in; build_runner starts each run of this process in a new second, so two runs
    built back to back, into the same work dir or two, each log into their own file."""
    from hifuse_mm.engine.runs import build_runner
    write_config(tmp_path / 'tiny.py', make_data(tmp_path))
    cfg = Config.fromfile(str(tmp_path / 'tiny.py'))
    runners = []
    for work_dir in ('a', 'a', 'b'):
        cfg.work_dir = str(tmp_path / work_dir)
        runners.append(build_runner(cfg))
        runners[-1].logger.info(f'this is run {len(runners)}')
    names = [runner.experiment_name for runner in runners]
    assert len(set(names)) == 3 and len({runner.timestamp for runner in runners}) == 3
    assert len({id(runner.logger) for runner in runners}) == 3
    assert len({id(runner.visualizer) for runner in runners}) == 3
    for i, runner in enumerate(runners, 1):
        log = Path(runner.log_dir) / f'{runner.timestamp}.log'
        assert log.is_file() and f'this is run {i}' in log.read_text()
        assert all(f'this is run {j}' not in log.read_text() for j in range(1, 4) if j != i)
    assert sorted(p.name for p in (tmp_path / 'a').iterdir() if p.is_dir()) == sorted(
        runner.timestamp for runner in runners[:2])
