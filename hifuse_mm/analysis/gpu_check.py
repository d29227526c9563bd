"""The GPU check, in one command: behind ``tools/analysis_tools/gpu_check.py``.

On a CUDA machine it runs, in order, and writes one JSON (docs/gpu.md has the commands):

1. ``environment``: torch / CUDA / cuDNN versions, the GPU, and which implementation each
   op runs there (:func:`hifuse_mm.models.ops.selected`, counted over a HiFuse-T + HEMF);
2. ``parity``: every parity file (the authors' models, ``../shared/parity``, format in its
   README) on the GPU in fp32 (TF32 off), with the implementations CUDA selects and with the
   reference ones: logits within the file's tolerance, stage features within 2e-2;
3. ``train``: ``steps`` training steps (AdamW, lr 1e-4, one fixed random batch) of each arch
   under fp16 autocast with a ``GradScaler`` and under bf16 autocast: every loss finite and
   the last five steps' mean below the first five's; images/s and peak memory;
4. ``compile``: ``torch.compile`` (inductor) of HiFuse-T and HEMF against eager, fp32 with
   TF32 off, at the benchmark's batch size: inference logits and a training step's loss and
   gradients to 1e-4 (relative to their scale), then images/s compiled and eager (fp32
   inference and training, bf16 inference) and peak memory;
5. ``throughput``: training images/s of each arch and of MMPretrain's Swin-B and ConvNeXt-B
   (same batch, precisions and steps as ``train``), with each model's GMACs per image (one
   multiply-add per MAC, :func:`hifuse_mm.analysis.complexity.model_complexity`) and their
   product, the GMAC/s a training run achieves, as a ratio to each baseline's: how well a
   model uses the GPU for its amount of arithmetic;
6. ``bench``: ``bench_vs_authors.py --device cuda --batch 64`` (the authors' models against
   ours, fp32 and bf16, then fp16), when the authors' code is at hand.

Without CUDA the check says so and exits 0 with ``"skipped"`` in the JSON (exit code 1 means
a check failed). ``--device cpu`` runs the same steps on the CPU (bf16 only; meant for a
smoke test with ``--archs narrow_hifuse narrow_hemf --baselines narrow_swin narrow_convnext
--size 32 --steps 2``).
"""
import argparse
import copy
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .benchmark import seconds_per_call, synchronize
from .complexity import ClassifierLogits, model_complexity
from .parity import generate_state_dict, stage_features

#: Full-size archs; ``narrow_*`` are 16-128-channel models for smoke tests.
ARCHS = ('hifuse_tiny', 'hifuse_small', 'hifuse_base', 'hemf')
NARROW = ('narrow_hifuse', 'narrow_hemf')
#: MMPretrain's models timed beside ours in ``throughput``; ``narrow_*``: 16-128 channels.
BASELINES = ('swin_base', 'convnext_base')
NARROW_BASELINES = ('narrow_swin', 'narrow_convnext')
SECTIONS = ('parity', 'train', 'compile', 'throughput', 'bench')
NUM_CLASSES = 7
FEATURE_TOL = 2e-2  # parity features are stored in float16
COMPILE_TOL = 1e-4


def baseline_cfg(arch: str) -> dict:
    """MMPretrain's Swin-B (``SwinTransformer``, global average pooling) or ConvNeXt-B (pooled
    by the backbone) as a ``NUM_CLASSES``-class classifier; ``narrow_*``: 16-128 channels."""
    narrow = arch.startswith('narrow_')
    if arch in ('swin_base', 'narrow_swin'):
        backbone = dict(type='SwinTransformer', arch='base') if not narrow else dict(
            type='SwinTransformer', pad_small_map=True,  # 32 px smoke tests: 1x1 maps
            arch=dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 4)))
        neck = dict(type='GlobalAveragePooling')
    elif arch in ('convnext_base', 'narrow_convnext'):
        backbone = dict(type='ConvNeXt', arch=dict(
            depths=(1, 1, 1, 1), channels=(16, 32, 64, 128)) if narrow else 'base')
        neck = None
    else:
        raise KeyError(f'unknown baseline {arch!r}; one of {BASELINES + NARROW_BASELINES}')
    return dict(type='ImageClassifier', backbone=backbone, neck=neck,
                head=dict(type='LinearClsHead', num_classes=NUM_CLASSES,
                          in_channels=128 if narrow else 1024))


