#!/usr/bin/env python
"""Parameters and FLOPs of a config's model.

    python tools/analysis_tools/get_flops.py CONFIG [--shape 224 [224]]

FLOPs count one multiply-add as one FLOP. "with attention" includes the
attention matmuls (q @ k^T and attn @ v, as fvcore counts); "without
attention" leaves them out, which is what the HiFuse paper's Table 4 and
the HEMF paper report (their counting tools cannot see them).
"""
import argparse
import sys

from mmengine.config import Config

from hifuse_mm.cli.arguments import CfgOptionsAction


def main() -> int:
    parser = argparse.ArgumentParser(description='Params and FLOPs')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=[224],
        help='input size: H, or H W (default 224)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override config keys, key=value')
    args = parser.parse_args()
    if len(args.shape) not in (1, 2):
        parser.error('--shape takes H or H W')
    shape = tuple(args.shape * 2 if len(args.shape) == 1 else args.shape)

    import hifuse_mm  # noqa: F401  (registers models)
    from mmpretrain.registry import MODELS

    from hifuse_mm.analysis.complexity import model_complexity

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = MODELS.build(cfg.model)
    result = model_complexity(model, shape)
    attention = result['flops'] - result['flops_no_attention']
    line = '=' * 60
    print(f'{line}\nConfig: {args.config}\nInput shape: 3x{shape[0]}x'
          f'{shape[1]}\n'
          f'Params: {result["params"]:,} ({result["params"] / 1e6:.2f} M)\n'
          f'FLOPs (with attention matmuls): {result["flops"] / 1e9:.2f} G\n'
          f'FLOPs (without attention matmuls, as in the papers): '
          f'{result["flops_no_attention"] / 1e9:.2f} G\n'
          f'  attention matmuls: {attention / 1e9:.3f} G\n'
          f'(1 multiply-add = 1 FLOP)\n{line}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
