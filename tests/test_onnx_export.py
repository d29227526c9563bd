"""ONNX deployment (issue 15): ``tools/deployment/export_onnx.py`` with its parity gate, the
manifest, ``tools/infer.py MODEL.onnx`` / ``Classifier.from_onnx`` against the PyTorch path, and
the refusals of bad input.

Small random-init models (a narrow HiFuse at 256x320 with a dynamic batch: the non-square size
pads the shifted windows; a narrow HEMF at 64x64, batch 1), exported once each for the module.
"""
import csv
import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

pytest.importorskip('onnxruntime', reason='the deploy extra is not installed')

import hifuse_mm  # noqa: E402
from hifuse_mm.apis import Classifier, ImagePreprocessor, OnnxClassifier  # noqa: E402
from hifuse_mm.datasets import DEMO_CLASSES, make_demo_dataset  # noqa: E402
from hifuse_mm.deploy import (DEFAULT_TOLERANCE, DeployDependencyError,  # noqa: E402
                              ManifestError, OnnxLogitsSession, OnnxModelError,
                              import_deploy_module, read_manifest)
from hifuse_mm.utils.file_hash import file_sha256  # noqa: E402
from helpers import Payload  # noqa: E402
from tiny_config import (NARROW_HIFUSE, inference_pipeline, narrow_hemf,  # noqa: E402
                         write_config)
from tool_runner import TOOLS, call_tool, ok  # noqa: E402

# Resize to (width, height): 320x256 for HiFuse (non-square), 64x64 for HEMF.
MODELS_UNDER_TEST = {
    'hifuse': dict(body=NARROW_HIFUSE, scale=(320, 256), dynamic=True),
    'hemf': dict(body=narrow_hemf(), scale=(64, 64), dynamic=False),
}


def _checkpoint(root: Path, config: Path, name: str, seed: int,
                train: Path = None) -> Path:
    """A random-init model of ``config`` saved as our checkpoints are; with ``train`` (a folder
    of class subfolders), its head is a nearest-class-mean classifier of the random features
    of those images, so that its predictions follow the demo classes."""
    torch.manual_seed(seed)
    cfg = Config.fromfile(str(config))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(dict(cfg.model, data_preprocessor=cfg.data_preprocessor)).eval()
    if train is not None:
        preprocessor = ImagePreprocessor(cfg, model.data_preprocessor)
        with torch.no_grad():
            means = []
            for label in DEMO_CLASSES:
                files = sorted((train / label).glob('*.png'))
                batch = preprocessor.batch([preprocessor.prepare(preprocessor.read(path), path)
                                            for path in files])
                means.append(model.extract_feat(batch)[-1].mean(0))
            means = torch.stack(means)
            means -= means.mean(0)
            model.head.fc.weight.copy_(means / means.norm(dim=1, keepdim=True) * 8)
            model.head.fc.bias.zero_()
    path = root / name
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=list(DEMO_CLASSES)))), path)
    return path


@pytest.fixture(scope='module')
def space(tmp_path_factory) -> Path:
    """Demo data, and per family a config, a checkpoint and its export (``<family>.onnx``)."""
    root = tmp_path_factory.mktemp('onnx')
    make_demo_dataset(root / 'data', num_per_class=(2, 1, 2), image_size=48, seed=3)
    for family, spec in MODELS_UNDER_TEST.items():
        config = write_config(root / f'{family}.py',
                              body=spec['body'] + inference_pipeline(spec['scale']))
        _checkpoint(root, config, f'{family}.pth', seed=0, train=root / 'data' / 'train')
        args = [f'{family}.py', f'{family}.pth', '--out', f'{family}.onnx',
                '--check-images', 'data/test']
        ok(call_tool(root, 'deployment/export_onnx.py',
                     *(args + ['--dynamic-batch'] if spec['dynamic'] else args)))
    return root


def _manifest_json(space: Path, family: str) -> dict:
    return json.loads((space / f'{family}.json').read_text())


