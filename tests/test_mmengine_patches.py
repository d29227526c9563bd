"""One test per change of mmengine internals (hifuse_mm/engine/mmengine_patches.py): that its
target is still there and used the way the patch assumes (mmengine 0.10.7 / onedl-mmengine
0.10.12), that it takes effect, and, for the scoped ones, that it restores exactly what was
there, nested and after an error. The CPU gloo initialiser's effect is
tests/test_compat.py::test_init_dist_pytorch_uses_gloo_without_cuda."""
import inspect
from collections import OrderedDict
from fractions import Fraction

import mmengine
import pytest
import torch
from mmengine.dist import utils as dist_utils
from mmengine.hooks import CheckpointHook, checkpoint_hook
from mmengine.model.weight_init import PretrainedInit
from mmengine.runner import checkpoint as mm_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from hifuse_mm.engine import UntrustedCheckpointError, mmengine_patches
from hifuse_mm.engine.atomic_io import atomic_open
from hifuse_mm.engine.checkpoint_schemes import SAFE_LOADERS, is_safe_loader
from hifuse_mm.engine.safe_checkpoint import load_from_local


def test_target_version_is_the_installed_one():
    """A new mmengine needs these patches re-checked (and this constant moved)."""
    assert mmengine.__version__ == mmengine_patches.TARGET_MMENGINE or \
        mmengine.__version__ == '0.10.12'  # onedl-mmengine, same code at every target


@pytest.fixture
def untrusted(tmp_path):
    """A checkpoint that needs full unpickling (a Fraction) and that nobody trusts."""
    path = tmp_path / 'untrusted.pth'
    torch.save(dict(state_dict=dict(weight=torch.ones(2, 2), bias=torch.ones(2)),
                    meta=dict(note=Fraction(1, 3))), path)
    return str(path)


# 1. safe_local_loading ----------------------------------------------------------------------
def test_safe_local_loading_target():
    # mmengine dispatches plain paths to the loader under the '' prefix, which is what
    # load_checkpoint / init_cfg Pretrained end in.
    assert '' in CheckpointLoader._schemes
    assert 'CheckpointLoader.load_checkpoint' in inspect.getsource(mm_checkpoint._load_checkpoint)
    assert '_load_checkpoint(' in inspect.getsource(mm_checkpoint.load_checkpoint)


def test_safe_local_loading_scope(untrusted):
    before = CheckpointLoader._schemes['']
    with mmengine_patches.safe_local_loading():
        assert CheckpointLoader._get_checkpoint_loader('x.pth') is load_from_local
        with mmengine_patches.safe_local_loading():  # nested
            assert CheckpointLoader._schemes[''] is load_from_local
        assert CheckpointLoader._schemes[''] is load_from_local
        assert list(CheckpointLoader._schemes)[-1] == ''  # still tried last
        model = torch.nn.Linear(2, 2)
        with pytest.raises(UntrustedCheckpointError):  # init_cfg=dict(type='Pretrained')
            PretrainedInit(checkpoint=untrusted)(model)
        with pytest.raises(UntrustedCheckpointError):
            mm_checkpoint.load_checkpoint(model, untrusted)
    assert CheckpointLoader._schemes[''] is before
    with pytest.raises(RuntimeError), mmengine_patches.safe_local_loading():
        raise RuntimeError('a failing run')
    assert CheckpointLoader._schemes[''] is before


def test_safe_checkpoint_loading_schemes_target():
    """mmengine registers seven scheme loaders; each of their prefixes has one of ours (a new
    mmengine with another scheme gets a refusing loader until this is checked)."""
    source = inspect.getsource(mm_checkpoint)
    assert source.count('@CheckpointLoader.register_scheme(') == 7
    for prefix in filter(None, SAFE_LOADERS):
        assert f"'{prefix}'" in source, prefix
    assert "load_url(" in inspect.getsource(mm_checkpoint.load_from_http)  # what we replace


