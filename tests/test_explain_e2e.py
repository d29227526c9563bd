"""The model tools on a model trained on the synthetic lesion data: CAMs, inference, curves,
publishing.

A narrow HiFuse (16-128 channels, one block per stage) is trained with tools/train.py (its main,
in this process) on 128px demo images (RandomResizedCrop + flips, seeded, deterministic
algorithms; 80 iterations, about 20 s on two idle cores); it then classifies the held-out images
almost perfectly, and its stage-4 CAMs are compared with the lesion masks the generator wrote.
"""
import csv
import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hifuse_mm.apis import CamExplainer, Classifier, load_model, load_training_log, \
    mean_inside_outside
from hifuse_mm.datasets import DEMO_CLASSES, make_demo_dataset
from hifuse_mm.cli import train_main
from helpers import inside
from tool_runner import REPO, call_tool, ok, run_tool
from tiny_config import NARROW_HIFUSE

SIZE = 128
EPOCHS = 8
TRAIN_CONFIG = """\
_base_ = [{base!r}]

data_root = {data_root!r}
""" + NARROW_HIFUSE + """train_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='RandomResizedCrop', scale={size}, crop_ratio_range=(0.5, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction=['horizontal', 'vertical']),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='CheckedLoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=16, dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16, dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(max_epochs={epochs})
default_hooks = dict(logger=dict(interval=4), checkpoint=dict(max_keep_ckpts=1))
randomness = dict(seed=0, deterministic=True)
"""


@pytest.fixture(scope='module')
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('explain')
    data = make_demo_dataset(root / 'data', num_per_class=(40, 8, 8), image_size=SIZE, seed=0)
    (root / 'hifuse_small.py').write_text(TRAIN_CONFIG.format(
        base=str(REPO / 'configs' / 'hifuse' / 'hifuse-tiny_demo.py'), data_root=str(data),
        epochs=EPOCHS, size=SIZE))
    return root


@pytest.fixture(scope='module')
def trained(workspace) -> Path:
    """Train with tools/train.py's main, in this process (the tools below that use the model
    run as subprocesses); returns the work dir."""
    with inside(workspace):
        train_main(['hifuse_small.py', '--work-dir', 'run'])
    return workspace / 'run'


def test_test_images_are_classified(workspace, trained):
    clf = Classifier(workspace / 'hifuse_small.py', trained / f'epoch_{EPOCHS}.pth', device='cpu')
    assert clf.classes == DEMO_CLASSES
    lesions = json.loads((workspace / 'data' / 'meta' / 'lesions.json').read_text())
    tests = sorted(k for k in lesions if k.startswith('test/'))
    predictions = clf.predict([workspace / 'data' / rel for rel in tests])
    accuracy = np.mean([p.label == lesions[rel]['label'] for p, rel in zip(predictions, tests)])
    assert accuracy >= 0.9


def test_bf16_agrees_with_fp32_on_the_trained_model(workspace, trained, tmp_path):
    """Issue 6's bar, with tools/analysis_tools/precision_agreement.py: bf16 autocast with the
    fast paths predicts the class plain fp32 predicts for >= 99% of the held-out images (here
    all 32), and both classify them as well as tools/test.py does (the config's normalisation
    applied)."""
    out = tmp_path / 'agreement.json'
    proc = ok(call_tool(workspace, 'analysis_tools/precision_agreement.py', 'hifuse_small.py',
                        trained / f'epoch_{EPOCHS}.pth', '--settings', 'fp32:plain',
                        'bf16:fast', '--json', out))
    assert '| bf16 fast | 32 |' in proc.stdout
    results = json.loads(out.read_text())
    assert results['bf16 fast']['agreement'] >= 0.99
    assert 0 < results['bf16 fast']['max_abs_logit_diff'] < 0.25
    assert results['fp32 plain']['accuracy'] >= 0.9
    assert results['bf16 fast']['accuracy'] >= 0.9


@pytest.mark.parametrize('method,margin,share', [('gradcam', 0.15, 0.65),
                                                 ('gradcam++', 0.3, 0.9)])
