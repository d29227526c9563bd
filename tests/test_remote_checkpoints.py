"""Checkpoints by URL and every other scheme mmengine knows follow the local policy (issue 14.1).

mmengine's own http loader unpickles through ``torch.hub.load_state_dict_from_url``, whose
``weights_only`` defaults to False, and its other schemes use plain ``torch.load``. Here a
loopback HTTP server (in a thread; no network) serves a weights-only checkpoint, which loads
(with our allowlist: it holds a ``HistoryBuffer``), and a checkpoint whose unpickling would
create a marker file, which is refused at every entry point: mmengine's loading functions after
the tools' ``install()``, a ``HiFuseRunner``'s ``load_from`` and
``init_cfg=dict(type='Pretrained')`` without ``install()``, ``tools/test.py CONFIG URL`` as a
subprocess, and the model-zoo, object-storage and unknown schemes. The marker never appears.
"""
import functools
import subprocess
import sys
import threading
import types
from collections import OrderedDict
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.model.weight_init import PretrainedInit
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import DefaultScope
from mmengine.runner import checkpoint as mm_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint, load_checkpoint
from mmpretrain.registry import MODELS

from hifuse_mm import cli, engine
from hifuse_mm.apis import ModelLoadError, load_model, publish_checkpoint
from hifuse_mm.engine import UntrustedCheckpointError, load_checkpoint_file, mmengine_patches
from helpers import TOOLS, Payload, inside, repo_env
from tiny_config import make_data, write_config

REFUSED = 'refusing to load'




