"""Throughput, latency, memory and achieved FLOP/s of a model; behind
``tools/analysis_tools/benchmark.py``.

One *run* builds the config's model with random weights, then times
``warmup`` untimed and ``iters`` timed steps on a random batch:

* ``infer``: ``model(x, mode='tensor')`` (image -> logits) in eval mode
  under ``torch.no_grad()``;
* ``train``: one optimisation step in train mode: forward to logits,
  cross-entropy against random labels, backward, ``AdamW.step()``
  (``zero_grad(set_to_none=True)`` first). fp16 uses a ``GradScaler``.

Precision ``bf16`` / ``fp16`` is ``torch.autocast`` around the forward
(mixed precision: fp32 weights and optimiser). Every step is timed with
``time.perf_counter`` (after ``torch.cuda.synchronize()`` on CUDA).

Reported:

* ``images_per_s``: ``batch * iters / total time``;
* ``latency_median_ms`` / ``latency_p90_ms``: per step (one batch);
* ``peak_memory_mb``: ``torch.cuda.max_memory_allocated`` over the timed
  steps on CUDA; on the CPU the process's peak resident set size
  (``resource.getrusage(RUSAGE_SELF).ru_maxrss``), which includes the
  interpreter and libraries and never decreases, so compare runs made in
  separate processes (``compare`` does);
* ``achieved_flops``: the model's FLOPs per image
  (:func:`hifuse_mm.analysis.complexity.model_complexity`, 1 multiply-add =
  1 FLOP, attention matmuls included) times images/s, times 3 for a
  training step (forward + backward ~ 3x the forward; the optimiser and
  elementwise work are not counted);
* ``peak_matmul_flops``: this machine's square ``torch.mm`` throughput,
  measured in the same process in the run's compute dtype (fp32, bf16 or
  fp16), same FLOP convention; ``flops_fraction`` is the ratio, the share
  of the hardware's dense-matmul rate the model achieves.

:func:`compare` runs several variants, each in a fresh subprocess (clean
peak memory, no shared caches), alternating the variants over ``rounds``
and keeping each variant's fastest round (the least disturbed by other
processes), and reports the speedups over the first variant.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from ..utils.speed import (PRECISIONS, autocast_context, autocast_dtype,
                           grad_scaler, maybe_compile, to_channels_last,
                           warn_slow_precision)

MODES = ('infer', 'train')


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing to wait for on the CPU."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable[[], object], calls: int, device: torch.device) -> List[float]:
    """Wall-clock seconds of each of ``calls`` calls of ``fn``, each between two
    :func:`synchronize` (so a CUDA call is timed to the end of its work)."""
    times = []
    for _ in range(calls):
        synchronize(device)
        tic = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - tic)
    return times


def peak_matmul_flops(device: torch.device,
                      precision: str,
                      size: Optional[int] = None,
                      repeats: int = 5) -> float:
    """Multiply-adds per second of a square ``torch.mm`` (best of repeats).

    The dtype is the precision's compute dtype (fp32, bf16, fp16);
    ``size`` defaults to 2048 on the CPU and 8192 on CUDA.
    """
    dtype = autocast_dtype(precision) or torch.float32
    size = size or (8192 if device.type == 'cuda' else 2048)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    torch.mm(a, b)
    best = float('inf')
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return size**3 / best


def _build(config: str, cfg_options: Optional[dict]):
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmpretrain.registry import MODELS

    from .. import models  # noqa: F401  (registers the models)

    # init_weights logs every parameter at INFO through the current logger.
    if not MMLogger.check_instance_created('hifuse_benchmark'):
        MMLogger.get_instance('hifuse_benchmark', log_level='WARNING')

    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = MODELS.build(cfg.model)
    model.init_weights()
    num_classes = cfg.model.get('head', {}).get('num_classes', 1000)
    return model, num_classes


def model_flops(config: str,
                shape: Sequence[int] = (224, 224),
                cfg_options: Optional[dict] = None) -> float:
    """FLOPs of one forward at ``shape`` (plain path, batch 1)."""
    from .complexity import model_complexity

    model, _ = _build(config, cfg_options)
    return model_complexity(model, shape)['flops']


def run(config: str,
        mode: str = 'infer',
        batch_size: int = 8,
        precision: str = 'fp32',
        channels_last: bool = False,
        compile: bool = False,
        fast: bool = True,
        device: str = 'cpu',
        shape: Sequence[int] = (224, 224),
        warmup: int = 3,
        iters: int = 10,
        threads: Optional[int] = None,
        cfg_options: Optional[dict] = None,
        flops_per_image: Optional[float] = None,
        seed: int = 0) -> Dict:
    """Time one configuration in this process; returns a result dict.

    ``fast`` selects the models' implementations: ``impl='auto'`` (the
    optimised ones for ``device``) or ``'reference'`` (the plain layers),
    :func:`hifuse_mm.models.ops.apply_impl`.
    """
    from ..models.ops import apply_impl

    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}')
    warn_slow_precision(device, precision)
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    torch.manual_seed(seed)

    if flops_per_image is None:
        flops_per_image = model_flops(config, shape, cfg_options)
    model, num_classes = _build(config, cfg_options)
    apply_impl(model, 'auto' if fast else 'reference')
    model.to(dev)
    images = torch.randn(batch_size, 3, *shape, device=dev)
    labels = torch.randint(0, num_classes, (batch_size, ), device=dev)
    if channels_last:
        to_channels_last(model)
        images = images.contiguous(memory_format=torch.channels_last)
    maybe_compile(model, compile)

    if mode == 'infer':
        model.eval()

        def step() -> None:
            with torch.no_grad(), autocast_context(dev, precision):
                model(images, mode='tensor')
    else:
        model.train()
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=1e-4, weight_decay=0.01)
        scaler = grad_scaler(dev, precision)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with autocast_context(dev, precision):
                logits = model(images, mode='tensor')
            loss = F.cross_entropy(logits.float(), labels)
            if scaler is None:
                loss.backward()
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()

    start = time.perf_counter()
    for _ in range(warmup):
        step()
    synchronize(dev)
    warmup_s = time.perf_counter() - start
    if dev.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(dev)
    times = seconds_per_call(step, iters, dev)
    if dev.type == 'cuda':
        peak_mb = torch.cuda.max_memory_allocated(dev) / 2**20
        memory_kind = 'cuda_max_allocated'
    else:
        # ru_maxrss is in KiB on Linux.
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        memory_kind = 'process_max_rss'
    total = sum(times)
    images_per_s = batch_size * iters / total
    work = 3 if mode == 'train' else 1
    achieved = flops_per_image * work * images_per_s
    peak = peak_matmul_flops(dev, precision)
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return dict(
        config=config,
        mode=mode,
        batch_size=batch_size,
        precision=precision,
        channels_last=channels_last,
        compile=compile,
        compile_fell_back=bool(
            compile and getattr(model.forward, 'failed', False)),
        fast=fast,
        device=str(dev),
        shape=list(shape),
        threads=torch.get_num_threads(),
        warmup=warmup,
        iters=iters,
        warmup_s=warmup_s,
        images_per_s=images_per_s,
        latency_median_ms=statistics.median(times) * 1e3,
        latency_p90_ms=p90 * 1e3,
        latencies_ms=[t * 1e3 for t in times],
        peak_memory_mb=peak_mb,
        memory_kind=memory_kind,
        flops_per_image=flops_per_image,
        flops_factor=work,
        achieved_flops=achieved,
        peak_matmul_flops=peak,
        flops_fraction=achieved / peak,
        load_average=list(os.getloadavg()),
        torch=torch.__version__,
    )


def describe(result: Dict) -> str:
    """The variant's flags as text: ``bf16 fast channels-last``..."""
    parts = [result['precision'], 'fast' if result['fast'] else 'no-fast']
    if result['channels_last']:
        parts.append('channels-last')
    if result['compile']:
        parts.append('compile' + (' (fell back to eager)'
                                  if result.get('compile_fell_back') else ''))
    return ' '.join(parts)


