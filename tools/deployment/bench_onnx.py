#!/usr/bin/env python
"""Time onnxruntime (CPU) beside PyTorch eager fp32 / bf16 and the authors' code, in one process.

    python tools/deployment/bench_onnx.py [--archs hifuse_tiny_dw hemf] [--batch 1 8]
        [--rounds 3] [--warmup 1] [--size 224] [--threads 2] [--json out.json]
        [--config CONFIG]   # any model config instead of --archs (e.g. a small test model)
        [--compile] [--train]

For each model (random weights, 7 classes) it exports the logits graph with a dynamic batch
(``hifuse_mm.deploy.export_logits``, as ``tools/deployment/export_onnx.py`` does) to a
temporary folder and times, at each batch size, in alternating rounds (every contestant once
per round, so that machine noise hits all alike):

* ``eager_fp32``: our model in PyTorch eager, fp32 (its default per-device implementations,
  as ``tools/infer.py`` runs it) — the anchor;
* ``eager_bf16``: the same under bf16 autocast;
* ``onnxruntime``: the exported file with onnxruntime's CPU execution provider, fp32;
* ``authors``: the authors' released model code, when ``../shared/tools/bench_vs_authors.py``
  exists beside the repository (its ``build_authors``; measurement only);
* ``compiled`` (with ``--compile``): our model through ``torch.compile`` (inductor), fp32; its
  first call at each batch size (the compilation) is reported apart, not timed.

With ``--train`` it times one fp32 training step instead (forward, cross-entropy, backward,
AdamW step; the models in train mode) of ``eager_fp32``, ``authors`` and, with ``--compile``,
``compiled``: nothing is exported and onnxruntime and bf16 are left out (bf16 training against
the authors' code: ``../shared/tools/bench_vs_authors.py``).

Printed per contestant: images/s (best round) and the median of the per-round speed ratios
against ``eager_fp32`` (> 1: faster than eager fp32) and against ``authors``. The max |logit
difference| of onnxruntime against eager fp32 on the timed batch is printed too. Needs the
``deploy`` extra. Speed is always a ratio against an anchor of the same run: rerun it on your
machine (docs/deployment.md).
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

REPO = Path(__file__).resolve().parents[2]
AUTHORS_BENCH = REPO.parent / 'shared' / 'tools' / 'bench_vs_authors.py'

#: arch -> (config, overrides of model.neck); the arch names of bench_vs_authors.py.
ARCHS = {
    'hifuse_tiny_dw': ('configs/hifuse/hifuse-tiny_isic2018.py', {}),
    'hifuse_small_dw': ('configs/hifuse/hifuse-small_isic2018.py', {}),
    'hifuse_base_dw': ('configs/hifuse/hifuse-base_isic2018.py', {}),
    'hifuse_tiny': ('configs/hifuse/hifuse-tiny_isic2018.py', {'irmlp_depthwise': False}),
    'hifuse_small': ('configs/hifuse/hifuse-small_isic2018.py', {'irmlp_depthwise': False}),
    'hifuse_base': ('configs/hifuse/hifuse-base_isic2018.py', {'irmlp_depthwise': False}),
    'hemf': ('configs/hemf/hemf_isic2018.py', {}),
}
NUM_CLASSES = 7


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--archs', nargs='+', default=['hifuse_tiny_dw', 'hemf'],
                        choices=sorted(ARCHS), help='models to time (default: %(default)s)')
    parser.add_argument('--config', help='time this config\'s model instead of --archs (no '
                        'authors\' model then)')
    parser.add_argument('--batch', nargs='+', type=int, default=[1, 8], help='batch sizes')
    parser.add_argument('--size', nargs='+', type=int, default=[224],
                        help='input side, or height and width (multiples of 32)')
    parser.add_argument('--rounds', type=int, default=3, help='timed rounds per batch size')
    parser.add_argument('--warmup', type=int, default=1, help='untimed calls first')
    parser.add_argument('--threads', type=int, default=2,
                        help='threads of torch and onnxruntime (default: %(default)s)')
    parser.add_argument('--compile', action='store_true',
                        help='also time the model compiled with torch.compile (fp32)')
    parser.add_argument('--train', action='store_true',
                        help='time an fp32 training step (eager, --compile, authors) instead of '
                        'inference; no export, no onnxruntime')
    parser.add_argument('--no-authors', action='store_true',
                        help='leave out the authors\' model even when it is available')
    parser.add_argument('--json', help='also write every figure to this JSON file')
    args = parser.parse_args(argv)
    if len(args.size) not in (1, 2) or any(side % 32 or side < 32 for side in args.size):
        parser.error('--size takes one or two positive multiples of 32')
    if args.rounds < 1 or args.warmup < 0 or args.threads < 1 or min(args.batch) < 1:
        parser.error('--rounds, --threads and --batch must be >= 1, --warmup >= 0')
    return args


def build_ours(config: str, neck: dict) -> torch.nn.Module:
    """Our classifier of ``config`` (random weights, seed 0, eval, default implementations)."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    cfg = copy.deepcopy(Config.fromfile(str(REPO / config if not Path(config).is_file()
                                            else config)))
    cfg.model.neck.update(neck)
    cfg.model.head.num_classes = NUM_CLASSES
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg.model).eval()


