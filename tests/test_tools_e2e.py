"""End to end through the real tools on a tiny synthetic dataset: the training and the
two-process test as subprocesses, exactly as a user runs them; the resumed and --amp trainings
and the test of the best checkpoint through tools/train.py's and tools/test.py's main in this
process (what they log is read from the run's log file).

The model is HiFuse with narrow stages (16-128 channels, one block per stage) on 32px images so
the whole file runs in a few minutes on 2 CPU cores; everything else is the demo config.
"""
import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hifuse_mm.datasets import make_demo_dataset
from helpers import DEMO_CONFIG, TOOLS, inside, repo_env
from hifuse_mm.cli import test_main as run_test_main, train_main
from tiny_config import NARROW_HIFUSE, TINY_DATA
TIMEOUT = 300

TINY_CONFIG = """\
_base_ = [{base!r}]

data_root = {data_root!r}
""" + NARROW_HIFUSE + TINY_DATA + """train_cfg = dict(max_epochs=2)
default_hooks = dict(logger=dict(interval=1))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def run_tool(cwd: Path, *argv: str, env: dict = None) -> str:
    """Run a tool like a user would (cwd = a scratch folder); return stdout+stderr."""
    full_env = repo_env(**(env or {}))
    command = list(argv) if argv[0] == 'bash' else [sys.executable, *argv]
    proc = subprocess.run(command, cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f'{argv} failed:\n{proc.stdout[-6000:]}'
    return proc.stdout


@pytest.fixture(scope='module')
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('e2e')
    data = make_demo_dataset(root / 'data', num_per_class=(4, 2, 2), image_size=32, seed=0)
    base = str(DEMO_CONFIG)
    (root / 'tiny.py').write_text(TINY_CONFIG.format(base=base, data_root=str(data)))
    return root


@pytest.fixture(scope='module')
def trained(workspace) -> Path:
    """2 epochs with tools/train.py; returns the work dir."""
    out = run_tool(workspace, str(TOOLS / 'train.py'), 'tiny.py', '--work-dir', 'run')
    assert 'Epoch(val) [2]' in out
    return workspace / 'run'


def _log(work_dir: Path) -> str:
    """The log of the latest session in ``work_dir``."""
    return sorted(work_dir.glob('*/*.log'))[-1].read_text()


def _epoch(checkpoint: Path) -> int:
    return torch.load(checkpoint, map_location='cpu', weights_only=False)['meta']['epoch']


def test_train_writes_checkpoints(trained):
    assert _epoch(trained / 'epoch_2.pth') == 2
    assert len(list(trained.glob('best_medical_f1_macro_epoch_*.pth'))) == 1
    assert (trained / 'last_checkpoint').read_text().strip().endswith('epoch_2.pth')


def test_resume_continues_to_epoch_3(workspace, trained):
    # tools/train.py's main in this process; what it logged is read from the new log file.
    sessions = len(list(trained.glob('*/*.log')))
    with inside(workspace):
        train_main(['tiny.py', '--work-dir', 'run', '--resume', '--cfg-options',
                    'train_cfg.max_epochs=3'])
    assert len(list(trained.glob('*/*.log'))) == sessions + 1
    out = _log(trained)
    assert re.search(r'resumed epoch: 2, iter: \d+', out)
    assert 'Epoch(train) [3]' in out and 'Epoch(train) [1]' not in out
    assert _epoch(trained / 'epoch_3.pth') == 3


def test_test_tool_on_best_checkpoint(workspace, trained):
    # tools/test.py's main in this process; what it logged is read from the run's log file.
    best = next(trained.glob('best_medical_f1_macro_epoch_*.pth'))
    metrics = workspace / 'metrics.json'
    with inside(workspace):
        run_test_main(['tiny.py', str(best), '--work-dir', 'test', '--out', str(metrics),
                       '--out-item', 'metrics', '--amp'])
    out = _log(workspace / 'test')
    assert 'Epoch(test)' in out and 'medical/accuracy' in out
    values = json.loads(metrics.read_text())
    assert 0 <= values['medical/accuracy'] <= 1
    assert 'medical/f1_macro' in values


def test_train_amp_on_cpu(workspace):
    # tools/train.py's main in this process; what it logged is read from the run's log file.
    with inside(workspace):
        train_main(['tiny.py', '--work-dir', 'amp', '--amp', '--no-validate'])
    out = _log(workspace / 'amp')
    assert 'CPUAwareAmpOptimWrapper' in out
    assert 'Epoch(train) [2]' in out
    state = torch.load(workspace / 'amp' / 'epoch_2.pth', map_location='cpu',
                       weights_only=False)
    assert 'loss_scaler' not in state['optimizer']


def test_dist_test_two_processes(workspace, trained):
    """tools/dist_test.sh on the trained model (tools/dist_train.sh trains two processes in
    tests/test_distributed.py, which checks their weights against one process's)."""
    env = dict(PYTHON=sys.executable, PORT=str(_free_port()))
    best = next(trained.glob('best_medical_f1_macro_epoch_*.pth'))
    metrics = workspace / 'dist_metrics.json'
    out = run_tool(workspace, 'bash', str(TOOLS / 'dist_test.sh'), 'tiny.py',
                   str(best.relative_to(workspace)), '2', '--work-dir', 'dist_test', '--out',
                   str(metrics), '--out-item', 'metrics', env=env)
    assert re.search(r'GPU number: 2\b', out) and 'Epoch(test) [1/1]' in out
    assert 'medical/accuracy' in json.loads(metrics.read_text())
    # The report is written once, by rank 0, from all ranks' predictions.
    reports = list((workspace / 'dist_test').glob('*/metrics.json'))
    assert len(reports) == 1
    assert json.loads(reports[0].read_text())['num_samples'] == 8
