"""hifuse_mm.apis without training: image reading, model loading, Classifier, CAMs on both model
families (narrow random-init models), output-file rules, training-log parsing, publishing."""
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import hifuse_mm  # noqa: F401
from hifuse_mm.apis import (CamError, CamExplainer, Classifier, ImageReadError, InputSizeError,
                            ModelLoadError, OutputExistsError, PublishError, TrainingLogError,
                            check_new_files, derived_paths, find_images, load_model,
                            load_training_log, mean_inside_outside, publish_checkpoint,
                            read_image)
from hifuse_mm.apis.training_log import estimate_iters_per_epoch
from hifuse_mm.datasets import DEMO_CLASSES, make_demo_dataset
from tool_runner import call_tool, ok
from tiny_config import NARROW_HIFUSE, inference_pipeline, narrow_hemf, write_config

SMALL_MODELS = {
    'hifuse': '\n' + NARROW_HIFUSE,
    'hemf': narrow_hemf(global_depths=(2, 1, 1, 1)),
}
# Non-square on purpose: 96 wide, 64 high (tiny_config.inference_pipeline).


def write_family_config(folder: Path, family: str, scale=(96, 64)) -> Path:
    """``folder/<family>_<w>x<h>.py``: a small model of ``family`` resized to ``scale``."""
    return write_config(folder / f'{family}_{scale[0]}x{scale[1]}.py',
                        body=SMALL_MODELS[family] + inference_pipeline(tuple(scale)))


def write_random_checkpoint(folder: Path, config: Path, seed: int = 0) -> Path:
    """A random-init model of ``config`` saved as our checkpoints are (state_dict + meta)."""
    cfg = Config.fromfile(str(config))
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    path = folder / f'{config.stem}.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=DEMO_CLASSES), epoch=0,
                              seed=np.int64(seed))), path)
    return path


@pytest.fixture(scope='module')
def space(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('apis')
    make_demo_dataset(root / 'data', num_per_class=(1, 1, 1), image_size=80, seed=1)
    for family in SMALL_MODELS:
        write_random_checkpoint(root, write_family_config(root, family))
    return root


def family_files(space: Path, family: str):
    config = space / f'{family}_96x64.py'
    return config, space / f'{config.stem}.pth'


# -- images --------------------------------------------------------------------------------


def test_find_images_recurses_and_separates_other_files(tmp_path):
    (tmp_path / 'a' / 'b').mkdir(parents=True)
    (tmp_path / '.hidden').mkdir()
    for name in ('x.png', 'a/y.JPG', 'a/b/z.tif', 'notes.txt', '.hidden/h.png', '.dot.png'):
        (tmp_path / name).write_bytes(b'')
    images, skipped = find_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in images] == [
        'a/b/z.tif', 'a/y.JPG', 'x.png']
    assert [p.name for p in skipped] == ['notes.txt']
    # A file given directly is taken whatever its name.
    assert find_images(tmp_path / 'notes.txt') == ([tmp_path / 'notes.txt'], [])
    with pytest.raises(FileNotFoundError, match='missing'):
        find_images(tmp_path / 'missing')


def test_read_image_errors_name_the_file(tmp_path):
    good = tmp_path / 'good.png'
    cv2.imwrite(str(good), np.full((5, 7, 3), (10, 20, 30), np.uint8))
    image = read_image(good)
    assert image.shape == (5, 7, 3) and tuple(image[0, 0]) == (10, 20, 30)  # BGR as stored
    corrupt = tmp_path / 'corrupt.png'
    corrupt.write_bytes(good.read_bytes()[:30] + b'\x00' * 40)
    (tmp_path / 'empty.jpg').write_bytes(b'')
    with pytest.raises(ImageReadError, match=r'corrupt\.png: not a decodable image \(70 bytes\)'):
        read_image(corrupt)
    with pytest.raises(ImageReadError, match=r'empty\.jpg: the file is empty'):
        read_image(tmp_path / 'empty.jpg')
    with pytest.raises(ImageReadError, match='gone.png: cannot read'):
        read_image(tmp_path / 'gone.png')


# -- output files --------------------------------------------------------------------------


def test_derived_paths_keep_structure_and_avoid_collisions(tmp_path):
    inputs = [tmp_path / 'a' / 'img.png', tmp_path / 'b' / 'img.png', tmp_path / 'b' / 'img.jpg']
    out = derived_paths(inputs, tmp_path, Path('out'))
    assert [p.as_posix() for p in out] == ['out/a/img_cam.png', 'out/b/img_png_cam.png',
                                           'out/b/img_jpg_cam.png']
    assert derived_paths([tmp_path / 'one.jpg'], tmp_path / 'one.jpg', Path('o')) == [
        Path('o/one_cam.png')]


