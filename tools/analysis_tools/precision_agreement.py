#!/usr/bin/env python
"""Do bf16 (and the fast paths) change a trained model's predictions?

    python tools/analysis_tools/precision_agreement.py CONFIG CHECKPOINT
        [--split test] [--settings fp32:plain fp32:fast bf16:fast]
        [--batch-size N] [--device cpu] [--json OUT] [--cfg-options ...]

Runs the checkpoint over a split's dataloader (the config's test pipeline)
once per setting and prints, for each, the share of images whose top-1
class equals the reference's (the first setting, default fp32 with the
plain path), the largest logit difference and the accuracy. Example, the
demo model (`make demo` prints its run folder):

    python tools/analysis_tools/precision_agreement.py \\
        work_dirs/demo/<timestamp>/hifuse-tiny_demo.py \\
        work_dirs/demo/<timestamp>/best_*.pth
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hifuse_mm.cli.arguments import CfgOptionsAction  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--split', choices=('test', 'val', 'train'),
                        default='test')
    parser.add_argument('--settings', nargs='+',
                        default=['fp32:plain', 'fp32:fast', 'bf16:fast'],
                        help='precision:plain|fast pairs; the first is the '
                        'reference')
    parser.add_argument('--batch-size', type=int)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int)
    parser.add_argument('--json', help='write the results to this file')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from hifuse_mm.apis import ModelLoadError, load_model
    from hifuse_mm.analysis.agreement import prediction_agreement

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = []
    for item in args.settings:
        precision, _, path = item.partition(':')
        if path not in ('plain', 'fast'):
            raise SystemExit(f'--settings: {item!r} is not precision:plain '
                             'or precision:fast')
        settings.append((precision, path == 'fast'))
    try:
        # As tools/test.py builds it: the config's data_preprocessor
        # (normalisation) belongs to the model; weights-only loading.
        loaded = load_model(args.config, args.checkpoint, args.device,
                            args.cfg_options)
    except ModelLoadError as err:
        raise SystemExit(f'error: {err}')
    model, cfg = loaded.model, loaded.cfg
    loader_cfg = cfg[f'{args.split}_dataloader']
    if args.batch_size:
        loader_cfg.batch_size = args.batch_size
    loader_cfg.num_workers = 0
    loader_cfg.persistent_workers = False
    with DefaultScope.overwrite_default_scope(
            cfg.get('default_scope', 'mmpretrain')):
        dataloader = Runner.build_dataloader(loader_cfg)
    results = prediction_agreement(model, dataloader, settings, args.device)
    reference = next(iter(results))
    print(f'{args.checkpoint} on the {args.split} split; reference: '
          f'{reference}')
    print('| setting | images | top-1 agreement | disagreements | '
          'max |logit diff| | accuracy |')
    print('|---|---|---|---|---|---|')
    for name, r in results.items():
        acc = f"{100 * r['accuracy']:.2f}%" if 'accuracy' in r else '-'
        print(f"| {name} | {r['images']} | {100 * r['agreement']:.2f}% | "
              f"{r['disagreements']} | {r['max_abs_logit_diff']:.4f} | "
              f'{acc} |')
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
