"""Command-line front ends behind ``tools/train.py`` and ``tools/test.py``.

They keep MMPretrain 1.2's CLI (same arguments, same meaning) and add what this stack needs:
``import hifuse_mm`` (module registration and :mod:`hifuse_mm.engine`), the config-side
fixes of :mod:`hifuse_mm.engine.run_config` (``persistent_workers`` only with workers; gloo and CPU DDP for ``--launcher`` on
CPU-only hosts) and a CPU-capable ``--amp``. ``tools/demo.py`` and ``tools/kfold.py`` reuse the
same functions.

Run safety (SECURITY.md, :mod:`hifuse_mm.engine`): checkpoints load weights-only unless
``--trust-checkpoint`` (or a ``--resume`` of a checkpoint our training signed); every run gets
the hooks of :data:`hifuse_mm.engine.RUN_HOOKS` (exact resume, stop on a NaN/inf loss, class
count check, skipped-image report); ``--skip-bad-images`` leaves bad images out instead of
stopping; errors that say what to do are printed without a traceback (exit status 1).

The test tool also writes a report into the run's timestamped log folder
(``<work_dir>/<YYYYmmdd_HHMMSS>/``, so an earlier run's report is never overwritten):
``metrics.json``, ``predictions.csv``, ``confusion_matrix.png`` and ``roc.png``
(:mod:`hifuse_mm.evaluation.report`), with bootstrap confidence intervals for ``--bootstrap N``.

Python use::

    cfg = train_config(train_parser().parse_args(['configs/x.py', '--amp']))
    runner = run_train(cfg)
    metrics, report_dir = run_test_with_report(test_config(test_parser().parse_args(
        ['configs/x.py', 'best.pth'])))
"""
from __future__ import annotations

import argparse
import gc
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple

import mmengine
import torch
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.dist import get_rank
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .datasets import BadImageError, DatasetError
from .engine import (RUN_HOOKS, CheckpointMismatchError, ClassCountMismatchError,
                     NonFiniteLossError, UntrustedCheckpointError, trust_all_checkpoints)
from .evaluation import MedicalMetrics, write_test_report
from .engine import run_config
from .utils import device

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
#: Errors whose message names the file or key and what to do: shown without a traceback.
CLEAR_ERRORS = (UntrustedCheckpointError, CheckpointMismatchError, NonFiniteLossError,
                BadImageError, ClassCountMismatchError, DatasetError)


def _add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--work-dir', help='directory for logs and checkpoints '
                        '(default: ./work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. train_cfg.max_epochs=5 '
                        '(applied last)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision (bf16 autocast on CPU-only hosts)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the model (falls back to eager with a warning '
                        'when compiling fails; see docs/benchmarks.md)')
    parser.add_argument('--no-pin-memory', action='store_true',
                        help='do not pin dataloader memory')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow full unpickling of a checkpoint that does not load '
                        'weights-only; this can run code, use it only for files you trust '
                        '(SECURITY.md)')
    parser.add_argument('--skip-bad-images', action='store_true',
                        help='leave out missing or undecodable images (all listed at the end) '
                        'instead of stopping at the first one')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (older versions --local_rank).
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def train_parser() -> argparse.ArgumentParser:
    """Arguments of ``tools/train.py`` (MMPretrain's train.py CLI)."""
    parser = argparse.ArgumentParser(description='Train a classifier')
    parser.add_argument('config', help='config file')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or without a value from the latest '
                        'checkpoint in the work dir')
    parser.add_argument('--no-validate', action='store_true',
                        help='skip validation during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale lr by total batch size / auto_scale_lr.base_batch_size')
    parser.add_argument('--no-persistent-workers', action='store_true',
                        help='do not keep dataloader workers alive between epochs')
    _add_common_args(parser)
    return parser