@pytest.mark.parametrize('family', sorted(MODELS_UNDER_TEST))
def test_export_writes_model_and_manifest(space, family):
    spec = MODELS_UNDER_TEST[family]
    data = _manifest_json(space, family)
    width, height = spec['scale']
    assert data['classes'] == list(DEMO_CLASSES)
    assert data['input'] == {'name': 'images', 'layout': 'NCHW', 'dtype': 'float32',
                             'channels': 3, 'height': height, 'width': width,
                             'batch': 'dynamic' if spec['dynamic'] else 1}
    prep = data['preprocessing']
    assert prep['mean'] == [127.5] * 3 and prep['std'] == [127.5] * 3
    assert prep['to_rgb'] is True and prep['channel_order'] == 'RGB'
    assert prep['pipeline'] == [{'type': 'Resize', 'scale': [width, height]},
                                {'type': 'PackInputs'}]
    assert prep['resize_rule'] == f'Resize(scale=[{width}, {height}]) -> PackInputs()'
    assert prep['decode']['color_type'] == 'color'
    assert data['model_sha256'] == file_sha256(space / f'{family}.onnx')
    assert data['source']['checkpoint_sha256'] == file_sha256(space / f'{family}.pth')
    assert data['source']['model']['backbone'] == {'hifuse': 'HiFuse', 'hemf': 'HEMF'}[family]
    assert data['versions']['torch'] == torch.__version__
    assert data['versions']['hifuse_mm'] == hifuse_mm.__version__
    assert data['versions']['onnxruntime'] and data['opset'] >= 18
    parity = data['parity']
    assert parity['passed'] and 0 <= parity['max_abs_logit_diff'] <= DEFAULT_TOLERANCE
    # 4 random inputs and the 8 test images, at batch 1 (and 4 with a dynamic batch).
    rows = {(row['inputs'], row['batch_size']): row for row in parity['checks']}
    expected = {('random', 1), ('images', 1)} | (
        {('random', 4), ('images', 4)} if spec['dynamic'] else set())
    assert set(rows) == expected
    assert rows['images', 1]['count'] == 8 and rows['random', 1]['count'] == 4
    assert all(row['top1_mismatches'] == 0 for row in rows.values())
    # Nothing else was left in the folder (no temporary export file).
    assert not list(space.glob('.*onnx*'))


def _pytorch_logits(space: Path, family: str, x: torch.Tensor) -> torch.Tensor:
    return Classifier(space / f'{family}.py', space / f'{family}.pth', device='cpu').logits(x)


@pytest.mark.parametrize('family', sorted(MODELS_UNDER_TEST))
def test_onnx_graph_shapes_and_batches(space, family):
    """The graph's input is the manifest's; a dynamic batch runs 3 images in one call with the
    logits of batch 1, a fixed-batch graph takes exactly one image (the session splits)."""
    import onnx

    spec = MODELS_UNDER_TEST[family]
    width, height = spec['scale']
    graph = onnx.load(str(space / f'{family}.onnx'))
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [3, height, width]
    assert (dims[0].dim_param != '') == spec['dynamic']
    assert spec['dynamic'] or dims[0].dim_value == 1
    session = OnnxLogitsSession.from_file(space / f'{family}.onnx')
    x = torch.randn(3, 3, height, width, generator=torch.Generator().manual_seed(5))
    together = session(x.numpy())
    alone = np.concatenate([session(x[i:i + 1].numpy()) for i in range(3)])
    assert together.shape == (3, len(DEMO_CLASSES))
    assert np.abs(together - alone).max() <= 1e-5
    expected = _pytorch_logits(space, family, x).numpy()
    assert np.abs(together - expected).max() <= DEFAULT_TOLERANCE
    with pytest.raises(ValueError, match=f'takes \\[B, 3, {height}, {width}\\]'):
        session(torch.zeros(1, 3, height + 32, width).numpy())


def _read_csv(path: Path):
    with open(path, newline='') as stream:
        return list(csv.DictReader(stream))