def format_result(result: Dict) -> str:
    """Human-readable lines for one run."""
    g = 1e9
    return '\n'.join([
        f"{result['config']}  mode={result['mode']}  batch="
        f"{result['batch_size']}  {'x'.join(map(str, result['shape']))}  "
        f"{describe(result)}  device={result['device']}  threads="
        f"{result['threads']}",
        f"  images/s        {result['images_per_s']:.2f}",
        f"  latency         median {result['latency_median_ms']:.1f} ms, "
        f"p90 {result['latency_p90_ms']:.1f} ms (per batch, "
        f"{result['iters']} iters after {result['warmup']} warm-up)",
        f"  peak memory     {result['peak_memory_mb']:.0f} MiB "
        f"({result['memory_kind']})",
        f"  achieved        {result['achieved_flops'] / g:.1f} GFLOP/s "
        f"({result['flops_per_image'] / g:.2f} GFLOPs/image x "
        f"{result['flops_factor']}; 1 FLOP = 1 multiply-add)",
        f"  matmul peak     {result['peak_matmul_flops'] / g:.1f} GFLOP/s "
        f"(torch.mm, {result['precision']})  -> "
        f"{100 * result['flops_fraction']:.1f}% of peak",
        f"  load average    {' '.join(f'{x:.2f}' for x in result['load_average'])}",
    ])