class _QuietHandler(SimpleHTTPRequestHandler):

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope='module')
def space(tmp_path_factory):
    """A tiny config, and its model's weights served over loopback HTTP as ``good_*.pth`` (with
    a HistoryBuffer and numpy values, as training checkpoints hold) and ``hostile_*.pth``."""
    root = tmp_path_factory.mktemp('remote')
    write_config(root / 'tiny.py', make_data(root))
    cfg = Config.fromfile(str(root / 'tiny.py'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        weights = MODELS.build(cfg.model).state_dict()
    served = root / 'served'
    served.mkdir()
    buffer = HistoryBuffer()
    buffer.update(0.5)
    marker = root / 'PWNED'
    for name in ('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'):
        torch.save(dict(state_dict=weights, meta=dict(epoch=1, scalar=np.float64(1.5)),
                        message_hub=dict(log_scalars=dict(loss=buffer))),
                   served / f'good_{name}.pth')
        torch.save(dict(state_dict=weights, meta=dict(epoch=1, note=Payload(marker))),
                   served / f'hostile_{name}.pth')
    server = ThreadingHTTPServer(('127.0.0.1', 0),
                                 functools.partial(_QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield types.SimpleNamespace(root=root, url=f'http://127.0.0.1:{server.server_port}',
                                marker=marker, weights=weights)
    server.shutdown()
    server.server_close()


@pytest.fixture
def env(space, tmp_path, monkeypatch):
    """Downloads go to a fresh torch cache; loopback never goes through a proxy."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.setenv('NO_PROXY', '127.0.0.1,localhost')
    monkeypatch.setenv('no_proxy', '127.0.0.1,localhost')
    space.marker.unlink(missing_ok=True)
    yield space
    space.marker.unlink(missing_ok=True)


#: The loaders mmengine registers itself (what a process has without hifuse_mm's install()).
MMENGINE_SCHEMES = {
    '': mm_checkpoint.load_from_local,
    'http://': mm_checkpoint.load_from_http,
    'https://': mm_checkpoint.load_from_http,
    'pavi://': mm_checkpoint.load_from_pavi,
    r'(\S+\:)?s3://': mm_checkpoint.load_from_ceph,
    r'(\S+\:)?petrel://': mm_checkpoint.load_from_ceph,
    'modelzoo://': mm_checkpoint.load_from_torchvision,
    'torchvision://': mm_checkpoint.load_from_torchvision,
    'open-mmlab://': mm_checkpoint.load_from_openmmlab,
    'openmmlab://': mm_checkpoint.load_from_openmmlab,
    'mmcls://': mm_checkpoint.load_from_mmcls,
}


@pytest.fixture
def mmengine_schemes(monkeypatch):
    """mmengine's own loaders for every scheme (as without install()), put back afterwards."""
    schemes = OrderedDict(sorted(MMENGINE_SCHEMES.items(), reverse=True))
    monkeypatch.setattr(CheckpointLoader, '_schemes', schemes)
    return schemes


def _refuses(load, marker: Path, *fragments: str) -> str:
    with pytest.raises(UntrustedCheckpointError) as info:
        load()
    message = str(info.value)
    assert REFUSED in message and all(f in message for f in fragments), message
    assert not marker.exists(), 'the payload ran'
    return message


def test_http_after_install(env):
    """What the tools get: mmengine's loading functions, by URL, weights-only with our
    allowlist; a pickle that runs code is refused, and runs only with explicit trust."""
    engine.install()
    good = f'{env.url}/good_a.pth'
    for loaded in (CheckpointLoader.load_checkpoint(good), _load_checkpoint(good)):
        assert isinstance(loaded['message_hub']['log_scalars']['loss'], HistoryBuffer)
        assert loaded['meta']['scalar'] == 1.5
    hostile = f'{env.url}/hostile_a.pth'
    model = torch.nn.Linear(2, 2)
    for load in (lambda: load_checkpoint(model, hostile), lambda: _load_checkpoint(hostile),
                 lambda: CheckpointLoader.load_checkpoint(hostile),
                 lambda: PretrainedInit(checkpoint=hostile)(model)):
        _refuses(load, env.marker, hostile, 'posix.system', '--trust-checkpoint')
    # Fetched files are never trusted by signature, resumed or not.
    with engine.resuming():
        _refuses(lambda: _load_checkpoint(hostile), env.marker, 'URL or remote storage')
    with engine.trust_all_checkpoints():  # the refusal is the policy: trusted, it runs
        _load_checkpoint(hostile)
    assert env.marker.exists()


def test_runner_scope_covers_every_scheme(env, mmengine_schemes):
    """Without install(): inside a HiFuseRunner's scope every scheme is ours, and on exit every
    prefix has exactly mmengine's loader back."""
    before = dict(mmengine_schemes)
    model = torch.nn.Linear(2, 2)
    hostile = f'{env.url}/hostile_b.pth'
    with mmengine_patches.safe_local_loading():
        assert set(CheckpointLoader._schemes) == set(before)
        assert not set(CheckpointLoader._schemes.values()) & set(before.values())
        _refuses(lambda: PretrainedInit(checkpoint=hostile)(model), env.marker, hostile)
        _refuses(lambda: load_checkpoint(model, hostile), env.marker)
        loaded = _load_checkpoint(f'{env.url}/good_b.pth')
        assert isinstance(loaded['message_hub']['log_scalars']['loss'], HistoryBuffer)
    assert list(CheckpointLoader._schemes) == list(before)
    assert all(CheckpointLoader._schemes[p] is loader for p, loader in before.items())


def test_zoo_storage_and_unknown_schemes(env, mmengine_schemes, monkeypatch):
    """torchvision://, open-mmlab://, mmcls://, s3://, pavi:// keep their transport and names
    but load with our policy; a prefix with a loader we do not know is refused."""
    hostile, good = f'{env.url}/hostile_c.pth', f'{env.url}/good_c.pth'
    data = (env.root / 'served' / 'hostile_c.pth').read_bytes()
    monkeypatch.setattr(mm_checkpoint, 'get_torchvision_models',
                        lambda: dict(evil=hostile, fine=good))
    monkeypatch.setattr(mm_checkpoint, 'get_external_models', lambda: dict(evil=hostile))
    monkeypatch.setattr(mm_checkpoint, 'get_mmcls_models', lambda: dict(evil=hostile))

    class Storage:
        def get(self, filepath):
            return data

    import mmengine.fileio
    monkeypatch.setattr(mmengine.fileio, 'get_file_backend', lambda *a, **k: Storage())
    monkeypatch.setattr(mm_checkpoint, 'get_file_backend', lambda *a, **k: Storage())

    class Model:
        name = 'evil.pth'

        def download(self, path):
            Path(path).write_bytes(data)

    monkeypatch.setitem(sys.modules, 'pavi', types.SimpleNamespace(
        modelcloud=types.SimpleNamespace(get=lambda path: Model())))
    monkeypatch.setitem(sys.modules, 'pavi.modelcloud', sys.modules['pavi'].modelcloud)

    unknown_calls = []

    def load_from_plugin(filename, map_location=None):  # a plugin's loader: unpickles fully
        unknown_calls.append(filename)
        return torch.load(env.root / 'served' / 'hostile_c.pth', weights_only=False)

    CheckpointLoader.register_scheme(prefixes='plugin://', loader=load_from_plugin)
    engine.install()
    for name in ('torchvision://evil', 'modelzoo://evil', 'open-mmlab://evil',
                 'openmmlab://evil', 'mmcls://evil', 's3://bucket/evil.pth',
                 'cluster:s3://bucket/evil.pth', 'petrel://bucket/evil.pth',
                 'pavi://project/evil'):
        _refuses(lambda: _load_checkpoint(name), env.marker, 'posix.system')
    _refuses(lambda: _load_checkpoint('plugin://evil.pth'), env.marker,
             "prefix 'plugin://'", 'download the file')
    assert unknown_calls == []
    _refuses(lambda: _load_checkpoint('ftp://host/evil.pth'), env.marker, 'ftp://')
    assert _load_checkpoint('torchvision://fine')['meta']['epoch'] == 1


def _runner(root: Path, name: str, **changes):
    cfg = Config.fromfile(str(root / 'tiny.py'))
    cfg.work_dir = str(root / name)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].num_workers, cfg[key].persistent_workers = 0, False
    cfg.merge_from_dict(changes)
    return MMENGINE_RUNNERS.build(cfg)


def test_runner_load_from_and_pretrained_by_url(env, mmengine_schemes):
    """A HiFuseRunner by itself (no install()): load_from and init_cfg Pretrained by URL."""
    hostile = f'{env.url}/hostile_d.pth'
    _refuses(lambda: _runner(env.root, 'load', load_from=hostile).test(), env.marker, hostile)
    _refuses(lambda: _runner(env.root, 'init', **{'model.backbone.init_cfg': dict(
        type='Pretrained', checkpoint=hostile, prefix='backbone.')}).train(), env.marker)
    assert CheckpointLoader._schemes == mmengine_schemes


def test_tools_test_py_by_url(env, tmp_path):
    """``tools/test.py CONFIG URL`` as a user runs it: a hostile file is refused, a good one
    tested."""
    def test_py(url):
        return subprocess.run(
            [sys.executable, str(TOOLS / 'test.py'), 'tiny.py', url, '--work-dir',
             str(tmp_path / url.rsplit('/', 1)[1]), '--no-report'],
            cwd=env.root, env=repo_env(TORCH_HOME=str(tmp_path / 'torch_home'),
                                       NO_PROXY='127.0.0.1,localhost'),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=900)

    proc = test_py(f'{env.url}/hostile_e.pth')
    assert proc.returncode == 1 and REFUSED in proc.stderr, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr
    assert not env.marker.exists(), 'the payload ran'
    # The good one through the same main in this process (env: the same torch cache).
    with inside(env.root):
        cli.test_main(['tiny.py', f'{env.url}/good_e.pth', '--work-dir',
                       str(tmp_path / 'good_e.pth'), '--no-report'])
    assert list((tmp_path / 'good_e.pth').glob('*/*.log'))


def test_direct_loaders_take_local_files_and_say_so(env, tmp_path):
    """The Python API and the converters read local files only: a URL is a clear error."""
    url = f'{env.url}/hostile_f.pth'
    with pytest.raises(FileNotFoundError, match='local checkpoint files only; download it'):
        load_checkpoint_file(url)
    with pytest.raises(ModelLoadError, match=f'^{url}: .*local checkpoint files only'):
        load_model(env.root / 'tiny.py', url, device='cpu')
    with pytest.raises(FileNotFoundError, match='local checkpoint files only'):
        publish_checkpoint(url, tmp_path / 'pub.pth')
    assert not env.marker.exists()