def model_cfg(arch: str, impl: str = 'auto') -> dict:
    """The classifier of ``arch`` (HiFuse in the paper's mode, HEMF as released, or a
    baseline of :func:`baseline_cfg`)."""
    if arch in BASELINES + NARROW_BASELINES:
        return baseline_cfg(arch)
    if arch in ('hifuse_tiny', 'hifuse_small', 'hifuse_base'):
        backbone = dict(type='HiFuse', arch=arch.split('_')[1])
        neck, channels = dict(type='HFFNeck'), 768
    elif arch == 'hemf':
        backbone = dict(type='HEMF')
        neck, channels = dict(type='HEFNeck'), 768
    elif arch == 'narrow_hifuse':
        backbone = dict(type='HiFuse', arch=dict(
            embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 4)))
        neck, channels = dict(type='HFFNeck', in_channels=(16, 32, 64, 128)), 128
    elif arch == 'narrow_hemf':
        backbone = dict(type='HEMF', arch=dict(
            embed_dims=16, num_heads=2, local_depths=(1, 1, 1, 1),
            global_depths=(1, 1, 1, 1)))
        neck, channels = dict(type='HEFNeck', in_channels=(16, 32, 64, 128)), 128
    else:
        raise KeyError(f'unknown arch {arch!r}; one of {ARCHS + NARROW}')
    return dict(type='ImageClassifier', backbone=dict(backbone, impl=impl),
                neck=dict(neck, impl=impl),
                head=dict(type='LinearClsHead', num_classes=NUM_CLASSES,
                          in_channels=channels))


def build(arch: str, impl: str = 'auto') -> nn.Module:
    from mmpretrain.registry import MODELS

    from .. import models  # noqa: F401  (registers the models)
    model = MODELS.build(model_cfg(arch, impl))
    model.init_weights()
    return model