def test_infer_backends_agree_on_demo_test_split(space):
    """tools/infer.py with the PyTorch model and with its export: same CSV columns and rows,
    probabilities within 1e-4, same predicted classes (HiFuse, the demo test split)."""
    ok(call_tool(space, 'infer.py', 'hifuse.py', 'hifuse.pth', 'data/test', '--out', 'pt.csv'))
    result = ok(call_tool(space, 'infer.py', 'hifuse.onnx', 'data/test', '--out', 'ort.csv',
                          '--batch-size', '3'))
    assert 'onnxruntime' in result.stdout
    torch_rows, onnx_rows = _read_csv(space / 'pt.csv'), _read_csv(space / 'ort.csv')
    assert len(torch_rows) == 8
    assert list(torch_rows[0]) == list(onnx_rows[0])  # the same columns, in order
    prob_columns = [key for key in torch_rows[0] if key.startswith('prob_')]
    assert len(prob_columns) == len(DEMO_CLASSES)
    for ours, theirs in zip(torch_rows, onnx_rows):
        assert ours['path'] == theirs['path'] and theirs['status'] == 'ok'
        assert ours['pred_label'] == theirs['pred_label']
        assert ours['pred_class'] == theirs['pred_class']
        for key in prob_columns + ['pred_prob']:
            assert abs(float(ours[key]) - float(theirs[key])) <= 1e-4 + 1e-6
    # The classes were not all the same, so top-1 agreement means something.
    assert len({row['pred_label'] for row in torch_rows}) > 1


@pytest.mark.parametrize('family', sorted(MODELS_UNDER_TEST))
def test_classifier_from_onnx_matches_pytorch(space, family):
    images = sorted((space / 'data' / 'test').rglob('*.png'))
    onnx_model = Classifier.from_onnx(space / f'{family}.onnx', tta=True, temperature=2.0)
    assert isinstance(onnx_model, OnnxClassifier) and onnx_model.classes == DEMO_CLASSES
    torch_model = Classifier(space / f'{family}.py', space / f'{family}.pth', device='cpu',
                             tta=True, temperature=2.0)
    got, expected = onnx_model.predict(images), torch_model.predict(images)
    assert [p.label for p in got] == [p.label for p in expected]
    assert max(np.abs(a.probabilities - b.probabilities).max()
               for a, b in zip(got, expected)) <= 1e-4
    # An image array goes the same way as a file.
    array = onnx_model.read(images[0])
    assert np.allclose(onnx_model.predict(array)[0].probabilities, got[0].probabilities,
                       atol=1e-6)


def test_images_of_another_size_are_a_per_file_error(space, tmp_path):
    """A test pipeline that does not resize needs --shape; the exported model then refuses, file
    by file, images whose input is not its size (an ``error`` row of infer.py, not a crash)."""
    config = write_config(tmp_path / 'free.py', body=narrow_hemf() + """
test_pipeline = [dict(type='CheckedLoadImageFromFile'), dict(type='PackInputs')]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
""")
    result = call_tool(tmp_path, 'deployment/export_onnx.py', config, space / 'hemf.pth',
                       '--out', 'free.onnx')
    assert result.returncode == 2 and 'pass --shape HEIGHT WIDTH' in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['free.py']
    # The HEMF export (64x64) with such a pipeline in its manifest.
    shutil.copy(space / 'hemf.onnx', tmp_path / 'free.onnx')
    data = _manifest_json(space, 'hemf')
    data['preprocessing']['pipeline'] = [{'type': 'PackInputs'}]
    (tmp_path / 'free.json').write_text(json.dumps(data))
    images = tmp_path / 'images'
    images.mkdir()
    for size in (64, 96):
        cv2.imwrite(str(images / f'{size}.png'), np.full((size, size, 3), 90, np.uint8))
    ok(call_tool(tmp_path, 'infer.py', 'free.onnx', images, '--out', 'p.csv'))
    rows = {Path(row['path']).name: row for row in _read_csv(tmp_path / 'p.csv')}
    assert rows['64.png']['status'] == 'ok'
    assert rows['96.png']['status'] == 'error'
    assert 'gives a 96x96 input' in rows['96.png']['error']
    assert 'exported for 64x64 only' in rows['96.png']['error']


# ---- bad input --------------------------------------------------------------------------------


def test_untrusted_checkpoint_is_refused(space, tmp_path):
    marker = tmp_path / 'pwned'
    torch.save({'state_dict': {}, 'meta': Payload(marker)}, tmp_path / 'hostile.pth')
    result = call_tool(tmp_path, 'deployment/export_onnx.py', space / 'hemf.py', 'hostile.pth',
                       '--out', 'm.onnx')
    assert result.returncode == 2
    assert result.stderr.startswith('error: refusing to load hostile.pth')
    assert '--trust-checkpoint' in result.stderr and 'weights_only' in result.stderr
    assert not marker.exists() and not (tmp_path / 'm.onnx').exists()