def test_cam_energy_is_inside_the_lesion(workspace, trained, method, margin, share):
    """On held-out images the fused-map CAM is on average stronger inside the lesion mask."""
    clf = Classifier(workspace / 'hifuse_small.py', trained / f'epoch_{EPOCHS}.pth', device='cpu')
    data = workspace / 'data'
    lesions = json.loads((data / 'meta' / 'lesions.json').read_text())
    tests = sorted(k for k in lesions if k.startswith('test/'))
    batch = clf.preprocessor.batch([clf.prepare(data / rel) for rel in tests])
    results = CamExplainer(clf.model, method=method).explain(batch)
    inside, outside = np.array([
        mean_inside_outside(result.maps['fused'],
                            cv2.imread(str(data / lesions[rel]['mask']), cv2.IMREAD_GRAYSCALE))
        for result, rel in zip(results, tests)]).T
    print(f'{method}: mean CAM inside {inside.mean():.3f}, outside {outside.mean():.3f}, '
          f'inside > outside for {np.mean(inside > outside):.0%} of {len(tests)} images')
    assert inside.mean() > outside.mean() + margin
    assert np.mean(inside > outside) >= share


def test_vis_cam_tool_on_the_trained_model(workspace, trained):
    folder = workspace / 'two'
    folder.mkdir()
    for name in DEMO_CLASSES[1:3]:
        shutil.copy(workspace / 'data' / 'test' / name / f'{name}_0001.png', folder)
    out = workspace / 'cams'
    proc = ok(run_tool(workspace, 'visualization/vis_cam.py', 'hifuse_small.py',
                       trained / f'epoch_{EPOCHS}.pth', folder, '--branches', '--method',
                       'gradcam++', '--out-dir', out))
    assert '2 CAM figure(s) (gradcam++, fused+local+global)' in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        'irregular-dark_0001_cam.png', 'red-dotted_0001_cam.png']
    figure = cv2.imread(str(out / 'red-dotted_0001_cam.png'))
    assert figure.shape == (310, 960, 3)


def _folder_with_bad_files(workspace: Path) -> Path:
    folder = workspace / 'mixed'
    (folder / 'nested').mkdir(parents=True)
    for i, name in enumerate(DEMO_CLASSES):
        shutil.copy(workspace / 'data' / 'test' / name / f'{name}_0000.png',
                    folder / ('nested' if i % 2 else '.') / f'{name}.png')
    (folder / 'corrupt.jpg').write_bytes(b'\xff\xd8\xff\xe0 this is not really a jpeg')
    (folder / 'notes.txt').write_text('not an image\n')
    return folder


def test_infer_tool_skips_unreadable_files(workspace, trained):
    folder = _folder_with_bad_files(workspace)
    checkpoint = trained / f'epoch_{EPOCHS}.pth'
    proc = ok(run_tool(workspace, 'infer.py', 'hifuse_small.py', checkpoint, folder, '--out',
                       'pred.csv', '--batch-size', '3'))
    assert '4 image(s) classified' in proc.stdout
    assert re.search(r'warning: 1 of 5 file\(s\) could not be read.*\n.*corrupt\.jpg: not a '
                     r'decodable image', proc.stderr)
    assert '1 file(s) without an image extension skipped' in proc.stderr
    assert '4/5' in proc.stderr or '5/5' in proc.stderr  # the progress bar

    with open(workspace / 'pred.csv', newline='') as stream:
        rows = list(csv.DictReader(stream))
    # The documented columns, then status and error (issue 14): the file that could not be
    # classified is a row too.
    assert list(rows[0]) == ['path', 'pred_label', 'pred_class', 'pred_prob'] + [
        f'prob_{name}' for name in DEMO_CLASSES] + ['status', 'error']
    failed = [r for r in rows if r['status'] == 'error']
    assert [(Path(r['path']).name, r['pred_class']) for r in failed] == [('corrupt.jpg', '')]
    assert failed[0]['error'].startswith('not a decodable image')
    rows = [r for r in rows if r['status'] == 'ok']
    truth = {Path(r['path']).stem for r in rows}
    assert truth == set(DEMO_CLASSES)
    correct = 0
    for row in rows:
        probs = [float(row[f'prob_{name}']) for name in DEMO_CLASSES]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
        assert row['pred_class'] == DEMO_CLASSES[int(row['pred_label'])]
        assert float(row['pred_prob']) == pytest.approx(max(probs), abs=1e-6)
        correct += row['pred_class'] == Path(row['path']).stem
    assert correct >= 3

    # The same through the Python API, with and without TTA.
    clf = Classifier(workspace / 'hifuse_small.py', checkpoint, device='cpu')
    first = Path(rows[0]['path'])
    first = first if first.is_absolute() else workspace / first
    pred, = clf.predict(first)
    assert pred.name == rows[0]['pred_class']
    assert pred.score == pytest.approx(float(rows[0]['pred_prob']), abs=1e-5)

    # An existing CSV is not replaced; --force does.
    before = (workspace / 'pred.csv').read_text()
    proc = call_tool(workspace, 'infer.py', 'hifuse_small.py', checkpoint, folder, '--out',
                     'pred.csv', '--tta')
    assert proc.returncode == 2 and 'pred.csv exists; pass --force' in proc.stderr
    assert (workspace / 'pred.csv').read_text() == before
    ok(call_tool(workspace, 'infer.py', 'hifuse_small.py', checkpoint, folder, '--out',
                 'pred.csv', '--tta', '--force'))
    assert (workspace / 'pred.csv').read_text() != before


