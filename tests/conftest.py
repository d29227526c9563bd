"""Session-wide test settings (the signing key, the garbage collector), and the session's
shared tiny training run.

Training runs sign their checkpoints with a per-account key (hifuse_mm.engine.checkpoint_trust);
the tests use a key in a temporary folder instead of the user's ~/.config/hifuse_mm. Set here,
at collection time, so the tools' subprocesses inherit it too.
"""
import atexit
import gc
import os
import shutil
import subprocess
import sys
import tempfile
from types import SimpleNamespace

import pytest

if 'HIFUSE_MM_TRUST_KEY' not in os.environ:
    _KEY_DIR = tempfile.mkdtemp(prefix='hifuse-test-key-')
    os.environ['HIFUSE_MM_TRUST_KEY'] = os.path.join(_KEY_DIR, 'checkpoint-signing.key')
    atexit.register(shutil.rmtree, _KEY_DIR, True)


def pytest_collection_finish(session):
    """Collection has imported torch, the OpenMMLab stack, hifuse_mm and every test module:
    about half a million objects that live until the end. Freeze them (``gc.freeze``: moved to
    the permanent generation, never scanned again), so that a full garbage collection looks at
    what the tests create only: ``gc.collect()``, which mmengine calls for every dataset it
    builds, goes from ~0.25 s to almost nothing in this process. What becomes garbage later is
    collected as before."""
    gc.collect()
    gc.freeze()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After the last test of a file (and its module fixtures): collect, then freeze what is
    still alive (mmengine's loggers, message hubs and visualizers of every run, registries),
    for the same reason."""
    yield
    if nextitem is None or nextitem.module is not item.module:
        gc.collect()
        gc.freeze()


# -- one tiny real training shared by the files that only read it ----------------------------
@pytest.fixture(scope='session')
def trained_tiny(tmp_path_factory) -> SimpleNamespace:
    """The narrow HiFuse trained for 2 epochs by the real ``tools/train.py`` on synthetic 32 px
    images (3 / 3 / 3 per class), with a ``meta/split.json`` and a real split audit in the data
    folder: ``root`` (config ``root/tiny.py``, run ``root/run``), ``data``, ``record`` (the
    split record), ``checkpoint`` (the best one) and ``output`` (what the training printed).

    tests/test_html_report.py and tests/test_report_validation_choices.py test it, each into
    its own work dir; nothing may change the run itself.
    """
    from helpers import TOOLS, repo_env
    from hifuse_mm.datasets.prepare.audit import audit_split, write_report
    from tiny_config import make_data, write_config, write_split_record

    root = tmp_path_factory.mktemp('trained_tiny')
    data = make_data(root, num_per_class=(3, 3, 3))
    record = write_split_record(data)
    write_report(data, audit_split(data))
    write_config(root / 'tiny.py', data, extra='train_cfg = dict(max_epochs=2)\n')
    proc = subprocess.run([sys.executable, str(TOOLS / 'train.py'), 'tiny.py', '--work-dir',
                           'run'], cwd=root, env=repo_env(OMP_NUM_THREADS='1'),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    checkpoint, = (root / 'run').glob('best_*.pth')
    return SimpleNamespace(root=root, data=data, record=record, checkpoint=checkpoint,
                           output=proc.stdout)