@pytest.mark.parametrize('shape', [('250', '320'), ('256', '16')])
def test_shape_not_divisible_by_32_is_refused_first(tmp_path, shape):
    # The config and checkpoint do not even exist: the shape is checked before any work.
    result = call_tool(tmp_path, 'deployment/export_onnx.py', 'no.py', 'no.pth', '--out',
                       'm.onnx', '--shape', *shape)
    assert result.returncode == 2
    assert 'multiples of 32' in result.stderr and '--shape' in result.stderr
    assert 'no.pth' not in result.stderr


def test_shape_other_than_the_pipeline_is_refused(space, tmp_path):
    result = call_tool(tmp_path, 'deployment/export_onnx.py', space / 'hemf.py',
                       space / 'hemf.pth', '--out', 'm.onnx', '--shape', '96', '64')
    assert result.returncode == 2
    assert 'gives 64x64 inputs' in result.stderr and '--cfg-options' in result.stderr


def test_existing_output_is_kept_without_force(space, tmp_path):
    (tmp_path / 'm.json').write_text('mine')
    result = call_tool(tmp_path, 'deployment/export_onnx.py', space / 'hemf.py',
                       space / 'hemf.pth', '--out', 'm.onnx')
    assert result.returncode == 2 and 'm.json exists; pass --force' in result.stderr
    assert (tmp_path / 'm.json').read_text() == 'mine' and not (tmp_path / 'm.onnx').exists()
    wrong = call_tool(tmp_path, 'deployment/export_onnx.py', space / 'hemf.py',
                      space / 'hemf.pth', '--out', 'm.pt')
    assert wrong.returncode == 2 and 'must end in .onnx' in wrong.stderr


def test_model_without_manifest_is_refused(space, tmp_path):
    shutil.copy(space / 'hemf.onnx', tmp_path / 'lonely.onnx')
    with pytest.raises(ManifestError, match='lonely.onnx has no manifest: .*lonely.json is '
                       'missing'):
        Classifier.from_onnx(tmp_path / 'lonely.onnx')
    result = call_tool(tmp_path, 'infer.py', 'lonely.onnx', space / 'data' / 'test', '--out',
                       'p.csv')
    assert result.returncode == 2 and 'has no manifest' in result.stderr
    assert not (tmp_path / 'p.csv').exists()


def test_manifest_of_another_model_is_refused(space, tmp_path):
    """The manifest records the .onnx file's SHA-256: HEMF's manifest beside HiFuse's model, or
    a model file changed after export, is refused with both checksums."""
    shutil.copy(space / 'hifuse.onnx', tmp_path / 'm.onnx')
    shutil.copy(space / 'hemf.json', tmp_path / 'm.json')
    with pytest.raises(ManifestError, match='does not match its manifest') as info:
        Classifier.from_onnx(tmp_path / 'm.onnx')
    assert file_sha256(tmp_path / 'm.onnx') in str(info.value)
    assert _manifest_json(space, 'hemf')['model_sha256'] in str(info.value)
    result = call_tool(tmp_path, 'infer.py', 'm.onnx', space / 'data' / 'test', '--out', 'p.csv')
    assert result.returncode == 2 and 'does not match its manifest' in result.stderr
    # A manifest with the right checksum but another input than the graph's.
    shutil.copy(space / 'hemf.onnx', tmp_path / 'm.onnx')
    data = _manifest_json(space, 'hemf')
    data['input']['batch'] = 'dynamic'
    (tmp_path / 'm.json').write_text(json.dumps(data))
    with pytest.raises(OnnxModelError, match=r"takes input \[1, 3, 64, 64\], its manifest says "
                       r"\['dynamic', 3, 64, 64\]"):
        Classifier.from_onnx(tmp_path / 'm.onnx')
    # A damaged manifest names the file.
    (tmp_path / 'm.json').write_text('{"format": "something else"}')
    with pytest.raises(ManifestError, match='m.json is not a hifuse-mm ONNX manifest'):
        read_manifest(tmp_path / 'm.onnx')


def test_pytorch_options_are_refused_with_an_onnx_model(space, tmp_path):
    with pytest.raises(SystemExit) as info:
        call_tool(tmp_path, 'infer.py', space / 'hemf.onnx', 'x', '--out', 'p.csv',
                  '--precision', 'bf16')
    assert info.value.code == 2


