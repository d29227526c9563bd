"""The test report's files (and ``tools/test.py --out``) are written atomically: a process
killed while writing them leaves complete files or none under their names, never a partial
one; an existing file is never replaced (issue 14, item 13)."""
import errno
import json
import os
import signal
import sys

import pytest

from hifuse_mm.evaluation import write_test_report
from test_medical_metrics import random_predictions, run_metric

try:
    import resource
except ImportError:  # not POSIX: the size-limit test is skipped
    resource = None

REPORT_FILES = ('metrics.json', 'predictions.csv', 'confusion_matrix.png', 'roc.png', 'pr.png',
                'reliability.png')
PNG_END = b'IEND\xaeB`\x82'


def _write_with_size_limit(out, limit: int, labels, scores) -> int:
    """Write a 50-sample report into ``out`` in a forked child whose files are limited to
    ``limit`` bytes (RLIMIT_FSIZE): the kernel kills it (SIGXFSZ, which Python ignores unless
    told otherwise) on the first write past the limit, i.e. in the middle of writing the first
    report file larger than that. Returns the signal that ended the child (0: none).

    The metric is computed (and matplotlib, with its font cache, loaded) before the fork; the
    child's stdout and stderr go to /dev/null, so the only files it writes are the report's.
    """
    metrics, metric = run_metric(labels, scores, classes=['x', 'y', 'z'])
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child: never returns to pytest
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
            resource.setrlimit(resource.RLIMIT_FSIZE,
                               (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
            write_test_report(metric.last, out, metrics, bootstrap=20)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0


def _complete(path):
    """Whether a report file is whole (parses / has all rows / ends with the PNG end chunk)."""
    data = path.read_bytes()
    if path.suffix == '.json':
        try:
            return json.loads(data)['num_samples'] == 50
        except ValueError:
            return False
    if path.suffix == '.csv':
        return data.endswith(b'\n') and len(data.splitlines()) == 51
    return data.startswith(b'\x89PNG') and data.endswith(PNG_END)


@pytest.mark.skipif(not hasattr(signal, 'SIGXFSZ'), reason='needs RLIMIT_FSIZE (POSIX)')
@pytest.mark.parametrize('limit', [0, 1000, 12000])
def test_report_killed_while_writing_leaves_no_partial_file(tmp_path, limit):
    """0: killed on the first byte of metrics.json; 1000: in the middle of metrics.json;
    12000: metrics.json and predictions.csv done, killed in the middle of a PNG."""
    out = tmp_path / 'report'
    labels, scores = random_predictions(50, 3, 0)
    assert _write_with_size_limit(out, limit, labels, scores) == signal.SIGXFSZ
    assert out.is_dir()  # killed while writing the report, not before it
    present = [name for name in REPORT_FILES if (out / name).exists()]
    assert len(present) < len(REPORT_FILES)  # it was killed before the end
    for name in present:
        assert _complete(out / name), f'{name} is partial ({(out / name).stat().st_size} bytes)'
    if limit == 12000:
        assert present == ['metrics.json', 'predictions.csv']


def test_report_never_replaces_a_file_that_appears_while_rendering(tmp_path, monkeypatch):
    """Existing files stop the report up front; one created by someone else after that check
    (while the figures render) is not replaced either."""
    from hifuse_mm.evaluation import report
    labels, scores = random_predictions(20, 3, 0)
    metrics, metric = run_metric(labels, scores, classes=['x', 'y', 'z'])
    out = tmp_path / 'run'
    render = report.roc_figure

    def roc_figure(*args):
        (out / 'roc.png').write_bytes(b'mine')
        return render(*args)

    monkeypatch.setattr(report, 'roc_figure', roc_figure)
    with pytest.raises(FileExistsError, match='roc.png'):
        report.write_test_report(metric.last, out, metrics)
    assert (out / 'roc.png').read_bytes() == b'mine'
    assert not [p.name for p in out.iterdir() if p.name.startswith('.')]  # no temporaries


def test_atomic_write_exclusive_and_failure(tmp_path, monkeypatch):
    from hifuse_mm.utils import atomic_files
    target = tmp_path / 'a.json'
    atomic_files.atomic_write_text(target, '{"a": 1}\n', exclusive=True)
    with pytest.raises(FileExistsError, match='a.json'):
        atomic_files.atomic_write_bytes(target, b'other', exclusive=True)
    assert target.read_text() == '{"a": 1}\n'
    atomic_files.atomic_write_bytes(target, b'replaced')  # the default replaces
    assert target.read_bytes() == b'replaced'

    # A full disk while writing: the error propagates, nothing is left under any name.
    def no_space(fd):
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(atomic_files.os, 'fsync', no_space)
    with pytest.raises(OSError, match='No space'):
        atomic_files.atomic_write_bytes(tmp_path / 'b.png', b'\x89PNG...', exclusive=True)
    assert sorted(os.listdir(tmp_path)) == ['a.json']


def test_metrics_out_is_atomic_and_never_overwritten(tmp_path):
    """``tools/test.py --out m.json --out-item metrics`` goes through the same writer."""
    from hifuse_mm.engine.runs import write_metrics_out
    out = tmp_path / 'm.json'
    write_metrics_out({'medical/accuracy': 0.5}, str(out))
    assert json.loads(out.read_text()) == {'medical/accuracy': 0.5}
    with pytest.raises(FileExistsError):
        write_metrics_out({'medical/accuracy': 0.9}, str(out))
    assert json.loads(out.read_text()) == {'medical/accuracy': 0.5}
    write_metrics_out({'a': 1}, str(tmp_path / 'm.pkl'))
    assert (tmp_path / 'm.pkl').read_bytes()[:1] == b'\x80'


def test_out_pickle_is_written_atomically_and_never_over_a_file(tmp_path, monkeypatch):
    """``tools/test.py --out x.pkl`` uses AtomicDumpResults: mmengine's bytes, all or nothing."""
    import errno
    import os

    import torch
    from mmengine.fileio import dump, load
    from mmpretrain.registry import METRICS

    import hifuse_mm  # noqa: F401
    results = [dict(pred_score=torch.tensor([0.25, 0.75]), gt_label=torch.tensor([1]),
                    img_path=f'img_{i}.png') for i in range(3)]
    out = tmp_path / 'preds.pkl'

    def metric():
        built = METRICS.build(dict(type='AtomicDumpResults', out_file_path=str(out)))
        built.results = list(results)
        return built

    assert metric().evaluate(3) == {}
    assert out.read_bytes() == dump(results, file_format='pkl')  # what DumpResults writes
    assert load(str(out))[2]['img_path'] == 'img_2.png'
    # an existing file is never replaced
    out.write_bytes(b'my earlier predictions')
    with pytest.raises(FileExistsError):
        metric().evaluate(3)
    assert out.read_bytes() == b'my earlier predictions'
    # a full disk leaves no file under the name and no temporary beside it
    out.unlink()

    def disk_full(fd):
        raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(os, 'fsync', disk_full)
    with pytest.raises(OSError, match='No space left'):
        metric().evaluate(3)
    assert list(tmp_path.iterdir()) == []