def test_parser() -> argparse.ArgumentParser:
    """Arguments of ``tools/test.py`` (MMPretrain's test.py CLI)."""
    parser = argparse.ArgumentParser(description='Test (and evaluate) a classifier')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='write predictions (.pkl) or metrics '
                        '(.json/.yaml/.pkl) to this file; it must not exist yet')
    parser.add_argument('--out-item', choices=['metrics', 'pred'],
                        help="what --out holds (default 'pred')")
    parser.add_argument('--show-dir', help='save visualized predictions here '
                        '(relative to the run\'s log dir)')
    parser.add_argument('--show', action='store_true', help='show predictions in a window')
    parser.add_argument('--interval', type=int, default=1,
                        help='visualize every N-th sample')
    parser.add_argument('--wait-time', type=float, default=2,
                        help='seconds each shown image stays up')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation')
    parser.add_argument('--bootstrap', type=int, default=0, metavar='N',
                        help='add 95%% bootstrap confidence intervals of accuracy, macro F1 '
                        'and AUC from N resamples to metrics.json')
    parser.add_argument('--bootstrap-seed', type=int, default=0,
                        help='seed of the bootstrap resampling (default 0)')
    parser.add_argument('--no-report', action='store_true',
                        help='skip metrics.json, predictions.csv and the plots')
    _add_common_args(parser)
    return parser


def _load(args: argparse.Namespace) -> Config:
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = str(Path('work_dirs') / Path(args.config).stem)
    if args.launcher != 'none':
        os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return cfg


def _set_dataloader_defaults(cfg: Config, pin_memory: bool,
                             persistent_workers: Optional[bool]) -> None:
    """Fill MMPretrain tools' dataloader defaults; the config's own values win, flags override.

    ``persistent_workers=None`` leaves that key alone (test tool).
    """
    defaults = dict(pin_memory=not device.on_cpu_only_host(),
                    collate_fn=dict(type='default_collate'))
    if persistent_workers is not None:
        defaults['persistent_workers'] = True
    for key in run_config.DATALOADER_KEYS:
        loader = cfg.get(key)
        if loader is None:
            continue
        cfg[key] = ConfigDict({**defaults, **loader})
        if not pin_memory:
            cfg[key].pin_memory = False
        if persistent_workers is False:
            cfg[key].persistent_workers = False


def _finish(cfg: Config, args: argparse.Namespace) -> Config:
    if args.compile:
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [dict(type='CompileModelHook')]
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    add_run_hooks(cfg)
    if getattr(args, 'skip_bad_images', False):
        skip_bad_images(cfg)
    run_config.configure(cfg, args.launcher)
    return cfg


def reproducible_workers(cfg: Config) -> None:
    """With ``randomness.deterministic``: training dataloader workers that start afresh every
    epoch, seeded from (seed, epoch), so that ``--resume`` repeats a run exactly (see
    :mod:`hifuse_mm.engine.hooks.epoch_reseed_hook`). The config's own ``worker_init_fn``
    wins."""
    loader = cfg.get('train_dataloader')
    if not (cfg.get('randomness') or {}).get('deterministic') or not loader \
            or not loader.get('num_workers') or 'worker_init_fn' in loader:
        return
    loader['worker_init_fn'] = dict(type='epoch_worker_seed')
    loader['persistent_workers'] = False


def add_run_hooks(cfg: Config) -> None:
    """Add the hooks of :data:`hifuse_mm.engine.RUN_HOOKS` the config does not have yet
    (exact resume, NaN/inf loss stop, class-count check, skipped-image report)."""
    hooks = list(cfg.get('custom_hooks') or [])
    present = {str(hook.get('type')).split('.')[-1] for hook in hooks if isinstance(hook, dict)}
    cfg.custom_hooks = hooks + [dict(type=name) for name in RUN_HOOKS if name not in present]