def test_failed_gate_leaves_nothing_and_exits_1(space, tmp_path, monkeypatch, capsys):
    """An export that does not compute the checkpoint's logits (here: the file of another
    checkpoint of the same model) fails the gate: exit 1, the figures, no file left."""
    import hifuse_mm.apis.deployment as export_module

    other = _checkpoint(tmp_path, space / 'hemf.py', 'other.pth', seed=1)

    def wrong_export(model, path, *args, **kwargs):
        shutil.copy(space / 'hemf.onnx', path)
        return 18
    monkeypatch.setattr(export_module, 'export_logits', wrong_export)
    result = call_tool(tmp_path, 'deployment/export_onnx.py', space / 'hemf.py', other,
                       '--out', 'm.onnx')
    assert result.returncode == 1
    assert '4 random images at batch 1: max |logit difference|' in result.stderr
    assert 'FAILED' in result.stderr and 'm.onnx was not written' in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['other.pth']


def test_missing_deploy_extra_names_the_extra():
    with pytest.raises(DeployDependencyError, match=r"pip install -e '\.\[deploy\]'"):
        import_deploy_module('hifuse_mm_no_such_package')


def test_manifest_checksum_covers_the_bytes_loaded(space, tmp_path):
    """One byte changed in the model file is refused (the session hashes what it loads)."""
    data = bytearray((space / 'hemf.onnx').read_bytes())
    data[-1] ^= 1
    (tmp_path / 'm.onnx').write_bytes(bytes(data))
    shutil.copy(space / 'hemf.json', tmp_path / 'm.json')
    with pytest.raises(ManifestError, match=hashlib.sha256(bytes(data)).hexdigest()):
        OnnxLogitsSession.from_file(tmp_path / 'm.onnx')


def test_importing_hifuse_mm_does_not_import_the_deploy_extra():
    """onnx, onnxscript and onnxruntime are imported only inside the functions that use them
    (hifuse_mm.deploy.dependencies), never at module level anywhere in the package."""
    import ast

    extra = {'onnx', 'onnxscript', 'onnxruntime'}

    def imports_run_at_import(node):
        """Import statements outside function bodies (module and class level, if / try)."""
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import):
                yield from (alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                yield child.module or ''
            else:
                yield from imports_run_at_import(child)

    found = [f'{path.name}: {name}'
             for path in sorted(Path(hifuse_mm.__file__).parent.rglob('*.py'))
             for name in imports_run_at_import(ast.parse(path.read_text()))
             if name.partition('.')[0] in extra]
    assert found == []


def test_bench_tool_training_mode(space, tmp_path):
    """tools/deployment/bench_onnx.py --train on the narrow HEMF (64x64, no authors' model):
    it times eager fp32 training steps only (nothing exported), and those steps do train the
    model (loss finite, backbone and head weights updated). (Its inference mode exports and
    runs onnxruntime as the tests above do; it is run by hand for docs/benchmarks.md.)"""
    threads = str(torch.get_num_threads())  # main sets torch's threads in this process
    result = call_tool(space, 'deployment/bench_onnx.py', '--config', 'hemf.py', '--size',
                       '64', '--batch', '2', '--rounds', '2', '--warmup', '0', '--threads',
                       threads, '--train', '--json', tmp_path / 'train.json')
    ok(result)
    assert 'hemf, batch 2, training step:' in result.stdout
    report = json.loads((tmp_path / 'train.json').read_text())
    assert report['mode'] == 'train' and report['size'] == [64, 64]
    assert set(report['results']['hemf']) == {'batch_2'}  # nothing exported
    row, = report['results']['hemf']['batch_2'].items()
    assert row[0] == 'eager_fp32' and len(row[1]['seconds']) == 2 and row[1]['img_s'] > 0

    spec = importlib.util.spec_from_file_location('bench_onnx', TOOLS / 'deployment' /
                                                  'bench_onnx.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    model = tool.build_ours(str(space / 'hemf.py'), {})
    step = tool.training_contestants(model, None)['eager_fp32']
    before = {name: value.clone() for name, value in model.state_dict().items()}
    loss = step(torch.randn(2, 3, 64, 64))
    assert model.training and torch.isfinite(loss)
    changed = [name for name, value in model.state_dict().items()
               if not torch.equal(value, before[name])]
    assert any(name.startswith('head.') for name in changed)
    assert any(name.startswith('backbone.') for name in changed)
