#!/usr/bin/env python
"""Demo: train HiFuse-Tiny (paper mode) and test its best checkpoint, in a few CPU minutes.

    python tools/demo.py                       # synthetic dataset in <work-dir>/data
    python tools/demo.py --data data/covid19ct # a prepared dataset (meta/{train,val,test}.txt,
                                               # meta/classes.txt), still at the demo's 64px

Training and testing go through the same functions as tools/train.py and tools/test.py
(hifuse_mm.cli, hifuse_mm.engine.runs); the best checkpoint is picked on the validation split and
evaluated on test.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Sequence

from hifuse_mm import engine
from hifuse_mm.cli import test_config, test_parser, test_report, train_config, train_parser
from hifuse_mm.cli.test import write_html
from hifuse_mm.datasets import make_demo_dataset, read_classes
from hifuse_mm.datasets.demo import MARKER
from hifuse_mm.engine.runs import ReportExistsError, run_test_with_report, run_train
from mmengine.config import Config

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / 'configs' / 'hifuse' / 'hifuse-tiny_demo.py'


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', help='prepared dataset folder (default: generate the '
                        'synthetic demo dataset in <work-dir>/data)')
    parser.add_argument('--work-dir', help='output folder; each run writes a new '
                        '<timestamp>/ folder in it (default: work_dirs/demo, or '
                        'work_dirs/demo_<data folder name> with --data)')
    parser.add_argument('--config', default=str(CONFIG), help='demo config')
    return parser.parse_args()


def use_dataset(cfg: Config, data_root: Path, classes: Sequence[str]) -> None:
    """Point every split of ``cfg`` at ``data_root`` with ``classes``."""
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.update(data_root=str(data_root), classes=list(classes))
    cfg.model.head.num_classes = len(classes)
    cfg.data_preprocessor.num_classes = len(classes)


def main() -> None:
    engine.install()
    args = parse_args()
    work_dir = Path(args.work_dir or ('work_dirs/demo' + (f'_{Path(args.data).name}'
                                                          if args.data else '')))
    run_dir = work_dir / time.strftime('%Y%m%d_%H%M%S')
    if args.data:
        data_root = Path(args.data)
    else:
        data_root = work_dir / 'data'
        if (data_root / MARKER).is_file():
            print(f'Reusing the synthetic dataset in {data_root}')
        else:
            print(f'Generating the synthetic dataset in {data_root}')
            make_demo_dataset(data_root)
    classes = read_classes(data_root)
    print(f'Dataset {data_root}: {len(classes)} classes {list(classes)}')
    if args.data:
        print('Note: the demo trains at 64x64 px for a few epochs; use configs/hifuse/*.py '
              '(224 px, 100 epochs) for real results.')

    start = time.time()
    train_cfg = train_config(train_parser().parse_args(
        [args.config, '--work-dir', str(run_dir / 'train')]))
    use_dataset(train_cfg, data_root, classes)
    runner = run_train(train_cfg)
    best = runner.message_hub.get_info('best_ckpt')
    train_log = runner.logger.log_file
    minutes = (time.time() - start) / 60

    metrics_file = run_dir / 'test_metrics.json'
    test_args = test_parser().parse_args(
        [args.config, best, '--work-dir', str(run_dir / 'test'), '--out', str(metrics_file),
         '--out-item', 'metrics'])
    test_cfg = test_config(test_args)
    use_dataset(test_cfg, data_root, classes)
    try:
        metrics, report_dir = run_test_with_report(test_cfg, test_report(test_args),
                                                   out=test_args.out, out_item=test_args.out_item)
    except ReportExistsError as err:
        raise SystemExit(f'error: {err}') from None
    write_html(report_dir)  # report.html: the one-file report (docs/report.md)

    chance = 100.0 / len(classes)
    print('\n' + '=' * 72)
    print(f'HiFuse-Tiny demo finished (training took {minutes:.1f} min)')
    print(f'  best checkpoint (chosen on val): {best}')
    print(f'  training log:                    {train_log}')
    print(f'  test metrics:                    {metrics_file.resolve()}')
    if report_dir is not None:
        print('  test report (report.html, metrics.json, predictions.csv, figures):')
        print(f'                                   {report_dir.resolve()}')
    for key, value in metrics.items():
        if isinstance(value, float):
            print(f'    {key}: {value:.4f}')
    print(f'  test accuracy {100 * metrics["medical/accuracy"]:.1f}% '
          f'(1/{len(classes)} chance level: {chance:.1f}%), '
          f'macro F1 {metrics["medical/f1_macro"]:.3f}')
    print('=' * 72)


if __name__ == '__main__':
    main()
