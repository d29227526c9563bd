"""tools/infer.py, tools/visualization/vis_cam.py, the Classifier and the test report under
faults (issue 14): --out checked before any work and written atomically, unclassifiable files
recorded in the CSV (item 14); file names that are not UTF-8 (item 8); fp16 on a CPU warns
(item 17); arrays given to Classifier.predict are validated (item 18).

A random-init narrow HiFuse (no training) on 64 px inputs; the tools run in-process.
"""
import csv
import dataclasses
import errno
import io
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from hifuse_mm.apis import Classifier
from hifuse_mm.datasets import DEMO_CLASSES, make_demo_dataset
from tiny_config import write_narrow_checkpoint
from tool_runner import call_tool, ok

PRED_COLUMNS = ['path', 'pred_label', 'pred_class', 'pred_prob'] + [
    f'prob_{name}' for name in DEMO_CLASSES]
#: A file name that is not UTF-8 (as Linux allows), as Python sees it (surrogate escapes).
ODD = os.fsdecode(b'\xffscan.png')
ODD_BAD = os.fsdecode(b'bad\xfe.png')


@pytest.fixture(scope='module')
def space(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('infer_faults')
    write_narrow_checkpoint(root, 64, classes=DEMO_CLASSES)
    data = make_demo_dataset(root / 'data', num_per_class=1, image_size=48, seed=0)
    images = root / 'images'
    images.mkdir()
    for index, path in enumerate(sorted((data / 'train').rglob('*.png'))[:2]):
        (images / f'good{index}.png').write_bytes(path.read_bytes())
    (images / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 this is not really a jpeg')
    (images / 'truncated.png').write_bytes((images / 'good0.png').read_bytes()[:100])
    return root


def _infer(space: Path, *args):
    return call_tool(space, 'infer.py', 'model.py', 'model.pth', *args)


def _rows(path: Path):
    with open(path, newline='', encoding='utf-8') as stream:
        return list(csv.DictReader(stream))


# -- item 14 ----------------------------------------------------------------------------------
def test_files_that_cannot_be_classified_are_rows_of_the_csv(space):
    proc = ok(_infer(space, 'images', '--out', 'all.csv', '--device', 'cpu'))
    assert '2 image(s) classified' in proc.stdout and '2 could not be' in proc.stdout
    assert 'warning: 2 of 4 file(s) could not be read' in proc.stderr  # still on the console
    rows = _rows(space / 'all.csv')
    # The old columns first, unchanged; status and error at the end.
    assert list(rows[0]) == PRED_COLUMNS + ['status', 'error']
    assert [(Path(r['path']).name, r['status']) for r in rows] == [
        ('broken.jpg', 'error'), ('good0.png', 'ok'), ('good1.png', 'ok'),
        ('truncated.png', 'error')]
    for row in rows:
        if row['status'] == 'ok':
            assert row['error'] == ''
            assert row['pred_class'] == DEMO_CLASSES[int(row['pred_label'])]
            assert sum(float(row[f'prob_{c}']) for c in DEMO_CLASSES) == pytest.approx(1, abs=1e-4)
        else:
            assert all(row[column] == '' for column in PRED_COLUMNS[1:])
    by_name = {Path(r['path']).name: r['error'] for r in rows}
    assert by_name['broken.jpg'].startswith('not a decodable image')
    assert by_name['truncated.png'].startswith('not a decodable image (100 bytes): a truncated '
                                               'PNG')


def test_out_is_checked_before_any_work(space, monkeypatch):
    """Every refusal comes before the model loads: the checkpoint named does not even exist."""
    def refused(*args):
        proc = call_tool(space, 'infer.py', 'model.py', 'missing.pth', 'images', *args)
        assert proc.returncode == 2 and 'missing.pth' not in proc.stderr, proc
        return proc.stderr

    (space / 'a_folder').mkdir()
    assert 'error: --out a_folder is a folder; give the name of a CSV file' in refused(
        '--out', 'a_folder', '--force')
    (space / 'a_file').write_text('mine\n')
    assert 'a_file is a file, not a folder' in refused('--out', 'a_file/sub/pred.csv')
    assert 'a_file exists; pass --force' in refused('--out', 'a_file')
    (space / 'locked').mkdir()
    real_access = os.access
    monkeypatch.setattr(os, 'access', lambda path, mode, *a, **k: False
                        if Path(path).name == 'locked' else real_access(path, mode, *a, **k))
    assert 'cannot write in' in refused('--out', 'locked/pred.csv')
    assert (space / 'a_file').read_text() == 'mine\n'


def test_csv_is_written_atomically(space, monkeypatch):
    """A failure while writing (here: the disk fills up at fsync) leaves the user's old file
    as it was and no partial CSV."""
    (space / 'old.csv').write_text('my old predictions\n')
    real_fsync = os.fsync

    def disk_full(fd):
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(os, 'fsync', disk_full)
    proc = _infer(space, 'images', '--out', 'old.csv', '--force', '--device', 'cpu')
    new = _infer(space, 'images', '--out', 'new.csv', '--device', 'cpu')
    monkeypatch.setattr(os, 'fsync', real_fsync)
    for result in (proc, new):
        assert result.returncode == 1 and 'No space left on device' in result.stderr
    assert (space / 'old.csv').read_text() == 'my old predictions\n'
    assert not (space / 'new.csv').exists()
    assert not [p.name for p in space.iterdir() if '.tmp-' in p.name]


# -- item 8 -----------------------------------------------------------------------------------
@pytest.fixture
def odd_names(space, tmp_path) -> Path:
    folder = tmp_path / 'odd'
    folder.mkdir()
    try:
        (folder / ODD).write_bytes((space / 'images' / 'good0.png').read_bytes())
    except (OSError, UnicodeError):
        pytest.skip('this file system does not take file names that are not UTF-8')
    (folder / ODD_BAD).write_bytes(b'\x89PNG\r\n\x1a\n not really')
    (folder / 'plain.png').write_bytes((space / 'images' / 'good1.png').read_bytes())
    return folder


def test_infer_writes_names_that_are_not_utf8(space, odd_names):
    out = odd_names.parent / 'odd.csv'
    proc = ok(_infer(space, odd_names, '--out', out, '--device', 'cpu'))
    assert '2 image(s) classified' in proc.stdout
    rows = _rows(out)  # valid UTF-8
    assert [(Path(r['path']).name, r['status']) for r in rows] == [
        ('bad\\xfe.png', 'error'), ('plain.png', 'ok'), ('\\xffscan.png', 'ok')]
    assert rows[2]['path'] == f'{odd_names}/\\xffscan.png'
    assert rows[0]['error'].startswith('not a decodable image')


def test_vis_cam_on_names_that_are_not_utf8(space, odd_names, tmp_path):
    pytest.importorskip('pytorch_grad_cam')
    out = tmp_path / 'cams'
    proc = ok(call_tool(space, 'visualization/vis_cam.py', 'model.py', 'model.pth', odd_names,
                        '--out-dir', out, '--device', 'cpu'))
    assert '2 CAM figure(s)' in proc.stdout
    assert sorted(os.listdir(os.fsencode(out))) == [b'plain_cam.png', b'\xffscan_cam.png']
    figure = (out / os.fsdecode(b'\xffscan_cam.png')).read_bytes()  # (cv2.imread crashes on
    assert cv2.imdecode(np.frombuffer(figure, np.uint8), cv2.IMREAD_COLOR) is not None  # such)
    assert 'bad\\xfe.png: not a decodable image' in proc.stderr


def test_report_predictions_csv_with_names_that_are_not_utf8(tmp_path):
    from test_medical_metrics import random_predictions, run_metric

    from hifuse_mm.evaluation import write_test_report

    labels, scores = random_predictions(6, 3, 0)
    metrics, metric = run_metric(labels, scores, classes=['x', 'y', 'z'])
    images = [f'/data/test/{name}' for name in ('a.png', ODD, 'c.png', 'd.png', 'e.png',
                                                'f.png')]
    last = dataclasses.replace(metric.last, images=images)
    paths = write_test_report(last, tmp_path / 'report', metrics, data_root='/data')
    rows = list(csv.reader(io.StringIO(paths['predictions.csv'].read_bytes().decode('utf-8'))))
    assert [row[0] for row in rows[1:3]] == ['test/a.png', 'test/\\xffscan.png']


# -- item 17 ----------------------------------------------------------------------------------
def test_fp16_on_a_cpu_warns_and_suggests_bf16(space, recwarn):
    with pytest.warns(RuntimeWarning, match=r'fp16 on a CPU is emulated and slow.*bf16'):
        Classifier(space / 'model.py', space / 'model.pth', device='cpu', precision='fp16')
    with pytest.warns(RuntimeWarning, match='fp16 on a CPU is emulated'):
        proc = _infer(space, 'images/good0.png', '--out', 'fp16.csv', '--device', 'cpu',
                      '--precision', 'fp16')
    ok(proc)
    recwarn.clear()
    Classifier(space / 'model.py', space / 'model.pth', device='cpu', precision='bf16')
    assert not [w for w in recwarn if 'emulated' in str(w.message)]


# -- item 18 ----------------------------------------------------------------------------------
def test_predict_validates_arrays(space):
    clf = Classifier(space / 'model.py', space / 'model.pth', device='cpu')
    bgr = cv2.imread(str(space / 'images' / 'good0.png'))
    gray = bgr[..., 1].copy()
    by_file, by_array = clf.predict([space / 'images' / 'good0.png', bgr])
    np.testing.assert_allclose(by_file.probabilities, by_array.probabilities, atol=1e-6)
    # Grayscale [H, W] and [H, W, 1]: replicated to 3 channels, as a grayscale file is.
    cv2.imwrite(str(space / 'gray.png'), gray)
    from_file, plain, single = clf.predict([space / 'gray.png', gray, gray[..., None]])
    for pred in (plain, single):
        np.testing.assert_allclose(pred.probabilities, from_file.probabilities, atol=1e-6)

    height, width = gray.shape
    cases = [
        (bgr.astype(np.float32) / 255, rf'image array has dtype float32 \(shape \({height}, '
         rf'{width}, 3\)\); pass a BGR uint8 array .*\(image \* 255\)\.round\(\)'),
        (np.dstack([bgr, gray]), rf'image array has 4 channels \(shape \({height}, {width}, '
         r'4\)\).*image\[\.\.\., :3\]'),
        (np.zeros((0, 5, 3), np.uint8), r'image array is empty \(shape \(0, 5, 3\)\)'),
        (bgr[None], r'image array has shape .* \(4 dimensions\).*a list of images'),
        (bgr.astype(np.uint16), 'image array has dtype uint16'),
    ]
    for array, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            clf.predict(array)
        assert type(info.value).__name__ == 'ImageArrayError'  # hifuse_mm.apis.ImageArrayError
    with pytest.raises(ValueError, match=r'^images\[1\] has 4 channels'):
        clf.predict([bgr, np.dstack([bgr, gray])])
