"""Unit tests of the stack fixes (hifuse_mm.engine: safe loading, run_config, CPU amp, CPU
gloo, warning filters)."""
import os
import socket
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.runner.amp import autocast
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint, save_checkpoint

import hifuse_mm  # noqa: F401
from hifuse_mm import engine
from hifuse_mm.engine import run_config, warning_filters
from hifuse_mm.engine.safe_checkpoint import load_from_local
from hifuse_mm.utils import device
from mmpretrain.registry import OPTIM_WRAPPERS


@pytest.fixture(autouse=True, scope='module')
def installed():
    """These tests check the process-wide part our tools opt into (``import hifuse_mm`` alone
    changes nothing in mmengine: tests/test_import_isolation.py)."""
    engine.install()


def test_apply_is_idempotent():
    from mmengine.dist import utils as dist_utils
    engine.install()
    init = dist_utils._init_dist_pytorch
    engine.install()
    assert dist_utils._init_dist_pytorch is init
    assert not getattr(init.__wrapped__, '_hifuse_cpu_aware', False)
    assert CheckpointLoader._get_checkpoint_loader('x.pth') is load_from_local


# A. checkpoint loading ----------------------------------------------------------------------
def test_training_checkpoint_with_history_buffer_loads(tmp_path):
    buffer = HistoryBuffer()
    buffer.update(0.5)
    checkpoint = dict(
        meta=dict(epoch=2, np_scalar=np.float64(1.5), np_array=np.arange(3)),
        state_dict=dict(weight=torch.ones(2)),
        message_hub=dict(log_scalars=dict(loss=buffer)))
    path = str(tmp_path / 'epoch_2.pth')
    save_checkpoint(checkpoint, path)

    if not os.environ.get('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'):
        with pytest.raises(Exception, match='[Ww]eights only load failed'):
            torch.load(path)  # what mmengine 0.10.7 would do on torch>=2.6

    for loaded in (CheckpointLoader.load_checkpoint(path, map_location='cpu'),
                   _load_checkpoint(path, map_location='cpu')):
        assert isinstance(loaded['message_hub']['log_scalars']['loss'], HistoryBuffer)
        assert loaded['meta']['epoch'] == 2
        assert torch.equal(loaded['state_dict']['weight'], torch.ones(2))


def test_local_loader_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_from_local(str(tmp_path / 'missing.pth'))


# B. persistent_workers ----------------------------------------------------------------------
def test_fix_persistent_workers():
    cfg = Config(dict(
        train_dataloader=dict(num_workers=0, persistent_workers=True),
        val_dataloader=dict(num_workers=2, persistent_workers=True),
        test_dataloader=None))
    run_config.fix_persistent_workers(cfg)
    assert cfg.train_dataloader.persistent_workers is False
    assert cfg.val_dataloader.persistent_workers is True
    assert cfg.test_dataloader is None
    # The fixed settings are accepted by torch's DataLoader.
    torch.utils.data.DataLoader(range(4), num_workers=0,
                                persistent_workers=cfg.train_dataloader.persistent_workers)


# C. --amp on CPU ----------------------------------------------------------------------------
class _Probe(nn.Module):
    """Records the dtype of its linear layer's output."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 2)
        self.seen = []

    def forward(self, x):
        out = self.fc(x)
        self.seen.append(out.dtype)
        return out


@pytest.mark.skipif(not device.on_cpu_only_host(), reason='CPU-only behaviour')
def test_cpu_amp_optim_wrapper_trains_in_bf16():
    model = _Probe()
    wrapper = OPTIM_WRAPPERS.build(dict(
        type='CPUAwareAmpOptimWrapper', loss_scale='dynamic',
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    before = model.fc.weight.detach().clone()
    with wrapper.optim_context(model):
        loss = model(torch.randn(4, 8)).float().pow(2).mean()
    wrapper.update_params(loss)

    assert model.seen == [torch.bfloat16]
    assert model.fc.weight.dtype == torch.float32
    assert not torch.equal(model.fc.weight, before)
    state = wrapper.state_dict()
    assert 'loss_scaler' not in state
    # A GPU-written state (with a GradScaler entry) still loads on CPU.
    wrapper.load_state_dict({**state, 'loss_scaler': {'scale': 65536.0}})


def test_amp_optim_wrapper_cfg():
    optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-4))
    run_config.amp_optim_wrapper_cfg(optim_wrapper)
    assert optim_wrapper['type'] == 'CPUAwareAmpOptimWrapper'
    assert optim_wrapper['loss_scale'] == 'dynamic'


@pytest.mark.skipif(not device.on_cpu_only_host(), reason='CPU-only behaviour')
def test_test_time_autocast_runs_bf16_on_cpu():
    model = _Probe()
    with torch.no_grad(), autocast(enabled=True):  # what mmengine's TestLoop does for fp16
        model(torch.randn(2, 8))
    assert model.seen == [torch.bfloat16]


# D. distributed on CPU-only hosts -----------------------------------------------------------
def test_configure_distributed_cpu(monkeypatch):
    monkeypatch.setattr(device, 'on_cpu_only_host', lambda: True)
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl')), find_unused_parameters=True))
    run_config.configure_distributed(cfg, 'pytorch')
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=True, device_ids=None)

    user = Config(dict(model_wrapper_cfg=dict(type='MMDistributedDataParallel',
                                              broadcast_buffers=True)))
    run_config.configure_distributed(user, 'slurm')
    assert user.model_wrapper_cfg.broadcast_buffers is True
    assert user.model_wrapper_cfg.device_ids is None
    assert user.env_cfg.dist_cfg.backend == 'gloo'


def test_configure_distributed_noop(monkeypatch):
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    run_config.configure_distributed(cfg, 'none')
    monkeypatch.setattr(device, 'on_cpu_only_host', lambda: False)
    run_config.configure_distributed(cfg, 'pytorch')
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert 'model_wrapper_cfg' not in cfg


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not device.on_cpu_only_host(), reason='CPU-only behaviour')
def test_init_dist_pytorch_uses_gloo_without_cuda(monkeypatch):
    from mmengine.dist import init_dist
    for key, value in dict(RANK='0', LOCAL_RANK='0', WORLD_SIZE='1',
                           MASTER_ADDR='127.0.0.1', MASTER_PORT=str(_free_port())).items():
        monkeypatch.setenv(key, value)

    def no_cuda(*args, **kwargs):
        raise AssertionError('torch.cuda.set_device called on a CPU-only host')

    monkeypatch.setattr(torch.cuda, 'set_device', no_cuda)
    init_dist('pytorch', backend='nccl')
    try:
        assert torch.distributed.get_backend() == 'gloo'
        assert torch.distributed.get_world_size() == 1
    finally:
        torch.distributed.destroy_process_group()


# E. warning filters -------------------------------------------------------------------------
def test_harmless_warnings_are_filtered():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        engine.install()
        warnings.warn('Fail to import ``MultiScaleDeformableAttention`` from '
                      '``mmcv.ops.multi_scale_deform_attn``, You should install ``mmcv``')
        warnings.warn('`torch.cuda.amp.GradScaler(args...)` is deprecated. Please use '
                      '`torch.amp.GradScaler("cuda", args...)` instead.', FutureWarning)
        warnings.warn('`torch.cuda.amp.autocast(args...)` is deprecated.', FutureWarning)
        warnings.warn('torch.get_autocast_gpu_dtype() is deprecated. Please use '
                      "torch.get_autocast_dtype('cuda') instead.", DeprecationWarning)
        warnings.warn('an unrelated warning')
    assert [str(w.message) for w in caught] == ['an unrelated warning']