def skip_bad_images(cfg: Config) -> None:
    """``--skip-bad-images``: set ``skip_bad_images=True`` on every dataloader's dataset."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import DATASETS

    from .datasets import MedicalImageDataset
    for key in run_config.DATALOADER_KEYS:
        dataset = (cfg.get(key) or {}).get('dataset')
        if dataset is None:
            continue
        with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmpretrain')):
            kind = DATASETS.get(dataset.get('type')) if isinstance(dataset.get('type'), str) \
                else dataset.get('type')
        if not (isinstance(kind, type) and issubclass(kind, MedicalImageDataset)):
            raise SystemExit(f'--skip-bad-images needs hifuse_mm datasets (MedicalImageDataset, '
                             f'ISIC2018, Kvasir, COVID19CT); {key}.dataset is '
                             f'{dataset.get("type")!r}')
        dataset['skip_bad_images'] = True


@contextmanager
def clear_errors() -> Iterator[None]:
    """Turn the errors that already say what to do into ``error: ...`` exits (status 1)."""
    try:
        yield
    except CLEAR_ERRORS as err:
        raise SystemExit(f'error: {err}') from None


def train_config(args: argparse.Namespace) -> Config:
    """Build the training config from parsed :func:`train_parser` arguments."""
    cfg = _load(args)
    if args.amp:
        run_config.amp_optim_wrapper_cfg(cfg.optim_wrapper)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg:
            raise SystemExit('--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=N)` '
                             'in the config')
        cfg.auto_scale_lr.enable = True
    _set_dataloader_defaults(cfg, pin_memory=not args.no_pin_memory,
                             persistent_workers=not args.no_persistent_workers)
    cfg = _finish(cfg, args)
    reproducible_workers(cfg)
    return cfg


def _add_flip_tta(cfg: Config) -> None:
    """Wrap the model for test-time augmentation (horizontal flip unless the config has TTA)."""
    cfg.setdefault('tta_model', dict(type='AverageClsScoreTTA'))
    if 'tta_pipeline' not in cfg:
        pipeline = list(cfg.test_dataloader.dataset.pipeline)
        flips = [dict(type='RandomFlip', prob=1.0), dict(type='RandomFlip', prob=0.0)]
        cfg.tta_pipeline = pipeline[:-1] + [
            dict(type='TestTimeAug', transforms=[flips, [pipeline[-1]]])]
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def _is_medical_metrics(metric_cfg: dict) -> bool:
    kind = metric_cfg.get('type')
    return kind in ('MedicalMetrics', 'mmpretrain.MedicalMetrics') or kind is MedicalMetrics


def _ensure_medical_metrics(cfg: Config) -> None:
    """Make ``test_evaluator`` a list that includes a ``MedicalMetrics`` (the report needs it)."""
    evaluators = cfg.get('test_evaluator')
    if evaluators is None:
        return
    evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
    if not any(_is_medical_metrics(e) for e in evaluators):
        evaluators.append(dict(type='MedicalMetrics'))
    cfg.test_evaluator = evaluators


def test_config(args: argparse.Namespace) -> Config:
    """Build the test config from parsed :func:`test_parser` arguments."""
    cfg = _load(args)
    cfg.load_from = args.checkpoint
    if args.amp:
        cfg.merge_from_dict({'test_cfg.fp16': True})
    if args.show or args.show_dir is not None:
        if 'visualization' not in cfg.get('default_hooks', {}):
            raise SystemExit('--show/--show-dir need a `visualization` entry in '
                             'default_hooks (see configs/_base_/default_runtime.py)')
        cfg.default_hooks.visualization.update(
            enable=True, show=args.show, wait_time=args.wait_time,
            out_dir=args.show_dir, interval=args.interval)
    if args.tta:
        _add_flip_tta(cfg)
    if args.bootstrap < 0:
        raise SystemExit(f'--bootstrap must be >= 0, got {args.bootstrap}')
    _ensure_medical_metrics(cfg)
    if args.out is not None:
        if Path(args.out).exists():
            raise SystemExit(f'--out {args.out} exists; remove it or pick another file')
        if args.out_item in (None, 'pred'):
            evaluators = cfg.test_evaluator
            evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) \
                else [evaluators]
            cfg.test_evaluator = evaluators + [dict(type='DumpResults', out_file_path=args.out)]
    _set_dataloader_defaults(cfg, pin_memory=not args.no_pin_memory, persistent_workers=None)
    cfg = _finish(cfg, args)
    # Read by run_test_with_report (kept out of the runner's own arguments).
    cfg.hifuse_report = dict(enable=not args.no_report, bootstrap=args.bootstrap,
                             bootstrap_seed=args.bootstrap_seed, config=args.config,
                             checkpoint=args.checkpoint)
    return cfg


def build_runner(cfg: Config) -> Runner:
    """Build the runner the way MMPretrain's tools do (``runner_type`` honoured)."""
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def run_train(cfg: Config) -> Runner:
    """Train with ``cfg``; returns the runner (``runner.message_hub`` has ``best_ckpt``)."""
    runner = build_runner(cfg)
    runner.train()
    return runner