def test_infer_tool_fails_when_nothing_is_readable(workspace, trained):
    folder = workspace / 'all_bad'
    folder.mkdir()
    (folder / 'a.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    (folder / 'b.txt').write_text('text')
    proc = call_tool(workspace, 'infer.py', 'hifuse_small.py', trained / f'epoch_{EPOCHS}.pth',
                     folder, '--out', 'none.csv')
    assert proc.returncode == 1
    assert 'a.png: not a decodable image' in proc.stderr
    assert 'none of the 1 image file(s) could be read' in proc.stderr
    assert not (workspace / 'none.csv').exists()


def test_published_checkpoint_is_weights_only_with_identical_logits(workspace, trained):
    source = trained / f'epoch_{EPOCHS}.pth'
    with pytest.raises(Exception, match='Weights only load failed'):
        torch.load(source, map_location='cpu', weights_only=True)
    proc = ok(run_tool(workspace, 'model_converters/publish_model.py', source,
                       'published/hifuse_small.pth'))
    published, = (workspace / 'published').iterdir()
    assert re.fullmatch(r'hifuse_small-[0-9a-f]{8}\.pth', published.name)
    assert 'dropped: message_hub, optimizer, param_schedulers' in proc.stdout
    assert published.stat().st_size < source.stat().st_size / 2

    slim = torch.load(published, map_location='cpu', weights_only=True)
    assert set(slim) == {'state_dict', 'meta'}
    assert tuple(slim['meta']['dataset_meta']['classes']) == DEMO_CLASSES
    assert slim['meta']['epoch'] == EPOCHS

    images = sorted((workspace / 'data' / 'test').rglob('*.png'))[::4]
    logits = []
    for checkpoint in (source, published):
        loaded = load_model(workspace / 'hifuse_small.py', checkpoint, device='cpu')
        clf = Classifier(loaded.cfg, checkpoint, device='cpu')
        batch = clf.preprocessor.batch([clf.prepare(p) for p in images])
        logits.append(clf.logits(batch))
    assert torch.equal(logits[0], logits[1])
    assert logits[0].abs().max() > 1  # a trained model, not all-zero outputs

    # Publishing again changes nothing.
    proc = ok(call_tool(workspace, 'model_converters/publish_model.py', source,
                        'published/hifuse_small.pth'))
    assert 'already exists with the same contents' in proc.stdout
    assert len(list((workspace / 'published').iterdir())) == 1


def test_plot_curves_on_the_training_log(workspace, trained):
    log = load_training_log(trained)
    assert log.unit == 'epoch'
    # 160 training images, batch 16: 10 iterations per epoch, logged every 4.
    assert [e['iter'] for e in log.train][:4] == [4, 8, 14, 18]
    assert [e['x'] for e in log.train][:3] == [0.4, 0.8, 1.4]
    assert [e['x'] for e in log.val] == list(range(1, EPOCHS + 1))
    assert log.train[-1]['loss'] < log.train[0]['loss']
    assert any('accuracy' in name for name in log.metric_names())

    proc = ok(run_tool(workspace, 'analysis_tools/plot_curves.py', 'run'))
    png = trained / 'curves.png'
    assert f'{len(log.train)} training and {EPOCHS} validation entries' in proc.stdout
    image = cv2.imread(str(png))
    assert image.shape[1] > 3 * image.shape[0] / 2 and image.std() > 10
    proc = call_tool(workspace, 'analysis_tools/plot_curves.py', 'run')
    assert proc.returncode == 2 and 'curves.png exists; pass --force' in proc.stderr
    proc = call_tool(workspace, 'analysis_tools/plot_curves.py', 'run', '--out', 'c.png',
                     '--metrics', 'nope')
    assert proc.returncode == 2 and "metric(s) ['nope'] not in the log" in proc.stderr
    empty = workspace / 'empty_run'
    empty.mkdir()
    proc = call_tool(workspace, 'analysis_tools/plot_curves.py', empty)
    assert proc.returncode == 2 and 'no training log found' in proc.stderr
