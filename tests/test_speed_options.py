"""The tools' speed options: infer.py / Classifier ``precision`` and ``compile``, and
``--compile`` in train.py / test.py (CompileModelHook), including the fall-back to eager."""
import csv
import warnings

import numpy as np
import pytest
import torch

from hifuse_mm import cli
from hifuse_mm.apis import Classifier
from hifuse_mm.datasets import DEMO_CLASSES, make_demo_dataset
from hifuse_mm.engine.hooks import CompileModelHook
from hifuse_mm.engine.runs import run_train
from test_apis import write_family_config, write_random_checkpoint
from helpers import REPO
from tool_runner import call_tool, ok

CONFIG = str(REPO / 'configs' / 'hifuse' / 'hifuse-tiny_demo.py')


@pytest.fixture(scope='module')
def space(tmp_path_factory):
    root = tmp_path_factory.mktemp('speed_options')
    make_demo_dataset(root / 'data', num_per_class=(1, 2, 2), image_size=64, seed=3)
    config = write_family_config(root, 'hifuse', scale=(64, 64))
    return root, config, write_random_checkpoint(root, config, seed=1)


def test_classifier_bf16_is_close_to_fp32(space):
    root, config, checkpoint = space
    paths = sorted((root / 'data' / 'test').rglob('*.png'))
    fp32 = Classifier(config, checkpoint, device='cpu')
    bf16 = Classifier(config, checkpoint, device='cpu', precision='bf16')
    batch = fp32.preprocessor.batch([fp32.prepare(p) for p in paths])
    ref, low = fp32.logits(batch), bf16.logits(batch)
    assert ref.dtype == low.dtype == torch.float32  # logits come back in fp32
    err = (ref - low).abs().max().item()
    # bf16 keeps 8 significant bits; a random-init model's logits are O(1).
    assert 0 < err <= 3e-2 * max(1.0, ref.abs().max().item()), err
    probs = [p.probabilities for p in bf16.predict(paths)]
    np.testing.assert_allclose(np.sum(probs, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match='precision must be one of'):
        Classifier(config, checkpoint, device='cpu', precision='int8')


def test_classifier_compile_falls_back_to_eager(space, monkeypatch):
    root, config, checkpoint = space
    paths = sorted((root / 'data' / 'test').rglob('*.png'))
    reference = Classifier(config, checkpoint, device='cpu').predict(paths)

    def broken_compile(fn, **kwargs):
        def compiled(*args, **kw):
            raise RuntimeError('no C++ compiler (simulated)')
        return compiled

    monkeypatch.setattr(torch, 'compile', broken_compile)
    clf = Classifier(config, checkpoint, device='cpu', compile=True)
    with pytest.warns(RuntimeWarning, match='simulated'):
        predictions = clf.predict(paths)
    for ours, ref in zip(predictions, reference):
        np.testing.assert_allclose(ours.probabilities, ref.probabilities, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # warned once, then eager without a word
        clf.predict(paths[:1])


def test_infer_tool_precision(space):
    root, config, checkpoint = space
    folder = root / 'data' / 'test'
    rows = {}
    for precision in ('fp32', 'bf16'):
        out = root / f'pred_{precision}.csv'
        proc = ok(call_tool(root, 'infer.py', config, checkpoint, folder, '--out', out,
                            '--device', 'cpu', '--precision', precision))
        assert f'without TTA, {precision})' in proc.stdout
        with open(out, newline='') as stream:
            rows[precision] = {r['path']: r for r in csv.DictReader(stream)}
    assert rows['fp32'].keys() == rows['bf16'].keys() and len(rows['fp32']) == 8
    for path, row in rows['fp32'].items():
        for name in DEMO_CLASSES:
            assert float(rows['bf16'][path][f'prob_{name}']) == pytest.approx(
                float(row[f'prob_{name}']), abs=2e-2)


def test_compile_flag_adds_the_hook():
    cfg = cli.train_config(cli.train_parser().parse_args([CONFIG, '--compile']))
    assert cfg.custom_hooks[-1] == dict(type='CompileModelHook')
    cfg = cli.test_config(cli.test_parser().parse_args([CONFIG, 'ckpt.pth', '--compile']))
    assert cfg.custom_hooks[-1] == dict(type='CompileModelHook')
    cfg = cli.train_config(cli.train_parser().parse_args([CONFIG]))
    assert not any(h.get('type') == 'CompileModelHook' for h in cfg.get('custom_hooks', []))


def test_train_with_compile_that_fails_still_trains(space, monkeypatch, tmp_path):
    """--compile where torch.compile cannot run: a warning, then the run trains eagerly."""
    root, config, _ = space
    monkeypatch.setattr(torch, 'compile', lambda fn, **kw: (_ for _ in ()).throw(
        RuntimeError('inductor unavailable (simulated)')))
    args = cli.train_parser().parse_args([
        str(config), '--compile', '--no-validate', '--work-dir', str(tmp_path / 'run'), '--cfg-options',
        f'train_dataloader.dataset.data_root={root / "data"}',
        'train_cfg.max_epochs=2', 'train_dataloader.batch_size=2'])
    cfg = cli.train_config(args)
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    with pytest.warns(RuntimeWarning, match='inductor unavailable'):
        runner = run_train(cfg)
    # 4 training images, batch 2, 2 epochs.
    assert runner.iter == 4 and (tmp_path / 'run' / 'epoch_2.pth').exists()
    assert sum(isinstance(h, CompileModelHook) for h in runner.hooks) == 1
