#!/usr/bin/env python
"""Speed of a config's model: images/s, latency, peak memory, FLOP/s.

    python tools/analysis_tools/benchmark.py CONFIG [--mode infer|train]
        [--batch-size 8] [--precision fp32|bf16|fp16] [--channels-last]
        [--compile] [--fast | --no-fast] [--device cpu|cuda] [--threads N]
        [--warmup 3] [--iters 10] [--shape 224 [224]] [--json OUT]
        [--compare [--rounds N]] [--cfg-options key=value ...]

One run: warm-up steps, then timed steps on a random batch with random
weights; prints images/s, median and p90 latency per batch, peak memory
(CUDA max allocated, or the process's max RSS on the CPU) and the FLOP/s
achieved (model FLOPs x images/s, x3 for a training step; 1 FLOP = 1
multiply-add) as a share of this machine's torch.mm throughput in the same
precision, measured in the same run.

--no-fast builds the models with impl='reference': the plain reference
layers, without the optimised implementations of hifuse_mm.models.ops (fused
attention, channels-last layouts, matmul 1x1 convolutions...), which the
default --fast selects per device type (impl='auto').

--compare runs, each in a fresh process, the plain fp32 baseline
(--no-fast, fp32, no channels-last, no compile) and fp32 with the optimised
implementations; for --precision bf16/fp16 also that precision without and
with them; with --channels-last / --compile one more variant with them;
then prints a table of speedups over the baseline.
--rounds N alternates the variants N times and keeps each one's best
round (use it on a machine shared with other jobs). See docs/benchmarks.md.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hifuse_mm.cli.arguments import CfgOptionsAction  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Benchmark a model (speed, memory, FLOP/s)',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('config', help='config file')
    parser.add_argument('--mode', choices=('infer', 'train'), default='infer',
                        help='inference (forward, no grad) or one training '
                        'step (forward, backward, AdamW step)')
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--precision', choices=('fp32', 'bf16', 'fp16'),
                        default='fp32', help='bf16/fp16: torch.autocast')
    parser.add_argument('--channels-last', action='store_true',
                        help='model weights and input in channels-last '
                        'memory format')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the model (falls back to eager '
                        'with a warning if compiling fails)')
    fast = parser.add_mutually_exclusive_group()
    fast.add_argument('--fast', dest='fast', action='store_true',
                      default=True, help="optimised implementations, "
                      "impl='auto' (default)")
    fast.add_argument('--no-fast', dest='fast', action='store_false',
                      help="the plain reference layers, impl='reference'")
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:1')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch.set_num_threads (default: torch\'s)')
    parser.add_argument('--warmup', type=int, default=3,
                        help='untimed steps first')
    parser.add_argument('--iters', type=int, default=10, help='timed steps')
    parser.add_argument('--shape', type=int, nargs='+', default=[224],
                        help='input size: H, or H W (default 224)')
    parser.add_argument('--compare', action='store_true',
                        help='run the plain fp32 baseline and this variant '
                        'in separate processes and print the speedups')
    parser.add_argument('--rounds', type=int, default=1,
                        help='--compare: alternate the variants this many '
                        'times, keep each one\'s best')
    parser.add_argument('--json', help='write the result(s) to this file')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config keys, key=value')
    parser.add_argument('--flops-per-image', type=float,
                        help=argparse.SUPPRESS)  # passed to --compare's runs
    parser.add_argument('--quiet', action='store_true',
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if len(args.shape) not in (1, 2):
        parser.error('--shape takes H or H W')
    args.shape = tuple(args.shape * 2 if len(args.shape) == 1 else args.shape)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from hifuse_mm.analysis import benchmark

    common = dict(
        mode=args.mode, batch_size=args.batch_size, device=args.device,
        shape=args.shape, warmup=args.warmup, iters=args.iters,
        threads=args.threads, cfg_options=args.cfg_options,
        flops_per_image=args.flops_per_image)
    if args.compare:
        variants = [dict(precision='fp32', fast=False),
                    dict(precision='fp32', fast=True)]
        if args.precision != 'fp32':
            variants += [dict(precision=args.precision, fast=False),
                         dict(precision=args.precision, fast=True)]
        if args.channels_last or args.compile:
            variants.append(dict(precision=args.precision, fast=True,
                                 channels_last=args.channels_last,
                                 compile=args.compile))
        print(f'{args.config}: {args.mode}, batch {args.batch_size}, '
              f"{'x'.join(map(str, args.shape))}, device {args.device}")
        results = benchmark.compare(args.config, variants, args.rounds,
                                    **common)
        print(benchmark.format_table(results))
        out = results
    else:
        out = benchmark.run(
            args.config, precision=args.precision,
            channels_last=args.channels_last, compile=args.compile,
            fast=args.fast, **common)
        if not args.quiet:
            print(benchmark.format_result(out))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
