"""Short runs of the papers' schedule: ``--cfg-options train_cfg.max_epochs=N`` works for every
schedule of configs/_base_/schedules and any N >= 1 (issue 14, item 15; it failed with "end
should be larger than begin" for N = 1)."""
import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import PARAM_SCHEDULERS

from hifuse_mm import cli
from hifuse_mm.engine.training_config import configure_training
from helpers import REPO
from tiny_config import NARROW_HIFUSE, TINY_DATA, make_data, write_config
from tool_runner import ok, run_tool

SCHEDULES = sorted((REPO / 'configs' / '_base_' / 'schedules').glob('*.py'))
PAPER_CONFIGS = [REPO / 'configs' / 'hifuse' / 'hifuse-base_isic2018.py',
                 REPO / 'configs' / 'hemf' / 'hemf_kvasir.py']
EPOCH_LENGTH = 3


def run_schedule(cfg: Config):
    """Build ``cfg.param_scheduler`` as mmengine's runner does (``end`` defaults to
    ``max_epochs``) on a dummy AdamW and step it through the run; returns the lr before every
    iteration and the base lr."""
    max_epochs = cfg.train_cfg.max_epochs
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=cfg.optim_wrapper.optimizer.lr)
    wrapper = OptimWrapper(optimizer)
    schedulers = []
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        for scheduler in cfg.param_scheduler:
            scheduler = dict(scheduler)
            scheduler.setdefault('end', max_epochs)
            schedulers.append(PARAM_SCHEDULERS.build(
                scheduler, default_args=dict(optimizer=wrapper, epoch_length=EPOCH_LENGTH)))
    lrs = []
    for _ in range(max_epochs):
        for _ in range(EPOCH_LENGTH):
            lrs.append(optimizer.param_groups[0]['lr'])
            wrapper.step()  # no gradient: changes nothing, keeps the step order torch expects
            for scheduler in schedulers:
                if not scheduler.by_epoch:
                    scheduler.step()
        for scheduler in schedulers:
            if scheduler.by_epoch:
                scheduler.step()
    return lrs, cfg.optim_wrapper.optimizer.lr


def check_papers_shape(lrs, base_lr, max_epochs):
    assert all(math.isfinite(lr) and lr > 0 for lr in lrs)
    # Linear warm-up from 1e-3 x lr over the first epoch.
    assert lrs[0] == pytest.approx(base_lr * 1e-3)
    assert lrs[:EPOCH_LENGTH] == sorted(lrs[:EPOCH_LENGTH])
    if max_epochs >= 2:  # then cosine from lr down towards eta_min = 1e-6
        assert lrs[EPOCH_LENGTH] == pytest.approx(base_lr)
        assert lrs[EPOCH_LENGTH:] == sorted(lrs[EPOCH_LENGTH:], reverse=True)
        assert lrs[-1] < base_lr


@pytest.mark.parametrize('schedule', SCHEDULES, ids=lambda p: p.stem)
@pytest.mark.parametrize('max_epochs', [1, 2, 3, None])
def test_every_schedule_builds_for_any_length(schedule, max_epochs):
    cfg = Config.fromfile(str(schedule))
    options = None if max_epochs is None else {'train_cfg.max_epochs': max_epochs}
    cfg = configure_training(cfg, config_file=str(schedule), cfg_options=options)
    max_epochs = cfg.train_cfg.max_epochs
    lrs, base_lr = run_schedule(cfg)
    assert len(lrs) == max_epochs * EPOCH_LENGTH
    check_papers_shape(lrs, base_lr, max_epochs)
    # Only a run of one epoch loses the cosine stage; full-length runs are unchanged.
    assert len(cfg.param_scheduler) == (1 if max_epochs == 1 else 2)


@pytest.mark.parametrize('config', PAPER_CONFIGS, ids=lambda p: p.stem)
def test_paper_configs_smoke_test_of_one_epoch(config):
    full = cli.train_config(cli.train_parser().parse_args([str(config)]))
    short = cli.train_config(cli.train_parser().parse_args(
        [str(config), '--cfg-options', 'train_cfg.max_epochs=1']))
    assert short.param_scheduler == full.param_scheduler[:1]
    check_papers_shape(*run_schedule(short), 1)
    check_papers_shape(*run_schedule(full), full.train_cfg.max_epochs)


def test_fit_schedule_leaves_other_schedules_alone():
    from hifuse_mm.engine.training_config import fit_schedule_to_run
    cfg = Config(dict(train_cfg=dict(by_epoch=True, max_epochs=1), param_scheduler=[
        dict(type='LinearLR', begin=0, end=5),               # explicit end: mmengine runs it
        dict(type='StepLR', step_size=1, begin=3, end=10),   # explicit end
        dict(type='CosineAnnealingLR', by_epoch=False, begin=100),  # iterations: left alone
        dict(type='CosineAnnealingLR', begin=1),             # default end = 1: left out
    ]))
    notes = fit_schedule_to_run(cfg)
    assert [s['type'] for s in cfg.param_scheduler] == ['LinearLR', 'StepLR',
                                                       'CosineAnnealingLR']
    assert len(notes) == 1 and 'param_scheduler[3] (CosineAnnealingLR)' in notes[0]
    cfg = Config(dict(train_cfg=dict(type='IterBasedTrainLoop', max_iters=50),
                      param_scheduler=dict(type='CosineAnnealingLR', by_epoch=False, begin=50)))
    assert fit_schedule_to_run(cfg) and cfg.param_scheduler is None


def test_one_epoch_run_through_train_tool(tmp_path):
    """The smoke test itself: tools/train.py with the papers' warm-up + cosine schedule."""
    body = NARROW_HIFUSE + TINY_DATA + 'default_hooks = dict(logger=dict(interval=1))\n'
    write_config(tmp_path / 'paper_schedule.py', make_data(tmp_path), body=body)
    proc = ok(run_tool(tmp_path, 'train.py', 'paper_schedule.py', '--work-dir', 'run',
                       '--cfg-options', 'train_cfg.max_epochs=1'))
    output = proc.stdout + proc.stderr
    assert 'param_scheduler[1] (CosineAnnealingLR) begins at epoch 1' in output
    assert 'Epoch(train) [1]' in output
    assert (Path(tmp_path) / 'run' / 'epoch_1.pth').is_file()
