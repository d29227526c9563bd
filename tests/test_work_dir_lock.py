"""One training per work dir (hifuse_mm.engine.work_dir_lock, held by HiFuseRunner.train).

A helper process holds the work dir's lock the way a training does (``flock`` on
``train.lock`` with its record in it) and sleeps; a training into that work dir must stop at
once, naming the holder. A holder killed with SIGKILL leaves its record but not the lock: the
next training takes over and says so.
"""
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hifuse_mm import cli
from hifuse_mm.engine import work_dir_lock
from hifuse_mm.engine.work_dir_lock import (LOCK_NAME, WorkDirLock, WorkDirLockedError,
                                            hold_work_dir)
from helpers import TESTS, TOOLS, inside, repo_env
from tiny_config import make_data, write_config

pytestmark = pytest.mark.skipif(sys.platform != 'linux', reason='flock, fork and SIGKILL')

#: A process that holds the lock of argv[1] as a training does, then sleeps (standard library
#: only, so it starts at once).
HOLDER = """\
import fcntl, json, os, socket, sys, time
fd = os.open(os.path.join(sys.argv[1], 'train.lock'), os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.write(fd, json.dumps(dict(pid=os.getpid(), host=socket.gethostname(),
                             started='2030-01-02 03:04:05 +0000',
                             command=' '.join(sys.orig_argv))).encode())
print('locked', flush=True)
time.sleep(600)
"""




def _hold(work: Path, script: Path) -> subprocess.Popen:
    work.mkdir(parents=True, exist_ok=True)
    script.write_text(HOLDER)
    holder = subprocess.Popen([sys.executable, str(script), str(work)], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == 'locked'
    return holder


def _latest_log(work: Path) -> str:
    return sorted(work.glob('*/*.log'))[-1].read_text()


def test_second_training_is_refused_while_the_work_dir_is_held(tmp_path):
    write_config(tmp_path / 'tiny.py', make_data(tmp_path))
    work = tmp_path / 'work'
    holder = _hold(work, tmp_path / 'hold_lock.py')
    (work / 'tiny.py').write_text('# the config dump of the run that holds the work dir\n')
    try:
        started = time.monotonic()
        with inside(tmp_path), pytest.raises(SystemExit) as stopped:
            cli.train_main(['tiny.py', '--work-dir', 'work'])
        message = str(stopped.value.code)
        assert time.monotonic() - started < 60
        assert message.startswith(
            f'error: the work dir {work} is in use by another training: pid {holder.pid} on '
            f'host {socket.gethostname()}, started 2030-01-02 03:04:05 +0000, command: ')
        assert f'hold_lock.py {work}' in message and 'another --work-dir' in message
        assert '\n' not in message
        assert not list(work.glob('*.pth')) and not (work / 'last_checkpoint').exists()
        assert (work / 'tiny.py').read_text().startswith('# the config dump of the run that')
        assert holder.poll() is None  # untouched
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()

    # Killed, the holder left its record but not the lock: the next training takes over (and
    # says whose lock it was), trains, and removes the lock file when it ends.
    with inside(tmp_path):
        cli.train_main(['tiny.py', '--work-dir', 'work'])
    assert (work / 'epoch_1.pth').is_file()
    assert 'data_root' in (work / 'tiny.py').read_text()  # its own config dump
    assert ('took over the work dir {} from a training that stopped without releasing it '
            '(killed or crashed?): pid {} on host'.format(work, holder.pid)) in _latest_log(work)
    assert not (work / LOCK_NAME).exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_every_rank_of_a_distributed_training_stops_at_a_held_work_dir(tmp_path):
    """Two processes (gloo): rank 0 is refused, and rank 1 stops too instead of waiting for
    it (tests/test_distributed.py trains two ranks into one work dir: they do not refuse each
    other)."""
    write_config(tmp_path / 'tiny.py', make_data(tmp_path))
    work = tmp_path / 'work'
    holder = _hold(work, tmp_path / 'hold_lock.py')
    env = dict(repo_env(TESTS), PYTHON=sys.executable, PORT=str(_free_port()),
               MASTER_ADDR='127.0.0.1')
    try:
        proc = subprocess.run(['bash', str(TOOLS / 'dist_train.sh'), 'tiny.py', '2',
                               '--work-dir', 'work'], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=300)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert proc.returncode != 0
    refusal = f'error: the work dir {work} is in use by another training: pid {holder.pid} '
    assert proc.stdout.count(refusal) == 2, proc.stdout[-4000:]  # rank 0 and rank 1
    assert 'Epoch(train)' not in proc.stdout and not list(work.glob('*.pth'))


def test_stale_record_of_a_dead_process_is_taken_over(tmp_path):
    """A record whose process is gone (and which no process locks) is taken over with a
    message naming it; the record's text is sanitised (it is a file anyone may edit)."""
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          stdout=subprocess.PIPE, text=True, check=True)
    pid = int(dead.stdout)
    (tmp_path / LOCK_NAME).write_text(json.dumps(dict(
        pid=pid, host=socket.gethostname(), started='2030-01-02 03:04:05 +0000',
        command='python tools/train.py old.py\x1b[31m')))
    messages = []
    lock = WorkDirLock(tmp_path)
    lock.acquire(warn=messages.append)
    assert messages == [
        f'took over the work dir {tmp_path} from a training that stopped without releasing it '
        f'(killed or crashed?): pid {pid} on host {socket.gethostname()}, started '
        '2030-01-02 03:04:05 +0000, command: python tools/train.py old.py?[31m']
    assert json.loads((tmp_path / LOCK_NAME).read_text())['pid'] == os.getpid()
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