def _reset_peak(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> Optional[float]:
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    return None


def _rel_err(ref: torch.Tensor, out: torch.Tensor) -> float:
    """max |out - ref| / max(1, max |ref|)."""
    ref, out = ref.detach().float().cpu(), out.detach().float().cpu()
    return (out - ref).abs().max().item() / max(1., ref.abs().max().item())


def _tf32(enabled: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


# -- 1. environment ---------------------------------------------------------------------


def environment(device: torch.device) -> Dict:
    from ..models.ops import selected
    info = dict(torch=torch.__version__, python=platform.python_version(),
                device=str(device), cuda=torch.version.cuda)
    if device.type == 'cuda':
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, capability=f'{props.major}.{props.minor}',
                    memory_gib=props.total_memory / 2**30,
                    cudnn=torch.backends.cudnn.version())
    for name in ('mmengine', 'mmcv', 'mmpretrain'):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    counts: Counter = Counter()
    for arch in ('narrow_hifuse', 'narrow_hemf'):
        for entry in selected(build(arch)).values():
            counts[entry.get(device.type, 'reference')] += 1
    info['implementations'] = dict(sorted(counts.items()))
    return info


# -- 2. parity ----------------------------------------------------------------------------


def parity(parity_dir: Path, device: torch.device, log: Callable) -> List[Dict]:
    from mmpretrain.registry import MODELS

    from ..converters import convert_official
    from ..models.ops import use_impl
    files = sorted(parity_dir.glob('*.pt'))
    if not files:
        raise FileNotFoundError(f'no parity files (*.pt) in {parity_dir}')
    results = []
    for path in files:
        golden = torch.load(path, map_location='cpu', weights_only=False)
        state_dict = generate_state_dict(golden['manifest'], golden['salt'])
        wrong = [k for k, v in golden['fingerprints'].items() if not math.isclose(
            state_dict[k].double().sum().item(), v, rel_tol=1e-6, abs_tol=1e-9)]
        converted, meta = convert_official(state_dict)
        model = MODELS.build(meta['model'])
        model.load_state_dict(converted, strict=True)
        model.eval().to(device)
        x = golden['input'].to(device)
        entry = dict(file=path.name, arch=golden['arch'], fingerprints_ok=not wrong,
                     atol=golden['atol'], rtol=golden['rtol'])
        for impl in (device.type, 'reference'):
            with use_impl(model, impl), torch.no_grad():
                logits = model(x).float().cpu()
                feats = stage_features(model, x) if golden['features'] else {}
            close = torch.allclose(logits, golden['logits'], atol=golden['atol'],
                                   rtol=golden['rtol'])
            entry[impl] = dict(
                logits_max_abs_err=(logits - golden['logits']).abs().max().item(),
                logits_ok=close,
                features_ok=all(torch.allclose(
                    feats[name].float().cpu(), ref.float(), atol=FEATURE_TOL,
                    rtol=FEATURE_TOL) for name, ref in golden['features'].items()))
        entry['ok'] = entry['fingerprints_ok'] and all(
            entry[i]['logits_ok'] and entry[i]['features_ok']
            for i in (device.type, 'reference'))
        log(f"  parity {path.name}: {'ok' if entry['ok'] else 'FAILED'} (max |logit err| "
            f"{entry[device.type]['logits_max_abs_err']:.2e} with the {device.type} "
            f"implementations, {entry['reference']['logits_max_abs_err']:.2e} reference)")
        results.append(entry)
        del model
    return results


# -- 3. training ------------------------------------------------------------------------------


def _autocast(device: torch.device, precision: str):
    dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def train_steps(arch: str, precision: str, device: torch.device, steps: int, batch: int,
                size: int, compile: bool = False) -> Dict:
    """``steps`` AdamW steps on one fixed random batch; losses, images/s, peak memory."""
    torch.manual_seed(0)
    model = build(arch).to(device).train()
    net = torch.compile(ClassifierLogits(model)) if compile else ClassifierLogits(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == 'fp16')
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, NUM_CLASSES, (batch, ), device=device)
    losses = []

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, precision):
            loss = F.cross_entropy(net(x).float(), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        losses.append(loss.detach())

    _reset_peak(device)
    times = seconds_per_call(step, steps, device)
    losses = [loss.item() for loss in losses]
    head = min(5, max(1, steps // 2))
    finite = all(math.isfinite(v) for v in losses)
    decreasing = finite and statistics.mean(losses[-head:]) < statistics.mean(losses[:head])
    timed = times[1:] or times  # the first step includes warm-up (and compilation)
    return dict(arch=arch, precision=precision, batch=batch, size=size, steps=steps,
                losses=losses, finite=finite, decreasing=decreasing,
                ok=finite and decreasing, images_per_s=batch / statistics.median(timed),
                first_step_s=times[0], peak_memory_mib=_peak_mib(device))


# -- 4. torch.compile -------------------------------------------------------------------------


def _images_per_s(fn: Callable, batch: int, device: torch.device, iters: int) -> float:
    fn()
    fn()  # warm-up (compilation, autotuning, cuDNN plans)
    return batch / statistics.median(seconds_per_call(fn, iters, device))


def compile_check(arch: str, device: torch.device, batch: int, size: int,
                  iters: int, backend: str = 'inductor') -> Dict:
    """``torch.compile`` against eager at one batch size (the graphs compiled for the
    equality checks are the ones timed): fp32 (TF32 off) inference logits and one training
    step's loss and gradients, relative to their scale, then images/s of fp32 inference,
    fp32 training steps (AdamW) and bf16 inference, compiled and eager."""
    torch.manual_seed(0)
    model = build(arch).to(device)
    eager = ClassifierLogits(model)
    compiled = torch.compile(eager, backend=backend)
    x = torch.randn(batch, 3, size, size, device=device)
    y = torch.randint(0, NUM_CLASSES, (batch, ), device=device)
    result = dict(arch=arch, batch=batch, size=size, backend=backend)
    model.eval()
    with torch.no_grad():
        ref = eager(x)
        tic = time.perf_counter()
        out = compiled(x)
        synchronize(device)
    result['infer_first_call_s'] = time.perf_counter() - tic
    result['infer_rel_err'] = _rel_err(ref, out)
    # One training step from the same state, eager then compiled.
    model.train()
    state = copy.deepcopy(model.state_dict())
    grads = []
    for net in (eager, compiled):
        model.load_state_dict(state)
        model.zero_grad(set_to_none=True)
        tic = time.perf_counter()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        synchronize(device)
        result['train_first_call_s'] = time.perf_counter() - tic
        grads.append((loss.detach(), [p.grad.detach().clone() for p in model.parameters()
                                      if p.grad is not None]))
    model.load_state_dict(state)
    (ref_loss, ref_grads), (loss, out_grads) = grads
    result['train_loss_rel_err'] = _rel_err(ref_loss, loss)
    result['train_grad_rel_err'] = max(
        _rel_err(a, b) for a, b in zip(ref_grads, out_grads))
    result['ok'] = max(result['infer_rel_err'], result['train_loss_rel_err'],
                       result['train_grad_rel_err']) <= COMPILE_TOL
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for name, net in (('eager', eager), ('compiled', compiled)):
        model.eval()

        def infer(net=net, precision='fp32'):
            with torch.no_grad(), _autocast(device, precision):
                net(x)

        def step(net=net):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            optimizer.step()
        result[f'infer_fp32_{name}_images_per_s'] = _images_per_s(infer, batch, device, iters)
        result[f'infer_bf16_{name}_images_per_s'] = _images_per_s(
            lambda: infer(precision='bf16'), batch, device, iters)
        model.train()
        _reset_peak(device)
        result[f'train_fp32_{name}_images_per_s'] = _images_per_s(step, batch, device, iters)
        result[f'train_fp32_{name}_peak_memory_mib'] = _peak_mib(device)
    return result


# -- 5. throughput against MMPretrain's models -------------------------------------------------


def throughput(archs: Sequence[str], baselines: Sequence[str], precisions: Sequence[str],
               device: torch.device, steps: int, batch: int, size: int) -> List[Dict]:
    """Training images/s (:func:`train_steps`), GMACs per image and their product (GMAC/s)
    of ``archs`` and ``baselines`` in each precision, each with its GMAC/s as a ratio to every
    baseline's in the same precision."""
    macs = {arch: model_complexity(build(arch), (size, size))['flops']
            for arch in (*archs, *baselines)}
    rows = []
    for precision in precisions:
        for arch in macs:
            run = train_steps(arch, precision, device, steps, batch, size)
            rows.append(dict(arch=arch, precision=precision, batch=batch, size=size,
                             gmacs_per_image=macs[arch] / 1e9,
                             images_per_s=run['images_per_s'],
                             gmac_per_s=run['images_per_s'] * macs[arch] / 1e9,
                             peak_memory_mib=run['peak_memory_mib'],
                             losses_finite=run['finite']))
            if device.type == 'cuda':
                torch.cuda.empty_cache()
    for row in rows:
        for other in rows:
            if other['arch'] in baselines and other['precision'] == row['precision']:
                row[f"gmac_per_s_vs_{other['arch']}"] = row['gmac_per_s'] / other['gmac_per_s']
    return rows


# -- 6. against the authors' code ---------------------------------------------------------------


def bench_vs_authors(script: Path, device: torch.device, batch: int, archs: Sequence[str],
                     rounds: int, log: Callable) -> Dict:
    """``bench_vs_authors.py`` in fp32 + bf16, then fp16; its JSON figures."""
    out = {}
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(root), os.environ.get('PYTHONPATH')])))
    runs = (('bf16', ['infer32', 'infer16', 'train32', 'train16']),
            ('fp16', ['infer16', 'train16']))
    with tempfile.TemporaryDirectory() as tmp:
        for half, modes in runs:
            path = Path(tmp) / f'{half}.json'
            argv = [sys.executable, str(script), '--device', device.type, '--batch',
                    str(batch), '--rounds', str(rounds), '--half', half, '--json',
                    str(path), '--archs', *archs, '--modes', *modes]
            log('  ' + ' '.join(argv[1:]))
            proc = subprocess.run(argv, cwd=root, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
            log('    ' + proc.stdout.strip().replace('\n', '\n    '))
            if proc.returncode:
                raise RuntimeError(f'bench_vs_authors.py --half {half} exited '
                                   f'{proc.returncode}')
            out[half] = json.loads(path.read_text())
    return out


# -- the command ------------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='GPU check: parity on CUDA, fp16/bf16 training, torch.compile, '
        'speed against the authors\' code, peak memory; one JSON (docs/gpu.md)',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='Exit codes: 0 all checks passed (or no CUDA: "skipped" in the JSON), '
        '1 a check failed, 2 bad arguments.')
    parser.add_argument('--out', default='gpu_check.json', help='the JSON written')
    parser.add_argument('--device', default='cuda', help='cuda, cuda:1, or cpu (smoke)')
    parser.add_argument('--shared', type=Path, default=None,
                        help='folder with parity/, tools/bench_vs_authors.py and '
                        'reference/authors_code/ (default: ../shared beside the repo)')
    parser.add_argument('--archs', nargs='+', default=list(ARCHS), metavar='ARCH',
                        choices=ARCHS + NARROW,
                        help=f'archs trained: {", ".join(ARCHS + NARROW)} (default: the '
                        'first four)')
    parser.add_argument('--baselines', nargs='+', default=list(BASELINES), metavar='ARCH',
                        choices=BASELINES + NARROW_BASELINES,
                        help='MMPretrain models of the throughput section: '
                        f'{", ".join(BASELINES + NARROW_BASELINES)} (default: the first two)')
    parser.add_argument('--compile-archs', nargs='+', default=['hifuse_tiny', 'hemf'],
                        choices=ARCHS + NARROW, metavar='ARCH',
                        help='archs compiled (default: hifuse_tiny hemf)')
    parser.add_argument('--compile-backend', default='inductor',
                        help='torch.compile backend (aot_eager: no code generation)')
    parser.add_argument('--bench-archs', nargs='+', metavar='ARCH',
                        default=['hifuse_tiny_dw', 'hifuse_tiny', 'hemf'],
                        help='bench_vs_authors.py --archs')
    parser.add_argument('--steps', type=int, default=20, help='training steps per run')
    parser.add_argument('--batch', type=int, default=32, help='training batch')
    parser.add_argument('--bench-batch', type=int, default=64,
                        help='batch of the speed measurements')
    parser.add_argument('--size', type=int, default=224, help='image side')
    parser.add_argument('--iters', type=int, default=10,
                        help='timed iterations of the compile speed check')
    parser.add_argument('--rounds', type=int, default=3,
                        help='bench_vs_authors.py --rounds')
    parser.add_argument('--skip', nargs='*', default=[], choices=SECTIONS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    out_path = Path(args.out)

    def log(message: str) -> None:
        print(message, flush=True)

    def write(report: Dict) -> None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(report, indent=1))

    if device.type == 'cuda' and not torch.cuda.is_available():
        log('gpu_check: no CUDA device here (torch.cuda.is_available() is False): nothing '
            f'checked; {out_path} says "skipped". Run it on a CUDA machine (docs/gpu.md).')
        write(dict(skipped='no CUDA device', torch=torch.__version__))
        return 0
    from mmengine.logging import MMLogger
    if not MMLogger.check_instance_created('hifuse_gpu_check'):
        MMLogger.get_instance('hifuse_gpu_check', log_level='WARNING')
    shared = args.shared or Path(__file__).resolve().parents[3] / 'shared'
    report: Dict = dict(argv=sys.argv[1:], started=time.strftime('%Y-%m-%d %H:%M:%S'))
    failures: List[str] = []
    start = time.perf_counter()
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    _tf32(False)  # fp32 parity and compile checks: true fp32
    report['environment'] = environment(device)
    log(f"gpu_check on {report['environment'].get('gpu', device)}: torch {torch.__version__}")

    def section(name: str, fn: Callable) -> None:
        if name in args.skip:
            report[name] = 'skipped (--skip)'
            return
        tic = time.perf_counter()
        log(f'[{name}]')
        try:
            report[name] = fn()
        except Exception as error:  # noqa: BLE001  (record it, go on with the others)
            report[name] = dict(error=f'{type(error).__name__}: {error}')
            failures.append(f'{name}: {type(error).__name__}: {error}')
            log(f'  {name} FAILED: {type(error).__name__}: {error}')
        report[f'{name}_seconds'] = time.perf_counter() - tic
        write(report)

    def run_parity():
        parity_dir = Path(os.environ.get('HIFUSE_PARITY_DIR', shared / 'parity'))
        results = parity(parity_dir, device, log)
        failures.extend(f"parity {r['file']}" for r in results if not r['ok'])
        return results

    def run_train():
        precisions = ('fp16', 'bf16') if device.type == 'cuda' else ('bf16', )
        results = []
        for arch in args.archs:
            for precision in precisions:
                r = train_steps(arch, precision, device, args.steps, args.batch, args.size)
                peak = r['peak_memory_mib']
                log(f"  {arch} {precision}: loss {r['losses'][0]:.3f} -> "
                    f"{r['losses'][-1]:.3f}, {r['images_per_s']:.1f} images/s"
                    + ('' if peak is None else f', peak {peak:.0f} MiB')
                    + (' ok' if r['ok'] else ' FAILED'))
                if not r['ok']:
                    failures.append(f'train {arch} {precision}')
                results.append(r)
                if device.type == 'cuda':
                    torch.cuda.empty_cache()
        return results

    def run_compile():
        results = []
        for arch in args.compile_archs:
            r = compile_check(arch, device, args.bench_batch, args.size, args.iters,
                              args.compile_backend)
            log(f"  {arch}: compiled vs eager rel err infer {r['infer_rel_err']:.1e}, "
                f"train loss {r['train_loss_rel_err']:.1e}, grads "
                f"{r['train_grad_rel_err']:.1e} {'ok' if r['ok'] else 'FAILED'}; "
                + ', '.join(f'{k} {v:.1f}' for k, v in r.items()
                            if k.endswith('images_per_s')))
            if not r['ok']:
                failures.append(f'compile {arch}')
            results.append(r)
        return results

    def run_throughput():
        precisions = ('fp16', 'bf16') if device.type == 'cuda' else ('bf16', )
        rows = throughput(args.archs, args.baselines, precisions, device, args.steps,
                          args.batch, args.size)
        for row in rows:
            log(f"  {row['arch']} {row['precision']}: {row['images_per_s']:.1f} images/s x "
                f"{row['gmacs_per_image']:.2f} GMACs = {row['gmac_per_s']:.0f} GMAC/s ("
                + ', '.join(f"{row['gmac_per_s_vs_' + b]:.2f}x {b}" for b in args.baselines)
                + ')')
            if not row['losses_finite']:
                failures.append(f"throughput {row['arch']} {row['precision']}: loss not finite")
        return rows

    def run_bench():
        script = shared / 'tools' / 'bench_vs_authors.py'
        if not script.is_file():
            raise FileNotFoundError(f'{script} (give --shared)')
        return bench_vs_authors(script, device, args.bench_batch, args.bench_archs,
                                args.rounds, log)

    section('parity', run_parity)
    section('train', run_train)
    section('compile', run_compile)
    if device.type == 'cuda':
        torch.cuda.empty_cache()
    section('throughput', run_throughput)
    section('bench', run_bench)
    report['failures'] = failures
    report['ok'] = not failures
    report['seconds'] = time.perf_counter() - start
    write(report)
    log(f"gpu_check: {'all checks passed' if not failures else 'FAILED: ' + '; '.join(failures)}"
        f" ({report['seconds']:.0f} s); wrote {out_path}")
    return 0 if not failures else 1
