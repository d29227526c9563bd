"""Bad command lines end with one clear ``error:`` line and no traceback, through the real
tools/train.py and tools/test.py (issue 14, item 16). Most fail before any training.

One mistake per tool runs the tool as a subprocess, exactly as a user meets it (a missing config
for train.py, a missing checkpoint for test.py); the other kinds run the same script in this
process as ``python tools/X.py`` would (``run_script_here``: ``runpy``, its own ``sys.argv``,
stdout and stderr captured at the file-descriptor level too), which spares an interpreter start
each; the variants of a case call the tool's main.
"""
import contextlib
import io
import os
import re
import runpy
import sys
import tarfile
import tempfile
import traceback
import zipfile
from pathlib import Path

import pytest
import torch

from hifuse_mm import cli
from tiny_config import make_data, write_config
from tool_runner import TOOLS, ToolResult, run_tool

DIST_VARIABLES = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'LOCAL_RANK',
                  'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK')


@pytest.fixture(scope='module')
def space(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('cli_errors')
    write_config(root / 'tiny.py', make_data(root))
    (root / 'empty.pth').write_bytes(b'')
    (root / 'junk.pth').write_bytes(b'this is not a checkpoint\n' * 40)
    torch.save({'state_dict': {}}, root / 'good.pth')
    data = (root / 'good.pth').read_bytes()
    (root / 'truncated.pth').write_bytes(data[:len(data) // 2])
    with zipfile.ZipFile(root / 'zip.pth', 'w') as archive:
        archive.writestr('notes.txt', 'not a checkpoint')
    # The legacy .tar layout of PyTorch < 0.4 (what torch.load recognises as such).
    with tarfile.open(root / 'legacy_tar.pth', 'w') as archive:
        for name in ('sys_info', 'pickle', 'storages', 'tensors'):
            info = tarfile.TarInfo(name)
            info.size = 4
            archive.addfile(info, io.BytesIO(b'\x80\x02N.'))
    return root


def _check(returncode, stderr: str, stdout: str, expected, usage: bool) -> str:
    assert returncode != 0, stdout[-2000:]
    assert 'Traceback' not in stderr and 'Traceback' not in stdout, stderr[-4000:]
    lines = [line for line in stderr.splitlines() if 'error:' in line]
    assert len(lines) == 1, stderr[-4000:]
    line = lines[0]
    # Our own errors start with 'error:'; argparse's usage errors with '<tool>.py: error:'.
    assert re.match(r'\S+\.py: error: ' if usage else 'error: ', line), line
    for text in expected:
        assert text in line, line
    # torch's message for unreadable files advises weights_only=False (running the file's
    # code): never passed on.
    assert 'weights_only' not in stderr + stdout, line
    return line


def fails_cleanly(proc, *expected: str, usage: bool = False) -> str:
    """The tool (a subprocess) failed with exactly one ``error:`` line containing
    ``expected`` and no traceback; returns that line."""
    return _check(proc.returncode, proc.stderr, proc.stdout, expected, usage)


def run_script_here(space: Path, script: str, *argv: str) -> ToolResult:
    """``python tools/<script> argv`` in ``space``, but in this process: the script is run as
    ``__main__`` with its own ``sys.argv``; what it writes to ``sys.stdout`` / ``sys.stderr``
    or to file descriptors 1 and 2 (C code, handlers bound to the real streams) is captured;
    the exit status is the interpreter's (``sys.exit('message')``: the message on stderr and
    1; an uncaught exception: its traceback on stderr and 1)."""
    path = TOOLS / script
    before = torch.are_deterministic_algorithms_enabled()
    out, err = io.StringIO(), io.StringIO()
    with tempfile.TemporaryFile() as fd_out, tempfile.TemporaryFile() as fd_err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = {fd: os.dup(fd) for fd in (1, 2)}
        saved_argv, code = sys.argv, 0
        os.dup2(fd_out.fileno(), 1)
        os.dup2(fd_err.fileno(), 2)
        try:
            with contextlib.chdir(space), contextlib.redirect_stdout(out), \
                    contextlib.redirect_stderr(err):
                sys.argv = [str(path), *map(str, argv)]
                try:
                    runpy.run_path(str(path), run_name='__main__')
                except SystemExit as exit_info:
                    code = exit_info.code
                    if isinstance(code, str):
                        print(code, file=err)
                        code = 1
                    code = 0 if code is None else code
                except BaseException:  # noqa: B902 - what the interpreter would print
                    traceback.print_exc(file=err)
                    code = 1
        finally:
            sys.argv = saved_argv
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            torch.use_deterministic_algorithms(before)
        fd_out.seek(0)
        fd_err.seek(0)
        return ToolResult(code, out.getvalue() + fd_out.read().decode(errors='replace'),
                          err.getvalue() + fd_err.read().decode(errors='replace'))


def main_fails_cleanly(space: Path, main, *argv: str, expected=(), usage=False) -> str:
    """The same for a tool's main called in this process (quicker; the variants of a case
    the subprocess tests cover): an exception other than ``SystemExit`` is a traceback."""
    before = torch.are_deterministic_algorithms_enabled()
    err = io.StringIO()
    try:
        with contextlib.chdir(space), contextlib.redirect_stderr(err):
            main(list(argv))
    except SystemExit as exit_info:
        code = exit_info.code
    else:
        code = 0
    finally:
        torch.use_deterministic_algorithms(before)
    stderr = err.getvalue() + (code + '\n' if isinstance(code, str) else '')
    return _check(code if isinstance(code, int) else 1, stderr, '', expected, usage)


# Each kind of mistake once through the whole tool (a subprocess, or run_script_here).

def test_missing_config(space):
    fails_cleanly(run_tool(space, 'train.py', 'no_such.py'), 'config file no_such.py not found')
    main_fails_cleanly(space, cli.test_main, 'no_such.py', 'good.pth',
                       expected=('no_such.py', 'not found'))
    (space / 'broken.py').write_text("_base_ = ['missing_base.py']\n")
    main_fails_cleanly(space, cli.train_main, 'broken.py', expected=('missing_base.py',))


def test_missing_checkpoint(space):
    fails_cleanly(run_tool(space, 'test.py', 'tiny.py', 'no_such.pth', '--work-dir', 'w'),
                  'CHECKPOINT', 'no_such.pth', 'not found')
    main_fails_cleanly(space, cli.train_main, 'tiny.py', '--work-dir', 'w', '--resume',
                       'no_such.pth', expected=('--resume', 'no_such.pth', 'not found'))


def test_junk_checkpoint(space):
    fails_cleanly(run_script_here(space, 'test.py', 'tiny.py', 'junk.pth', '--work-dir', 'w'),
                  'CHECKPOINT', 'junk.pth', 'is not a PyTorch checkpoint')


@pytest.mark.parametrize('name, what', [
    ('empty.pth', 'is empty'),
    ('truncated.pth', 'truncated'),
    ('zip.pth', 'not a PyTorch checkpoint'),
    ('legacy_tar.pth', 'legacy .tar format'),
])
def test_unreadable_checkpoint(space, name, what):
    main_fails_cleanly(space, cli.test_main, 'tiny.py', name, '--work-dir', 'w',
                       expected=(name, what))
    main_fails_cleanly(space, cli.train_main, 'tiny.py', '--work-dir', 'w', '--cfg-options',
                       f'load_from={name}', expected=('load_from', name, what))


def test_mistyped_config_keys(space):
    # An argument the train loop does not take: named, with the key meant.
    fails_cleanly(run_script_here(space, 'train.py', 'tiny.py', '--work-dir', 'w',
                                  '--cfg-options', 'train_cfg.max_epoch=1'),
                  'train_cfg.max_epoch', 'did you mean train_cfg.max_epochs')
    # A top-level key nothing reads (silently ignored before: a full-length "smoke test").
    main_fails_cleanly(space, cli.train_main, 'tiny.py', '--work-dir', 'w', '--cfg-options',
                       'max_epochs=1', expected=('max_epochs', 'train_cfg.max_epochs'))
    # A type no registry knows: the key path that names it.
    main_fails_cleanly(space, cli.test_main, 'tiny.py', 'good.pth', '--work-dir', 'w',
                       '--cfg-options', 'model.backbone.type=XYZ',
                       expected=('model.backbone.type',
                                 "'XYZ' is not in the mmpretrain::model registry"))
    main_fails_cleanly(space, cli.train_main, 'tiny.py', '--work-dir', 'w', '--cfg-options',
                       'optim_wrapper.optimizer.lrr=0.1',
                       expected=('optim_wrapper.optimizer.lrr', 'AdamW takes no argument',
                                 'did you mean optim_wrapper.optimizer.lr'))


def test_malformed_cfg_options(space):
    fails_cleanly(run_script_here(space, 'train.py', 'tiny.py', '--cfg-options',
                                  'train_cfg.max_epochs'),
                  '--cfg-options', 'train_cfg.max_epochs', 'KEY=VALUE', usage=True)
    main_fails_cleanly(space, cli.test_main, 'tiny.py', 'good.pth', '--cfg-options',
                       'model.head.topk=[1,', expected=('--cfg-options', 'model.head.topk'),
                       usage=True)
    main_fails_cleanly(space, cli.train_main, 'tiny.py', '--work-dir', 'w', '--cfg-options',
                       'train_cfg.max_epochs.x=1',
                       expected=('train_cfg.max_epochs.x', 'train_cfg.max_epochs is an int'))


def test_launcher_outside_its_launcher(space, monkeypatch):
    for name in DIST_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    fails_cleanly(run_script_here(space, 'train.py', 'tiny.py', '--launcher', 'pytorch'),
                  '--launcher pytorch', 'tools/dist_train.sh')
    main_fails_cleanly(space, cli.test_main, 'tiny.py', 'good.pth', '--launcher', 'pytorch',
                       expected=('--launcher pytorch', 'tools/dist_test.sh'))
    assert not (space / 'work_dirs').exists()


@pytest.mark.parametrize('tool', [
    ('deployment/export_onnx.py', 'tiny.py', 'good.pth', '--out', 'x.onnx'),
    ('infer.py', 'tiny.py', 'good.pth', 'images', '--out', 'p.csv'),
    ('visualization/vis_cam.py', 'tiny.py', 'good.pth', 'images'),
    ('analysis_tools/benchmark.py', 'tiny.py'),
    ('analysis_tools/get_flops.py', 'tiny.py'),
    ('analysis_tools/precision_agreement.py', 'tiny.py', 'good.pth'),
], ids=lambda tool: tool[0])
def test_every_tool_names_a_malformed_cfg_options_pair(space, tool):
    """The other tools parse ``--cfg-options`` as train.py and test.py do: a pair without
    ``=`` is a usage error that names it (mmengine's DictAction raised a ValueError)."""
    fails_cleanly(run_script_here(space, *tool, '--cfg-options', 'model.head.topk'),
                  '--cfg-options', 'model.head.topk', 'KEY=VALUE', usage=True)