def _child_argv(config: str, variant: Dict, common: Dict,
                json_path: str) -> List[str]:
    tool = os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))), 'tools', 'analysis_tools',
        'benchmark.py')
    argv = [sys.executable, tool, config, '--json', json_path, '--quiet']
    opts = {**common, **variant}
    for key in ('mode', 'batch_size', 'precision', 'device', 'warmup',
                'iters', 'threads', 'flops_per_image'):
        if opts.get(key) is not None:
            argv += [f"--{key.replace('_', '-')}", str(opts[key])]
    argv += ['--shape'] + [str(s) for s in opts['shape']]
    argv.append('--fast' if opts.get('fast', True) else '--no-fast')
    if opts.get('channels_last'):
        argv.append('--channels-last')
    if opts.get('compile'):
        argv.append('--compile')
    if opts.get('cfg_options'):
        argv.append('--cfg-options')
        argv += [f'{k}={v}' for k, v in opts['cfg_options'].items()]
    return argv


def compare(config: str,
            variants: Sequence[Dict],
            rounds: int = 1,
            log=print,
            **common) -> List[Dict]:
    """Run each variant in its own subprocess and report speedups.

    ``variants`` are dicts of :func:`run` keyword arguments (``fast``,
    ``precision``, ``channels_last``, ``compile``) over ``common``; the
    first one is the baseline. With ``rounds > 1`` the variants are run
    in turn ``rounds`` times and each keeps its fastest round. Returns the
    results, each with ``speedup`` (images/s over the baseline's) and
    ``rounds_images_per_s``.
    """
    if common.get('flops_per_image') is None:
        common['flops_per_image'] = model_flops(
            config, common.get('shape', (224, 224)),
            common.get('cfg_options'))
    best: List[Optional[Dict]] = [None] * len(variants)
    seen: List[List[float]] = [[] for _ in variants]
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for i, variant in enumerate(variants):
                path = os.path.join(tmp, f'{r}_{i}.json')
                argv = _child_argv(config, variant, common, path)
                proc = subprocess.run(
                    argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    text=True)
                if proc.returncode != 0:
                    raise RuntimeError(
                        f'benchmark variant {variant} failed:\n'
                        f'{proc.stdout[-4000:]}')
                with open(path) as f:
                    result = json.load(f)
                seen[i].append(result['images_per_s'])
                log(f'  round {r + 1}/{rounds}: {describe(result):32s} '
                    f"{result['images_per_s']:7.2f} images/s  (load "
                    f"{result['load_average'][0]:.2f})")
                if best[i] is None or (result['images_per_s'] >
                                       best[i]['images_per_s']):
                    best[i] = result
    base = best[0]['images_per_s']
    for result, history in zip(best, seen):
        result['speedup'] = result['images_per_s'] / base
        result['rounds_images_per_s'] = history
    return best


def format_table(results: Sequence[Dict]) -> str:
    """A markdown table of :func:`compare`'s results."""
    lines = [
        '| variant | images/s | median ms | p90 ms | peak MiB | GFLOP/s '
        '| % of matmul peak | speedup |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for r in results:
        lines.append(
            f"| {describe(r)} | {r['images_per_s']:.2f} | "
            f"{r['latency_median_ms']:.0f} | {r['latency_p90_ms']:.0f} | "
            f"{r['peak_memory_mb']:.0f} | {r['achieved_flops'] / 1e9:.1f} | "
            f"{100 * r['flops_fraction']:.1f} | {r['speedup']:.2f}x |")
    return '\n'.join(lines)
