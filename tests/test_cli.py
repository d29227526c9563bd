"""How tools/train.py and tools/test.py turn arguments into a config (no training here)."""
import os
from pathlib import Path

import pytest

from hifuse_mm import cli
from hifuse_mm.utils import device
from helpers import REPO

CONFIG = str(REPO / 'configs' / 'hifuse' / 'hifuse-tiny_demo.py')


def make_train_cfg(*argv: str):
    return cli.train_config(cli.train_parser().parse_args([CONFIG, *argv]))


def make_test_cfg(*argv: str):
    return cli.test_config(cli.test_parser().parse_args([CONFIG, 'ckpt.pth', *argv]))


def test_train_defaults():
    cfg = make_train_cfg()
    assert cfg.work_dir == str(Path('work_dirs') / 'hifuse-tiny_demo')
    assert cfg.launcher == 'none' and not cfg.resume
    loader = cfg.train_dataloader
    assert loader.num_workers == 0 and loader.persistent_workers is False
    assert loader.collate_fn == dict(type='default_collate')
    assert loader.pin_memory is (not device.on_cpu_only_host())


def test_persistent_workers_follow_num_workers():
    cfg = make_train_cfg('--cfg-options', 'train_dataloader.num_workers=2')
    assert cfg.train_dataloader.persistent_workers is True
    assert cfg.val_dataloader.persistent_workers is False
    cfg = make_train_cfg('--no-persistent-workers', '--no-pin-memory',
                    '--cfg-options', 'train_dataloader.num_workers=2')
    assert cfg.train_dataloader.persistent_workers is False
    assert cfg.train_dataloader.pin_memory is False


def test_train_flags():
    cfg = make_train_cfg('--amp', '--no-validate', '--auto-scale-lr', '--work-dir', 'wd',
                    '--cfg-options', 'train_cfg.max_epochs=3')
    assert cfg.optim_wrapper.type == 'CPUAwareAmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.val_dataloader is None and cfg.val_cfg is None and cfg.val_evaluator is None
    assert cfg.auto_scale_lr.enable is True
    assert cfg.work_dir == 'wd'
    assert cfg.train_cfg.max_epochs == 3


def test_resume():
    cfg = make_train_cfg('--resume')
    assert cfg.resume is True and cfg.load_from is None
    cfg = make_train_cfg('--resume', 'some/epoch_2.pth')
    assert cfg.resume is True and cfg.load_from == 'some/epoch_2.pth'


def test_launcher_on_cpu(monkeypatch):
    monkeypatch.setattr(device, 'on_cpu_only_host', lambda: True)
    # setenv first so that monkeypatch records LOCAL_RANK and removes what the CLI sets.
    monkeypatch.setenv('LOCAL_RANK', '')
    monkeypatch.delenv('LOCAL_RANK')
    cfg = make_train_cfg('--launcher', 'pytorch', '--local-rank', '1')
    assert cfg.launcher == 'pytorch'
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert cfg.model_wrapper_cfg.device_ids is None
    assert os.environ['LOCAL_RANK'] == '1'


def test_test_flags(tmp_path):
    cfg = make_test_cfg('--amp', '--show-dir', 'vis', '--interval', '3')
    assert cfg.load_from == 'ckpt.pth'
    assert cfg.test_cfg.fp16 is True
    vis = cfg.default_hooks.visualization
    assert vis.enable and vis.out_dir == 'vis' and vis.interval == 3

    out = str(tmp_path / 'preds.pkl')
    cfg = make_test_cfg('--out', out)
    assert cfg.test_evaluator[-1] == dict(type='AtomicDumpResults', out_file_path=out)
    cfg = make_test_cfg('--out', str(tmp_path / 'm.json'), '--out-item', 'metrics')
    assert all(e.type != 'AtomicDumpResults' for e in cfg.test_evaluator)


def test_test_refuses_to_overwrite_out(tmp_path):
    out = tmp_path / 'metrics.json'
    out.write_text('{}')
    with pytest.raises(SystemExit, match='exists'):
        make_test_cfg('--out', str(out), '--out-item', 'metrics')


def test_tta():
    cfg = make_test_cfg('--tta')
    assert cfg.model.type == 'AverageClsScoreTTA'
    assert cfg.model.module.backbone.type == 'HiFuse'
    pipeline = cfg.test_dataloader.dataset.pipeline
    assert pipeline[-1].type == 'TestTimeAug'
    assert pipeline[-1].transforms[-1] == [dict(type='PackInputs')]