def _medical_metric(runner: Runner) -> Optional[MedicalMetrics]:
    for metric in runner.test_loop.evaluator.metrics:
        if isinstance(metric, MedicalMetrics):
            return metric
    return None


def run_test_with_report(cfg: Config, out: Optional[str] = None,
                         out_item: Optional[str] = None) -> Tuple[dict, Optional[Path]]:
    """Test with ``cfg`` (from :func:`test_config`), dump metrics to ``out`` if asked, and write
    the report (rank 0) into the run's timestamped log folder.

    Returns:
        ``(metrics, report folder)``; the folder is None when no report was written (other
        ranks, ``--no-report``, or a config built without :func:`test_config`).
    """
    report = cfg.pop('hifuse_report', None)
    runner = build_runner(cfg)
    metrics = runner.test()
    if get_rank() != 0:
        return metrics, None
    if out is not None and out_item == 'metrics':
        mmengine.dump(metrics, out)
    metric = _medical_metric(runner)
    if not report or not report['enable'] or metric is None or metric.last is None:
        return metrics, None
    report_dir = Path(runner.log_dir)
    try:
        paths = write_test_report(
            metric.last, report_dir, metrics, bootstrap=report['bootstrap'],
            bootstrap_seed=report['bootstrap_seed'], pos_label=metric.pos_label,
            extra=dict(config=report['config'], checkpoint=report['checkpoint']),
            data_root=getattr(runner.test_dataloader.dataset, 'data_root', None))
    except FileExistsError as err:
        raise SystemExit(f'error: {err}') from None
    runner.logger.info('Test report: ' + ', '.join(str(p) for p in paths.values()))
    return metrics, report_dir


def run_test(cfg: Config, out: Optional[str] = None, out_item: Optional[str] = None) -> dict:
    """Test with ``cfg`` (from :func:`test_config`); dump metrics to ``out`` if asked.

    Also writes the report, see :func:`run_test_with_report`.
    """
    return run_test_with_report(cfg, out, out_item)[0]


def _close_process_group() -> None:
    """Tear down torch.distributed after a successful run.

    A gloo process group still alive at interpreter exit (directly, or held by the DDP wrapper of a
    runner waiting for garbage collection) can abort the process: "terminate called without an
    active exception", SIGABRT (https://github.com/pytorch/pytorch/issues/190489). So free the
    finished runner's objects first, then destroy the group explicitly.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        gc.collect()
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def train_main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of ``tools/train.py``."""
    args = train_parser().parse_args(argv)
    with clear_errors(), trust_all_checkpoints(args.trust_checkpoint):
        run_train(train_config(args))
    _close_process_group()


def test_main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of ``tools/test.py``."""
    args = test_parser().parse_args(argv)
    with clear_errors(), trust_all_checkpoints(args.trust_checkpoint):
        run_test(test_config(args), out=args.out, out_item=args.out_item)
    _close_process_group()
