"""``Classifier(..., temperature=T)`` and ``tools/infer.py --temperature T``: probabilities are
softmax(logits / T) (per view with TTA), the default 1 changes nothing, the class never changes.

A random-init narrow HiFuse (no training) on 64 px inputs; infer.py runs in-process.
"""
import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from hifuse_mm.apis import Classifier
from hifuse_mm.datasets import DEMO_CLASSES, make_demo_dataset
from tiny_config import write_narrow_checkpoint
from tool_runner import call_tool, ok



@pytest.fixture(scope='module')
def space(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('temperature')
    # larger head weights: logits far from uniform, so the temperature visibly matters
    write_narrow_checkpoint(root, 64, classes=DEMO_CLASSES, head_scale=50)
    data = make_demo_dataset(root / 'data', num_per_class=1, image_size=48, seed=0)
    images = root / 'images'
    images.mkdir()
    for index, path in enumerate(sorted((data / 'train').rglob('*.png'))):
        (images / f'img{index}.png').write_bytes(path.read_bytes())
    return root


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_classifier_temperature(space):
    images = [cv2.imread(str(p)) for p in sorted((space / 'images').glob('*.png'))]
    plain = Classifier(space / 'model.py', space / 'model.pth', device='cpu')
    hot = Classifier(space / 'model.py', space / 'model.pth', device='cpu', temperature=2.5)
    batch = plain.preprocessor.batch([plain.prepare(image) for image in images])
    logits = plain.logits(batch).numpy().astype(np.float64)
    np.testing.assert_array_equal(hot.logits(batch).numpy(), plain.logits(batch).numpy())

    default = plain.predict(images)
    scaled = hot.predict(images)
    np.testing.assert_allclose([p.probabilities for p in default], _softmax(logits), atol=1e-6)
    np.testing.assert_allclose([p.probabilities for p in scaled], _softmax(logits / 2.5),
                               atol=1e-6)
    assert [p.label for p in scaled] == [p.label for p in default]
    assert not np.allclose([p.score for p in scaled], [p.score for p in default], atol=1e-3)
    # temperature=1 given explicitly is the default, bit for bit
    one = Classifier(space / 'model.py', space / 'model.pth', device='cpu', temperature=1)
    np.testing.assert_array_equal([p.probabilities for p in one.predict(images)],
                                  [p.probabilities for p in default])

    # with TTA each view is scaled, then the two are averaged
    tta = Classifier(space / 'model.py', space / 'model.pth', device='cpu', tta=True,
                     temperature=2.5)
    mirrored = plain.logits(batch.flip(-1)).numpy().astype(np.float64)
    expected = (_softmax(logits / 2.5) + _softmax(mirrored / 2.5)) / 2
    np.testing.assert_allclose([p.probabilities for p in tta.predict(images)], expected,
                               atol=1e-6)

    for bad in (0, -1.0, float('nan'), float('inf')):
        with pytest.raises(ValueError, match='temperature'):
            Classifier(space / 'model.py', space / 'model.pth', device='cpu', temperature=bad)


def _probabilities(path: Path) -> np.ndarray:
    with open(path, newline='', encoding='utf-8') as stream:
        rows = list(csv.DictReader(stream))
    return np.array([[float(row[f'prob_{name}']) for name in DEMO_CLASSES] for row in rows])


def test_infer_temperature(space):
    ok(call_tool(space, 'infer.py', 'model.py', 'model.pth', 'images', '--out', 'plain.csv',
                 '--device', 'cpu'))
    ok(call_tool(space, 'infer.py', 'model.py', 'model.pth', 'images', '--out', 'one.csv',
                 '--device', 'cpu', '--temperature', '1'))
    ok(call_tool(space, 'infer.py', 'model.py', 'model.pth', 'images', '--out', 'hot.csv',
                 '--device', 'cpu', '--temperature', '2.5'))
    assert (space / 'plain.csv').read_bytes() == (space / 'one.csv').read_bytes()
    paths = sorted((space / 'images').glob('*.png'))
    expected = Classifier(space / 'model.py', space / 'model.pth', device='cpu',
                          temperature=2.5).predict(paths)
    np.testing.assert_allclose(_probabilities(space / 'hot.csv'),
                               [p.probabilities for p in expected], atol=2e-6)
    assert (_probabilities(space / 'hot.csv').argmax(1) ==
            _probabilities(space / 'plain.csv').argmax(1)).all()
    for bad in ('0', '-2', 'nan'):
        with pytest.raises(SystemExit) as exc:
            call_tool(space, 'infer.py', 'model.py', 'model.pth', 'images', '--out', 'bad.csv',
                      '--temperature', bad)
        assert exc.value.code == 2
    assert not (space / 'bad.csv').exists()
