"""tools/kfold.py and the tools/test.py report, end to end on a tiny Kvasir-like replica.

prepare_kvasir.py writes the two folds, kfold.py trains and tests each with a shrunken HiFuse
(the model of tests/test_tools_e2e.py) and tabulates (both as subprocesses); tools/test.py's main
is then run in this process on a fold's best checkpoint to check its report files. Subprocesses
run with OMP_NUM_THREADS=1 so that a busy 2-core machine does not slow them down by
oversubscription.
"""
import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from hifuse_mm.analysis.kfold_summary import markdown_table, summarise
from hifuse_mm import cli
from hifuse_mm.cli.kfold import apply_fold, fold_ann_file, kfold_main
from replicas import make_kvasir
from helpers import REPO, inside
from tiny_config import NARROW_HIFUSE

TOOLS = REPO / 'tools'

TINY_KVASIR = """\
_base_ = [{base!r}]

data_root = {data_root!r}
""" + NARROW_HIFUSE + """train_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.6, 1.0)),
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='CheckedLoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(batch_size=8, num_workers=0,
                        dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(batch_size=8, num_workers=0,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = dict(batch_size=8, num_workers=0,
                       dataset=dict(data_root=data_root, pipeline=test_pipeline))
train_cfg = dict(max_epochs=2)
default_hooks = dict(logger=dict(interval=1))
"""


def run_tool(cwd: Path, *argv: str) -> str:
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=os.pathsep.join(
        filter(None, [str(REPO), os.environ.get('PYTHONPATH')])))
    proc = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, f'{argv} failed:\n{proc.stdout[-6000:]}'
    return proc.stdout


def test_fold_ann_file():
    assert fold_ann_file('meta/train.txt', 'fold2') == 'meta/fold2/train.txt'
    assert fold_ann_file('meta/fold1/val.txt', 'fold2') == 'meta/fold2/val.txt'
    assert fold_ann_file('lists/test.txt', 'foldA') == 'lists/foldA/test.txt'