HOLD_AND_FORK = """\
import importlib.util, os, sys, time
# The module alone (standard library only), without importing hifuse_mm: starts at once.
spec = importlib.util.spec_from_file_location('work_dir_lock', sys.argv[2])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.WorkDirLock(sys.argv[1]).acquire()
child = os.fork()
if child == 0:  # like a dataloader worker: outlives a SIGKILLed parent for a while
    time.sleep(120)
    os._exit(0)
print(child, flush=True)
time.sleep(600)
"""


def test_lock_record_and_children_that_outlive_the_holder(tmp_path):
    """Our own lock, taken in another process: refused here naming it (from the record it
    wrote); when it is killed, a child it forked while holding the lock does not keep it."""
    holder = subprocess.Popen([sys.executable, '-c', HOLD_AND_FORK, str(tmp_path),
                               work_dir_lock.__file__], stdout=subprocess.PIPE, text=True)
    child = int(holder.stdout.readline())
    try:
        with pytest.raises(WorkDirLockedError, match=rf'in use by another training: pid '
                           rf'{holder.pid} on host .*, started .*, command: .*python'):
            WorkDirLock(tmp_path).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert _alive(child)
        messages = []
        lock = WorkDirLock(tmp_path)
        lock.acquire(warn=messages.append)  # the child is alive, the lock is free
        record = json.loads((tmp_path / LOCK_NAME).read_text())
        assert record['pid'] == os.getpid() and record['host'] == socket.gethostname()
        assert len(messages) == 1 and f'pid {holder.pid} on host' in messages[0]
        lock.release()
        assert not (tmp_path / LOCK_NAME).exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_only_rank_0_locks_and_every_rank_follows_its_verdict(tmp_path):
    """Distributed runs: the other ranks (on this node or others sharing the work dir) never
    take the lock, so the ranks of one job never refuse each other; rank 0's refusal is
    broadcast, so every rank of a second job stops."""
    with hold_work_dir(tmp_path, main_process=True, broadcast=lambda objects: None):
        assert (tmp_path / LOCK_NAME).is_file()
        # Another rank of the same job: does not touch the lock, is not refused.
        with hold_work_dir(tmp_path, main_process=False, broadcast=lambda objects: None):
            pass
        # Rank 0 of a second job is refused; what it broadcasts stops its other ranks.
        verdicts = []
        with pytest.raises(WorkDirLockedError) as refused:
            with hold_work_dir(tmp_path, main_process=True, broadcast=verdicts.extend):
                pass
        message = str(refused.value)

        def from_rank_0(objects):
            objects[0] = message

        with pytest.raises(WorkDirLockedError, match='in use by another training'):
            with hold_work_dir(tmp_path, main_process=False, broadcast=from_rank_0):
                pass
        assert verdicts == [message]
        assert (tmp_path / LOCK_NAME).is_file()  # the refused job did not remove it
    assert not (tmp_path / LOCK_NAME).exists()