def test_safe_checkpoint_loading_covers_every_scheme(monkeypatch):
    """Inside: every registered prefix (also one another package registered) has our loader;
    on exit each gets exactly its loader back, and one registered meanwhile stays."""
    def load_from_plugin(filename, map_location=None):
        raise AssertionError('a loader hifuse-mm does not know was used')

    schemes = OrderedDict(CheckpointLoader._schemes)
    monkeypatch.setattr(CheckpointLoader, '_schemes', schemes)
    CheckpointLoader.register_scheme(prefixes='plugin://', loader=load_from_plugin)
    before = dict(CheckpointLoader._schemes)
    with mmengine_patches.safe_checkpoint_loading():
        inside = dict(CheckpointLoader._schemes)
        assert list(inside) == list(before)
        assert all(is_safe_loader(loader) for loader in inside.values())
        assert inside['https://'] is SAFE_LOADERS['https://']
        with mmengine_patches.safe_checkpoint_loading():  # nested
            assert CheckpointLoader._schemes == inside
        assert CheckpointLoader._schemes == inside
        with pytest.raises(UntrustedCheckpointError, match="prefix 'plugin://'"):
            mm_checkpoint._load_checkpoint('plugin://x.pth')
        CheckpointLoader.register_scheme(prefixes='later://', loader=load_from_plugin)
    assert {p: CheckpointLoader._schemes[p] for p in before} == before
    assert all(CheckpointLoader._schemes[p] is loader for p, loader in before.items())
    assert CheckpointLoader._schemes['later://'] is load_from_plugin
    with pytest.raises(RuntimeError), mmengine_patches.safe_checkpoint_loading():
        raise RuntimeError('a failing run')
    assert all(CheckpointLoader._schemes[p] is loader for p, loader in before.items())


# 2. atomic_last_checkpoint ------------------------------------------------------------------
def test_atomic_last_checkpoint_target():
    # CheckpointHook writes the pointer with its module's open(); the module has no own open.
    source = inspect.getsource(CheckpointHook._save_checkpoint_with_step)
    assert "open(save_file, 'w')" in source and 'last_checkpoint' in source
    assert 'open' not in vars(checkpoint_hook)


def test_atomic_last_checkpoint_scope(tmp_path):
    with mmengine_patches.atomic_last_checkpoint():
        assert checkpoint_hook.open is atomic_open
        with mmengine_patches.atomic_last_checkpoint():
            assert checkpoint_hook.open is atomic_open
        assert checkpoint_hook.open is atomic_open
        with checkpoint_hook.open(str(tmp_path / 'last_checkpoint'), 'w') as stream:
            stream.write('epoch_1.pth')
            assert not (tmp_path / 'last_checkpoint').exists()  # appears whole on close
    assert (tmp_path / 'last_checkpoint').read_text() == 'epoch_1.pth'
    assert 'open' not in vars(checkpoint_hook)
    with pytest.raises(RuntimeError), mmengine_patches.atomic_last_checkpoint():
        raise RuntimeError('a failing save')
    assert 'open' not in vars(checkpoint_hook)


# 3. install_safe_local_loading (process-wide, install() only) ------------------------------
def test_install_safe_local_loading(untrusted):
    mmengine_patches.install_safe_local_loading()
    schemes = CheckpointLoader._schemes
    mmengine_patches.install_safe_local_loading()
    assert CheckpointLoader._schemes is schemes  # idempotent: nothing re-registered
    assert CheckpointLoader._get_checkpoint_loader('x.pth') is load_from_local
    assert CheckpointLoader._get_checkpoint_loader('https://x/y.pth') is not load_from_local
    with pytest.raises(UntrustedCheckpointError):
        CheckpointLoader.load_checkpoint(untrusted)


# 4. install_cpu_gloo_init (process-wide, install() only) -----------------------------------
def test_install_cpu_gloo_init_target():
    # init_dist reaches the PyTorch-launcher initialiser through the module global.
    source = inspect.getsource(dist_utils.init_dist)
    assert '_init_dist_pytorch(backend' in source
    assert 'torch.cuda.set_device(local_rank)' in inspect.getsource(
        getattr(dist_utils._init_dist_pytorch, '__wrapped__', dist_utils._init_dist_pytorch))


def test_install_cpu_gloo_init_is_idempotent():
    mmengine_patches.install_cpu_gloo_init()
    installed = dist_utils._init_dist_pytorch
    mmengine_patches.install_cpu_gloo_init()
    assert dist_utils._init_dist_pytorch is installed
    assert getattr(installed, '_hifuse_cpu_aware', False)
    assert not getattr(installed.__wrapped__, '_hifuse_cpu_aware', False)