def test_check_new_files(tmp_path):
    (tmp_path / 'a').write_text('mine')
    check_new_files([tmp_path / 'b'])
    with pytest.raises(OutputExistsError, match=r'a exists; pass --force'):
        check_new_files([tmp_path / 'a', tmp_path / 'b'])
    (tmp_path / 'b').write_text('mine too')
    with pytest.raises(OutputExistsError, match='2 output files exist'):
        check_new_files([tmp_path / 'a', tmp_path / 'b'])
    check_new_files([tmp_path / 'a'], force=True)
    assert (tmp_path / 'a').read_text() == 'mine'


# -- model loading and Classifier ----------------------------------------------------------


@pytest.mark.parametrize('family', list(SMALL_MODELS))
def test_classifier_matches_mmpretrain_test_path(space, family):
    """Paths and arrays give the probabilities mmpretrain's own test path gives."""
    config, checkpoint = family_files(space, family)
    clf = Classifier(config, checkpoint, device='cpu')
    assert clf.classes == DEMO_CLASSES
    paths = sorted((space / 'data' / 'test').rglob('*.png'))
    by_path = clf.predict(paths, batch_size=3)
    by_array = clf.predict([cv2.imread(str(p)) for p in paths])

    cfg = clf.loaded.cfg
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = Compose(cfg.test_dataloader.dataset.pipeline)
    reference = []
    for path in paths:
        packed = pipeline(dict(img_path=str(path)))
        assert tuple(packed['inputs'].shape) == (3, 64, 96)
        with torch.no_grad():
            out = clf.model.test_step(dict(inputs=[packed['inputs']],
                                           data_samples=[DataSample()]))
        reference.append(out[0].pred_score.numpy())
    for ours, arr, ref in zip(by_path, by_array, reference):
        np.testing.assert_allclose(ours.probabilities, ref, rtol=0, atol=1e-6)
        np.testing.assert_allclose(ours.probabilities, arr.probabilities, rtol=0, atol=1e-6)
        assert ours.label == int(ref.argmax()) and ours.name == DEMO_CLASSES[ours.label]
        assert ours.score == pytest.approx(ref.max(), abs=1e-6)
        assert ours.probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def test_classifier_tta_averages_the_mirror(space):
    config, checkpoint = family_files(space, 'hifuse')
    image = cv2.imread(str(next((space / 'data' / 'test').rglob('*.png'))))
    plain = Classifier(config, checkpoint, device='cpu')
    tta = Classifier(config, checkpoint, device='cpu', tta=True)
    p, m = plain.predict([image, image[:, ::-1].copy()])
    expected = (p.probabilities + m.probabilities) / 2
    np.testing.assert_allclose(tta.predict(image)[0].probabilities, expected, atol=1e-6)


def test_load_errors_are_clear(space, tmp_path):
    hifuse_cfg, hifuse_ckpt = family_files(space, 'hifuse')
    _, hemf_ckpt = family_files(space, 'hemf')
    with pytest.raises(ModelLoadError, match='config file not found'):
        load_model(tmp_path / 'nope.py', hifuse_ckpt)
    with pytest.raises(ModelLoadError, match='checkpoint file not found'):
        load_model(hifuse_cfg, tmp_path / 'nope.pth')
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    with pytest.raises(ModelLoadError, match='junk.pth: not a readable PyTorch checkpoint'):
        load_model(hifuse_cfg, tmp_path / 'junk.pth')
    with pytest.raises(ModelLoadError, match='does not fit the model of the config'):
        load_model(hifuse_cfg, hemf_ckpt)


def test_input_size_must_be_multiple_of_32(space):
    config = write_family_config(space, 'hifuse', scale=(70, 64))
    clf = Classifier(config, family_files(space, 'hifuse')[1], device='cpu')
    with pytest.raises(InputSizeError, match='gives a 64x70 input.*multiples of 32'):
        clf.predict(next((space / 'data' / 'test').rglob('*.png')))


# -- CAMs on both families -------------------------------------------------------------------


@pytest.mark.parametrize('family,method', [('hifuse', 'gradcam'), ('hemf', 'gradcam++'),
                                           ('hemf', 'layercam')])