def load_authors_builder() -> Optional[Callable]:
    """``build_authors(arch)`` of ../shared/tools/bench_vs_authors.py, or None without it."""
    if not AUTHORS_BENCH.is_file():
        return None
    spec = importlib.util.spec_from_file_location('bench_vs_authors', AUTHORS_BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_authors


def contestants(model: torch.nn.Module, session, authors: Optional[torch.nn.Module],
                compiled: bool = False) -> Dict[str, Callable[[torch.Tensor], object]]:
    """name -> one timed call on a batch."""
    def eager(x):
        with torch.no_grad():
            return model.head(model.extract_feat(x))

    def eager_bf16(x):
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
            return model.head(model.extract_feat(x))

    calls = {'eager_fp32': eager, 'eager_bf16': eager_bf16,
             'onnxruntime': lambda x: session(x.numpy())}
    if authors is not None:
        def theirs(x):
            with torch.no_grad():
                return authors(x)
        calls['authors'] = theirs
    if compiled:
        from hifuse_mm.deploy import LogitsGraph
        graph = torch.compile(LogitsGraph(model))

        def compiled_call(x):
            with torch.no_grad():
                return graph(x)
        calls['compiled'] = compiled_call
    return calls


def training_contestants(model: torch.nn.Module, authors: Optional[torch.nn.Module],
                         compiled: bool = False) -> Dict[str, Callable[[torch.Tensor], object]]:
    """name -> one fp32 training step on a batch (labels ``i % NUM_CLASSES``), each with its own
    AdamW; ``compiled`` steps the same model as ``eager_fp32``, through ``torch.compile``."""
    from hifuse_mm.deploy import LogitsGraph

    def step_of(network: torch.nn.Module, parameters) -> Callable[[torch.Tensor], object]:
        optimizer = torch.optim.AdamW(parameters, lr=1e-4)

        def step(x):
            optimizer.zero_grad(set_to_none=True)
            labels = torch.arange(len(x)) % NUM_CLASSES
            loss = torch.nn.functional.cross_entropy(network(x), labels)
            loss.backward()
            optimizer.step()
            return loss
        return step

    model.train()
    calls = {'eager_fp32': step_of(LogitsGraph(model), model.parameters())}
    if authors is not None:
        calls['authors'] = step_of(authors.train(), authors.parameters())
    if compiled:
        calls['compiled'] = step_of(torch.compile(LogitsGraph(model)), model.parameters())
    return calls


def time_batch(calls: Dict[str, Callable], x: torch.Tensor, rounds: int,
               warmup: int) -> Tuple[Dict[str, List[float]], Dict[str, float]]:
    """Seconds per call of each contestant, ``rounds`` alternating rounds, and the seconds of
    each one's first (warm-up) call."""
    first: Dict[str, float] = {}
    for name, call in calls.items():
        for i in range(max(warmup, 1 if name == 'compiled' else 0)):
            start = time.perf_counter()
            call(x)
            if i == 0:
                first[name] = time.perf_counter() - start
    seconds: Dict[str, List[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call(x)
            seconds[name].append(time.perf_counter() - start)
    return seconds, first


def summarise(seconds: Dict[str, List[float]], batch: int) -> Dict[str, dict]:
    out = {}
    for name, times in seconds.items():
        row = {'img_s': batch / min(times), 'seconds': times}
        for anchor in ('eager_fp32', 'authors'):
            if anchor in seconds and anchor != name:
                row[f'vs_{anchor}'] = statistics.median(
                    a / t for a, t in zip(seconds[anchor], times))
        out[name] = row
    return out


def time_batches(name: str, calls: Dict[str, Callable], args: argparse.Namespace, height: int,
                 width: int, results: dict, session=None) -> None:
    """Time ``calls`` at each of ``args.batch``; print and add to ``results`` (with a
    ``session``, onnxruntime's max |logit difference| against eager fp32 too)."""
    for batch in args.batch:
        x = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(batch))
        extra, heading = {}, f'{name}, batch {batch}'
        if session is not None:
            diff = float((torch.from_numpy(session(x.numpy())) - calls['eager_fp32'](x))
                         .abs().max())
            extra['onnx_max_abs_logit_diff'] = diff
            heading += f' (onnxruntime vs eager fp32: max |logit difference| {diff:.2g})'
        seconds, first = time_batch(calls, x, args.rounds, args.warmup)
        rows = summarise(seconds, batch)
        for who, start in first.items():
            rows[who]['first_call_s'] = start
        results[f'batch_{batch}'] = dict(rows, **extra)
        print(heading + (', training step:' if args.train else ':'), flush=True)
        for who, row in rows.items():
            ratios = ', '.join(f'{row[key]:.2f}x {key}' for key in
                               ('vs_eager_fp32', 'vs_authors') if key in row)
            compiled = (f', first call {row["first_call_s"]:.0f} s'
                        if who == 'compiled' else '')
            print(f'  {who:12s} {row["img_s"]:8.2f} img/s'
                  f'{"  (" + ratios + compiled + ")" if ratios else ""}', flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    import hifuse_mm  # registers the models
    from hifuse_mm.deploy import OnnxLogitsSession, export_logits

    torch.set_num_threads(args.threads)
    height, width = (args.size * 2)[:2]
    build_authors = None if (args.no_authors or args.config) else load_authors_builder()
    models = {Path(args.config).stem: (args.config, {})} if args.config else \
        {arch: ARCHS[arch] for arch in args.archs}
    report = {'hifuse_mm': hifuse_mm.__version__, 'torch': torch.__version__,
              'threads': args.threads, 'size': [height, width], 'rounds': args.rounds,
              'mode': 'train' if args.train else 'infer', 'results': {}}
    print(f'threads {args.threads}, {height}x{width}, {args.rounds} rounds; authors\' code: '
          f'{"yes" if build_authors else "no"}', flush=True)
    for name, (config, neck) in models.items():
        model = build_ours(config, neck)
        authors = build_authors(name, num_classes=NUM_CLASSES).eval() if build_authors \
            else None
        results = report['results'][name] = {}
        if args.train:
            calls = training_contestants(model, authors, args.compile)
            time_batches(name, calls, args, height, width, results)
        else:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / f'{name}.onnx'
                start = time.perf_counter()
                export_logits(model, path, height, width, dynamic_batch=True)
                results['export_s'] = time.perf_counter() - start
                session = OnnxLogitsSession(path, height, width, None, threads=args.threads)
                calls = contestants(model, session, authors, args.compile)
                time_batches(name, calls, args, height, width, results, session)
        del model, authors
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
