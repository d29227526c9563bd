"""Distributed equivalence: 2 processes (gloo, CPU) with batch b each train the same weights as
1 process with batch 2b.

Why they should: ``DefaultSampler`` shuffles with the same seed and hands rank r the indices
r, r + 2, ... of that order, so the two ranks' batches together are the single process's batch;
DDP averages the gradients, which equals the gradient of the mean loss over 2b; the optimizer,
the learning rate schedule and the initial weights (same seed, broadcast by DDP) are the same.

What has to be held fixed, and how (stated here because the test would be wrong otherwise):
no random augmentation (the test pipeline trains: its randomness depends on how samples are
spread over processes), no dropout / drop-path (HiFuse's defaults are 0), and BatchNorm in
eval mode (tests/frozen_bn.py): batch statistics over b and over 2b samples differ, and
PyTorch's SyncBatchNorm does not run on CPU. The optimizer is SGD with momentum: its steps are
proportional to the gradients, so float round-off (the sums are done in a different order)
stays round-off; Adam divides by the gradients' running magnitude, which turns the round-off
of near-zero gradients into differences of a sizeable fraction of a step.
"""
import contextlib
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import torch

from hifuse_mm import cli
from hifuse_mm.engine import load_checkpoint_file
from tiny_config import make_data, write_config
from tool_runner import REPO, TOOLS

TESTS = Path(__file__).resolve().parent
EXTRA = """\
train_dataloader['dataset']['pipeline'] = test_pipeline
custom_hooks = [dict(type='FrozenBatchNormHook')]
optim_wrapper = dict(optimizer=dict(_delete_=True, type='SGD', lr=0.05, momentum=0.9,
                                         weight_decay=1e-4))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_two_processes_batch_b_equal_one_process_batch_2b(tmp_path):
    data = make_data(tmp_path, num_per_class=(3, 1, 1))  # 12 training images: 3 iterations
    write_config(tmp_path / 'dist.py', data, imports=('hifuse_mm', 'frozen_bn'), extra=EXTRA)
    common = ['--no-validate', '--cfg-options']

    env = dict(os.environ, PYTHON=sys.executable, PORT=str(_free_port()),
               MASTER_ADDR='127.0.0.1', PYTHONPATH=os.pathsep.join(
                   filter(None, [str(REPO), str(TESTS), os.environ.get('PYTHONPATH')])))
    proc = subprocess.run(['bash', str(TOOLS / 'dist_train.sh'), 'dist.py', '2', '--work-dir',
                           'two', *common, 'train_dataloader.batch_size=2'],
                          cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert 'Epoch(train) [1][3/3]' in proc.stdout and 'Distributed training: True' in proc.stdout
    assert re.search(r'GPU number: 2\b', proc.stdout)  # the two processes are one run

    before = torch.are_deterministic_algorithms_enabled()
    with contextlib.chdir(tmp_path):
        for name, batch in (('one', 4), ('one_small_batch', 2)):
            cli.train_main(['dist.py', '--work-dir', name, *common,
                            f'train_dataloader.batch_size={batch}'])
    torch.use_deterministic_algorithms(before)

    def weights(name: str) -> dict:
        checkpoint = load_checkpoint_file(tmp_path / name / 'epoch_1.pth')
        return {k: v for k, v in checkpoint['state_dict'].items() if v.is_floating_point()}

    def largest_difference(a: dict, b: dict) -> float:
        assert a.keys() == b.keys()
        return max(float((a[k] - b[k]).abs().max()) for k in a)

    one, two = weights('one'), weights('two')
    assert largest_difference(one, two) < 1e-5
    # The comparison can fail: one process with batch b (other batches, twice the steps) ends
    # far from both.
    assert largest_difference(one, weights('one_small_batch')) > 1e-3