def test_apply_fold_needs_the_fold_lists(tmp_path):
    cfg = Config.fromfile(str(REPO / 'configs' / 'hifuse' / 'hifuse-tiny_kvasir.py'))
    cfg.merge_from_dict({f'{k}.dataset.data_root': str(tmp_path)
                         for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')})
    with pytest.raises(SystemExit, match='fold3 is not a fold'):
        apply_fold(cfg, 'fold3')
    for split in ('train', 'val', 'test'):
        (tmp_path / 'meta' / 'fold3').mkdir(parents=True, exist_ok=True)
        (tmp_path / 'meta' / 'fold3' / f'{split}.txt').write_text('')
    apply_fold(cfg, 'fold3')
    assert cfg.test_dataloader.dataset.ann_file == 'meta/fold3/test.txt'


def test_summary_table():
    results = {'fold1': {'medical/accuracy': 0.8, 'medical/auc': math.nan},
               'fold2': {'medical/accuracy': 0.9, 'medical/auc': 0.7}}
    summary = summarise(results)
    assert summary['mean']['medical/accuracy'] == pytest.approx(0.85)
    assert summary['std']['medical/accuracy'] == pytest.approx(math.sqrt(0.005))  # ddof 1
    assert summary['mean']['medical/auc'] == 0.7 and math.isnan(summary['std']['medical/auc'])
    table = markdown_table(results, summary, 'x')
    assert '| medical/accuracy | 0.8000 | 0.9000 | 0.8500 | 0.0707 |' in table
    assert '| medical/auc | n/a | 0.7000 | 0.7000 | n/a |' in table


@pytest.fixture(scope='module')
def kvasir_workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('kfold')
    make_kvasir(root / 'kvasir-dataset-v2', per_class=6, size=32)
    out = run_tool(root, str(TOOLS / 'dataset_converters' / 'prepare_kvasir.py'),
                   'kvasir-dataset-v2', 'data', '--val-fraction', '0.34')
    assert 'fold2/test' in out
    base = str(REPO / 'configs' / 'hifuse' / 'hifuse-tiny_kvasir.py')
    (root / 'tiny_kvasir.py').write_text(TINY_KVASIR.format(base=base,
                                                            data_root=str(root / 'data')))
    return root


def test_kfold_end_to_end(kvasir_workspace):
    root = kvasir_workspace
    out = run_tool(root, str(TOOLS / 'kfold.py'), 'tiny_kvasir.py', '--folds', 'fold1', 'fold2',
                   '--work-dir', 'cv', '--cfg-options', 'train_cfg.val_interval=2')
    assert 'Epoch(val) [2]' in out and 'Epoch(val) [1]' not in out  # --cfg-options applied
    summary = json.loads((root / 'cv' / 'kfold.json').read_text())
    keys = ['medical/accuracy', 'medical/balanced_accuracy', 'medical/precision_macro',
            'medical/recall_macro', 'medical/f1_macro', 'medical/mcc', 'medical/kappa',
            'medical/auc', 'medical/ece', 'medical/classwise_ece', 'medical/brier',
            'medical/nll']
    assert summary['folds'] == ['fold1', 'fold2']
    for fold in ('fold1', 'fold2'):
        assert list(summary['metrics'][fold]) == keys
        report = Path(summary['runs'][fold]['report_dir'])
        assert report.parent == root / 'cv' / fold / 'test'
        fold_metrics = json.loads((report / 'metrics.json').read_text())
        assert fold_metrics['metrics'] == pytest.approx(summary['metrics'][fold])
        # Each fold was tested on its own test half: 8 classes x 3 images.
        assert fold_metrics['num_samples'] == 24
        with open(report / 'predictions.csv') as stream:
            images = {row['image'] for row in csv.DictReader(stream)}
        listed = {line.rsplit(' ', 1)[0] for line in
                  (root / 'data' / 'meta' / fold / 'test.txt').read_text().splitlines()}
        assert images == listed
        assert Path(summary['runs'][fold]['checkpoint']).parent == root / 'cv' / fold
    for key in keys:
        values = [summary['metrics'][f][key] for f in ('fold1', 'fold2')]
        if None not in values:
            assert summary['mean'][key] == pytest.approx(sum(values) / 2)
            assert summary['std'][key] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2))
    table = (root / 'cv' / 'kfold.md').read_text()
    assert '| metric | fold1 | fold2 | mean | std |' in table
    assert all(f'| {key} |' in table for key in keys)

    # A second run never overwrites the summary (kfold.py's main in this process: it stops
    # before training anything).
    before = {name: (root / 'cv' / name).read_bytes() for name in ('kfold.json', 'kfold.md')}
    with inside(root), pytest.raises(SystemExit, match=r'exist\(s\) from an earlier run'):
        kfold_main(['tiny_kvasir.py', '--work-dir', 'cv'])
    assert {name: (root / 'cv' / name).read_bytes() for name in before} == before

    # tools/test.py (its main, in this process) on fold 2's best checkpoint, under --amp (bf16
    # scores on CPU), with bootstrap intervals; a second test run writes a new timestamped
    # folder.
    best = summary['runs']['fold2']['checkpoint']
    argv = ['tiny_kvasir.py', best, '--work-dir', 'tested', '--amp',
            '--bootstrap', '30', '--bootstrap-seed', '7',
            '--cfg-options', 'test_dataloader.dataset.ann_file=meta/fold2/test.txt']
    with inside(root):
        cli.test_main(argv)
    first = sorted((root / 'tested').glob('*/metrics.json'))
    assert len(first) == 1
    folder = first[0].parent
    expected = {'metrics.json', 'predictions.csv', 'confusion_matrix.png', 'roc.png'}
    assert {p.name for p in folder.iterdir()} >= expected
    content = json.loads(first[0].read_text())
    assert content['bootstrap']['resamples'] == 30 and content['bootstrap']['seed'] == 7
    assert set(content['bootstrap']) >= {'accuracy', 'f1_macro', 'auc'}
    assert content['classes'][0] == 'dyed-lifted-polyps'
    assert len(content['per_class']) == 8 and content['num_samples'] == 24
    before = first[0].read_bytes()
    with inside(root):
        cli.test_main(argv)
    assert len(list((root / 'tested').glob('*/metrics.json'))) == 2
    assert first[0].read_bytes() == before