def test_cam_maps_cover_the_input(space, family, method):
    config, checkpoint = family_files(space, family)
    clf = Classifier(config, checkpoint, device='cpu')
    explainer = CamExplainer(clf.model, method=method, targets=('fused', 'local', 'global'))
    paths = sorted((space / 'data' / 'test').rglob('*.png'))[:2]
    batch = clf.preprocessor.batch([clf.prepare(p) for p in paths])
    results = explainer.explain(batch)
    expected = clf.predict(paths)
    for result, pred in zip(results, expected):
        assert set(result.maps) == {'fused', 'local', 'global'}
        for cam in result.maps.values():
            assert cam.shape == (64, 96) and cam.dtype == np.float32
            assert cam.min() >= 0 and cam.max() <= 1 + 1e-6
        assert result.category == result.predicted == pred.label
        np.testing.assert_allclose(result.probabilities, pred.probabilities, atol=1e-6)
    fixed = explainer.explain(batch, category=3)
    assert [r.category for r in fixed] == [3, 3]


def test_cam_on_a_single_branch_ablation():
    """HEMF "EGF only" (Table 10): no fusion blocks; the fused target is the global map."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(dict(
            type='ImageClassifier',
            backbone=dict(type='HEMF', with_local_branch=False, shared_stem=False,
                          arch=dict(embed_dims=16, num_heads=2, local_depths=(1, 1, 1, 1),
                                    global_depths=(1, 1, 1, 1))),
            neck=dict(type='HEFNeck', in_channels=(16, 32, 64, 128), with_fusion=False),
            head=dict(type='LinearClsHead', num_classes=3, in_channels=128))).eval()
    explainer = CamExplainer(model, targets=('fused', 'global'))
    assert explainer.tapped.branches == ('global', )
    result, = explainer.explain(torch.randn(1, 3, 64, 64))
    np.testing.assert_array_equal(result.maps['fused'], result.maps['global'])
    with pytest.raises(CamError, match='no local branch.*explain fused or global'):
        CamExplainer(model, targets=('fused', 'local'))


def test_mean_inside_outside():
    cam = np.zeros((4, 4), np.float32)
    cam[:2] = 1.0
    mask = np.zeros((4, 4), bool)
    mask[:1] = True
    assert mean_inside_outside(cam, mask) == pytest.approx((1.0, 4 / 12))
    with pytest.raises(ValueError, match='inside and outside'):
        mean_inside_outside(cam, np.ones((4, 4), bool))


@pytest.mark.parametrize('family,method', [('hifuse', 'gradcam'), ('hemf', 'gradcam++')])
def test_vis_cam_tool_writes_one_png_per_image(space, family, method):
    config, checkpoint = family_files(space, family)
    out_dir = space / f'cams_{family}'
    # In this process (tests/test_explain_e2e.py runs vis_cam.py as a subprocess).
    proc = ok(call_tool(space, 'visualization/vis_cam.py', config, checkpoint, 'data/test',
                        '--method', method, '--branches', '--out-dir', out_dir,
                        '--device', 'cpu'))
    assert f'4 CAM figure(s) ({method}, fused+local+global)' in proc.stdout
    pngs = sorted(out_dir.rglob('*.png'))
    assert [p.relative_to(out_dir).as_posix() for p in pngs] == [
        f'{name}/{name}_0000_cam.png' for name in sorted(DEMO_CLASSES)]
    figure = cv2.imread(str(pngs[0]))
    # Four panels side by side: input, fused, local, global.
    assert figure.shape[1] == 4 * 240 and figure.shape[0] == 310
    assert len({tuple(cv2.imread(str(p)).mean(axis=(0, 1)).round(3)) for p in pngs}) == 4


def test_vis_cam_tool_refuses_to_overwrite_and_checks_category(space):
    config, checkpoint = family_files(space, 'hifuse')
    image = next((space / 'data' / 'test').rglob('*.png'))
    out_dir = space / 'cams_single'
    ok(call_tool(space, 'visualization/vis_cam.py', config, checkpoint, image, '--out-dir',
                 out_dir, '--target-category', 2))
    png = out_dir / f'{image.stem}_cam.png'
    before = png.read_bytes()
    proc = call_tool(space, 'visualization/vis_cam.py', config, checkpoint, image, '--out-dir',
                     out_dir)
    assert proc.returncode == 2 and 'exists; pass --force' in proc.stderr
    assert png.read_bytes() == before
    proc = call_tool(space, 'visualization/vis_cam.py', config, checkpoint, image, '--out-dir',
                     space / 'cams_bad', '--target-category', 4)
    assert proc.returncode == 2 and '--target-category 4 is out of range' in proc.stderr
    ok(call_tool(space, 'visualization/vis_cam.py', config, checkpoint, image, '--out-dir',
                 out_dir, '--force', '--method', 'eigencam'))
    assert png.read_bytes() != before


# -- training log ----------------------------------------------------------------------------


def test_iters_per_epoch_estimate():
    # 10 iterations per epoch logged every 3: exact once an epoch's last iteration is logged.
    logged = [dict(epoch=(i - 1) // 10 + 1, iter=i) for i in range(3, 31, 3)]
    assert estimate_iters_per_epoch(logged) == 10
    # Epoch ends never logged (interval 3, 4 iterations per epoch): still 4 here.
    assert estimate_iters_per_epoch([dict(epoch=1, iter=3), dict(epoch=2, iter=7)]) == 4
    assert estimate_iters_per_epoch([dict(epoch=1, iter=9), dict(epoch=2, iter=10)]) == 9
    assert estimate_iters_per_epoch([dict(epoch=2, iter=3), dict(epoch=1, iter=9)]) is None


def _write_run(work_dir: Path, stamp: str, lines) -> None:
    folder = work_dir / stamp / 'vis_data'
    folder.mkdir(parents=True)
    (folder / 'scalars.json').write_text(''.join(json.dumps(x) + '\n' for x in lines))


def test_training_log_latest_and_all_runs(tmp_path):
    with pytest.raises(TrainingLogError, match=r'expected .*<timestamp>/vis_data/scalars.json'):
        load_training_log(tmp_path)
    _write_run(tmp_path, '20260101_000000', [
        dict(lr=0.1, loss=2.0, epoch=1, iter=2, step=2),
        dict(**{'accuracy/top1': 50.0, 'time': 0.1, 'step': 1}),
        dict(lr=0.05, loss=1.0, epoch=2, iter=4, step=4),
        dict(**{'accuracy/top1': 75.0, 'time': 0.1, 'step': 2})])
    _write_run(tmp_path, '20260101_010000', [   # resumed: epoch 3, last line cut off
        dict(lr=0.01, loss=0.5, epoch=3, iter=6, step=6),
        dict(**{'accuracy/top1': 70.0, 'step': 3})])
    with open(tmp_path / '20260101_010000' / 'vis_data' / 'scalars.json', 'a') as f:
        f.write('{"lr": 0.00')
    latest = load_training_log(tmp_path)
    assert [e['x'] for e in latest.train] == [3.0] and len(latest.val) == 1
    full = load_training_log(tmp_path, all_runs=True)
    assert full.unit == 'epoch'
    assert [(e['x'], e['loss']) for e in full.train] == [(1.0, 2.0), (2.0, 1.0), (3.0, 0.5)]
    assert [(e['x'], e['accuracy/top1']) for e in full.val] == [(1, 50.0), (2, 75.0), (3, 70.0)]
    assert full.metric_names() == ['accuracy/top1']


# -- publishing -------------------------------------------------------------------------------


def test_publish_random_checkpoint(space, tmp_path):
    _, checkpoint = family_files(space, 'hemf')
    with pytest.raises(Exception):  # numpy scalar in meta: not weights-only loadable
        torch.load(checkpoint, weights_only=True)
    result = publish_checkpoint(checkpoint, tmp_path / 'hemf-small.pth')
    assert re.fullmatch(r'hemf-small-[0-9a-f]{8}\.pth', result.path.name)
    assert result.path.name[-12:-4] == result.sha256[:8] and result.created
    loaded = torch.load(result.path, weights_only=True)
    assert loaded['meta'] == dict(dataset_meta=dict(classes=DEMO_CLASSES), epoch=0, seed=0)
    again = publish_checkpoint(checkpoint, tmp_path / 'hemf-small.pth')
    assert again.path == result.path and not again.created
    assert sorted(p.name for p in tmp_path.iterdir()) == [result.path.name]
    result.path.write_bytes(b'someone else\'s file')
    with pytest.raises(OutputExistsError, match='exists with different contents'):
        publish_checkpoint(checkpoint, tmp_path / 'hemf-small.pth')
    assert result.path.read_bytes() == b'someone else\'s file'
    (tmp_path / 'junk.pth').write_bytes(b'junk')
    with pytest.raises(PublishError, match='junk.pth: not a readable PyTorch checkpoint'):
        publish_checkpoint(tmp_path / 'junk.pth', tmp_path / 'x.pth')
