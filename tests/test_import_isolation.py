"""``import hifuse_mm`` only registers new names; a HiFuseRunner run leaves mmengine as it was.

Each check runs in a fresh interpreter (this session's process has long imported hifuse_mm and
run its tools; the runs follow the import check in its interpreter, after its snapshots). It
snapshots mmengine's and MMPretrain's registries (every entry of every registry, children
included), the classes and module globals hifuse-mm used to patch, the file
backends, ``CheckpointLoader``'s schemes, MMPretrain's ``LoadImageFromFile`` and
``warnings.filters`` (tests/mmengine_state.py), then imports hifuse_mm (or trains, resumes and
tests with a ``HiFuseRunner``) and compares.
"""
import json
import subprocess
import sys

import pytest

from helpers import TESTS, repo_env

#: What the scripts below print before each JSON result.
MARKER = '@@RESULT@@'

#: Prints the modules other than hifuse_mm's that ``import hifuse_mm`` imports (in order).
DEPENDENCIES = """
import json, sys
import mmengine_state as state
state.import_registry_locations()
loaded = set(sys.modules)
import hifuse_mm
print('@@RESULT@@' + json.dumps([name for name in sys.modules
                                 if name not in loaded and name.partition('.')[0] != 'hifuse_mm']))
"""

IMPORT = """
import importlib, json, sys
import mmengine_state as state
state.import_registry_locations()
# What third-party modules do when imported (scipy adds warning filters) is not hifuse_mm's.
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception:
        pass
before = state.snapshot()
# Process-wide hooks that import hifuse_mm would install (fork handlers, exit handlers).
import atexit, os
hooks, real_fork, real_exit = [], os.register_at_fork, atexit.register
os.register_at_fork = lambda **kw: hooks.append('os.register_at_fork ' + repr(kw))
atexit.register = lambda f, *a, **kw: hooks.append('atexit.register ' + repr(f)) or f
import hifuse_mm
os.register_at_fork, atexit.register = real_fork, real_exit
after = state.snapshot()
changed, removed, added = state.difference(before, after)
print('@@RESULT@@' + json.dumps(dict(
    changed=changed, removed=removed, hooks=hooks,
    added={key: getattr(after[key], '__module__', '') for key in added},
    listing=[state.describe(key, after[key]) for key in added])), flush=True)
"""

#: Run after IMPORT in the same interpreter (which has imported hifuse_mm by then).
RUN = """
from pathlib import Path
import hifuse_mm
import mmengine_state as state
from mmengine.config import Config
from mmpretrain.registry import RUNNERS
from tiny_config import make_data, write_config

root = Path(sys.argv[2])
write_config(root / 'tiny.py', make_data(root))
state.import_registry_locations()
before = state.snapshot()

def run(method, **changes):
    cfg = Config.fromfile(str(root / 'tiny.py'))
    cfg.work_dir = str(root / 'work')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].num_workers, cfg[key].persistent_workers = 0, False
    cfg.merge_from_dict(changes)
    runner = RUNNERS.build(cfg)
    assert type(runner).__name__ == 'HiFuseRunner', type(runner)
    getattr(runner, method)()

run('train')
run('train', resume=True, **{'train_cfg.max_epochs': 2})
run('test', load_from=str(root / 'work' / 'epoch_2.pth'))
after = state.snapshot()
changed, removed, added = state.difference(before, after)
print('@@RESULT@@' + json.dumps(dict(changed=changed, removed=removed, added=added)))
"""

def _fresh(code: str, *args: str, cwd=None):
    """Run ``code`` in a new interpreter; the results it printed (JSON after MARKER), in order."""
    proc = subprocess.run([sys.executable, '-c', code, *args], env=repo_env(TESTS), cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return [json.loads(line[len(MARKER):]) for line in proc.stdout.splitlines()
            if line.startswith(MARKER)]


@pytest.fixture(scope='module')
def fresh(tmp_path_factory):
    """Two fresh interpreters: one lists what ``import hifuse_mm`` imports; the other imports
    those first, then hifuse_mm (IMPORT's result), then trains, resumes and tests in a
    temporary folder (RUN's result)."""
    root = tmp_path_factory.mktemp('isolation')
    dependencies, = _fresh(DEPENDENCIES)
    imported, ran = _fresh(IMPORT + RUN, json.dumps(dependencies), str(root), cwd=root)
    return imported, ran, root


def test_import_only_adds_names_of_its_own(fresh):
    result = fresh[0]
    listing = '\n  '.join(result['listing'])
    assert not result['changed'], f"import hifuse_mm changed {result['changed']}"
    assert not result['removed'], f"import hifuse_mm removed {result['removed']}"
    assert not result['hooks'], f"import hifuse_mm installed {result['hooks']}"
    foreign = {k: m for k, m in result['added'].items() if not m.startswith('hifuse_mm.')}
    assert not foreign, f'added entries that are not hifuse_mm\'s: {foreign}'
    # Every addition is a new name in a registry (or in mmengine's file backends) ...
    assert all(key.startswith(('registry ', 'file backend hifuse_'))
               for key in result['added']), f'added:\n  {listing}'
    # ... among them the runtime's own names.
    for name in ('registry mmpretrain.runner: HiFuseRunner',
                 'registry mmpretrain.hook: CrashSafeCheckpointHook',
                 'registry mmpretrain.transform: CheckedLoadImageFromFile',
                 'registry mmpretrain.optimizer_wrapper: CPUAwareAmpOptimWrapper',
                 'file backend hifuse_atomic_local'):
        assert name in result['added'], f'{name} not registered; added:\n  {listing}'
    print(f'import hifuse_mm added {len(result["listing"])} names:\n  {listing}')


def test_hifuse_runner_restores_what_it_changes(fresh):
    """Train, resume and test with HiFuseRunner: afterwards nothing differs from before."""
    _, result, root = fresh
    assert result == dict(changed=[], removed=[], added=[])
    # The runs did get the runner's behaviour: signed checkpoints, a pointer to the last one.
    assert (root / 'work' / 'epoch_2.pth.sig').is_file()
    assert (root / 'work' / 'last_checkpoint').read_text().endswith('epoch_2.pth')
