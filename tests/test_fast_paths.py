"""The models with their optimised implementations compute what the reference models do.

``impl='auto'`` (the per-device selections of hifuse_mm.models.ops, what a model is built
with) against ``impl='reference'`` (the plain layers) on whole narrow HiFuse / HEMF models:
fp32 to 1e-5 (outputs; gradients to :data:`MODEL_FP32_TOL`), bf16 autocast within
:data:`BF16_TOL` of the fp32 reference; then what builds and counts models with either (the
complexity count, the ``HIFUSE_FAST_PATHS`` variable), the speed helpers (autocast, compile
fallback) and the benchmark tool in a short mode. Each op alone: tests/test_model_ops.py.
"""
import copy
import json
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

import hifuse_mm  # noqa: F401
from mmengine.logging import MMLogger
from hifuse_mm.models.ops import selected, use_impl
from hifuse_mm.utils import speed
from helpers import REPO
from tiny_config import NARROW_HIFUSE

#: fp32 outputs: max |auto - reference| <= FP32_TOL * max(1, max |reference|).
FP32_TOL = 1e-5
#: A whole model chains dozens of optimised ops (each checked at FP32_TOL in
#: tests/test_model_ops.py), so the rounding differences of its activations add up; its
#: gradients are compared at twice that.
MODEL_FP32_TOL = 2e-5
#: bf16 autocast (auto) vs fp32 (reference): max |difference| <= BF16_TOL * max |fp32|.
BF16_TOL = 3e-2


def assert_close(a, b, tol=FP32_TOL):
    """Every tensor: max |b - a| <= tol * max(1, max |a|)."""
    a = a if isinstance(a, tuple) else (a, )
    b = b if isinstance(b, tuple) else (b, )
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.shape == y.shape, i
        err = (x.float() - y.float()).abs().max().item()
        assert err <= tol * max(1., x.abs().max().item()), (i, err)


def forward_backward(module, x):
    """Output, input gradient and parameter gradients of ``module``."""
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    out = module(x)
    weight = torch.linspace(-1, 1, out.numel()).view(out.shape)
    (out.float() * weight).sum().backward()
    return (out.detach(), x.grad) + tuple(
        p.grad for p in module.parameters() if p.grad is not None)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# -- whole models -------------------------------------------------------------

SMALL_HIFUSE = dict(
    type='ImageClassifier',
    backbone=dict(type='HiFuse',
                  arch=dict(embed_dims=16, depths=(1, 2, 1, 1),
                            num_heads=(1, 2, 2, 4))),
    neck=dict(type='HFFNeck', in_channels=(16, 32, 64, 128)),
    head=dict(type='LinearClsHead', num_classes=3, in_channels=128))
SMALL_HEMF = dict(
    type='ImageClassifier',
    backbone=dict(type='HEMF',
                  arch=dict(embed_dims=16, num_heads=2,
                            local_depths=(1, 1, 1, 1),
                            global_depths=(2, 1, 1, 1))),
    neck=dict(type='HEFNeck', in_channels=(16, 32, 64, 128)),
    head=dict(type='LinearClsHead', num_classes=3, in_channels=128))


def build(cfg, impl='auto', **neck):
    # init_weights logs every parameter at INFO through the current logger.
    if not MMLogger.check_instance_created('test_fast_paths'):
        MMLogger.get_instance('test_fast_paths', log_level='WARNING')
    model = MODELS.build({**cfg, 'backbone': {**cfg['backbone'], 'impl': impl},
                          'neck': {**cfg['neck'], 'impl': impl, **neck}})
    model.init_weights()
    return model


class Features(nn.Module):
    """The neck's pooled, LayerNorm'd features (what the head sees): O(1)
    values, unlike an untrained head's ~0.1 logits, so a bf16 tolerance
    relative to their scale means something."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.extract_feat(x)[0]


@pytest.mark.parametrize('cfg,neck', [
    (SMALL_HIFUSE, {}),
    (SMALL_HIFUSE, dict(irmlp_depthwise=False)),
    (SMALL_HEMF, {}),
], ids=['hifuse-paper', 'hifuse-released', 'hemf'])
def test_whole_model(cfg, neck):
    model = build(cfg, **neck)
    assert selected(model.backbone) and selected(model.neck)
    features = Features(model)
    # 224 px: HEMF's stage 1 (56x56) reaches the fused / per-image MaSA.
    size = 224 if cfg is SMALL_HEMF else 96
    x = torch.randn(2, 3, size, size)
    model.eval()
    with torch.no_grad():
        fast = features(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = features(x)
        logits = model(x, mode='tensor')
        with use_impl(model, 'reference'):
            plain = features(x)
            plain_logits = model(x, mode='tensor')
    assert_close(plain, fast)
    assert_close(plain_logits, logits)
    err = (low.float() - plain).abs().max().item()
    assert err <= BF16_TOL * plain.abs().max().item(), err
    # Training: the same outputs and gradients from the same state.
    state = copy.deepcopy(model.state_dict())
    model.train()
    fast = forward_backward(features, x)
    model.load_state_dict(state)
    with use_impl(model, 'reference'):
        plain = forward_backward(features, x)
    assert_close(plain, fast, MODEL_FP32_TOL)


def test_backbone_maps_match_and_state_dict_is_unchanged():
    model = build(SMALL_HIFUSE)
    reference = build(SMALL_HIFUSE, impl='reference')
    assert list(model.state_dict()) == list(reference.state_dict())
    reference.load_state_dict(model.state_dict())
    model.eval(), reference.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        fast, plain = model.backbone(x), reference.backbone(x)
    for p_maps, f_maps in zip(plain, fast):
        assert_close(tuple(p_maps), tuple(f_maps))
        assert all(m.is_contiguous(memory_format=torch.channels_last) for m in f_maps)
        assert all(m.is_contiguous() for m in p_maps)
    keys = set(model.state_dict())
    assert 'backbone.global_stages.0.blocks.0.attn.w_msa.qkv.weight' in keys
    assert 'neck.blocks.0.fusion.local_proj.conv.weight' in keys


def test_complexity_counts_the_reference():
    from hifuse_mm.analysis.complexity import model_complexity
    model = build(SMALL_HIFUSE)
    chosen = selected(model)
    fast = model_complexity(model, (64, 64))
    assert selected(model) == chosen  # the selection is restored
    assert model_complexity(build(SMALL_HIFUSE, impl='reference'), (64, 64)) == fast
    assert fast['flops'] > fast['flops_no_attention']


def test_environment_variable_is_read_at_build(monkeypatch):
    monkeypatch.setenv('HIFUSE_FAST_PATHS', '0')
    model = build(SMALL_HIFUSE)
    monkeypatch.delenv('HIFUSE_FAST_PATHS')
    assert selected(model) == {}  # built with the reference: stays so
    assert selected(build(SMALL_HIFUSE))


# -- speed helpers ------------------------------------------------------------


def test_autocast_context():
    lin = nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with speed.autocast_context('cpu', 'bf16'):
        assert lin(x).dtype == torch.bfloat16
    with speed.autocast_context(torch.device('cpu'), 'fp32'):
        assert lin(x).dtype == torch.float32
    assert speed.autocast_dtype('bfloat16') is torch.bfloat16
    assert speed.grad_scaler('cpu', 'bf16') is None
    with pytest.raises(ValueError):
        speed.autocast_context('cpu', 'int8')


def test_maybe_compile_falls_back_to_eager(monkeypatch):
    model = build(SMALL_HIFUSE).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x, mode='tensor')

    def broken_compile(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError('no C++ compiler')
        return run

    monkeypatch.setattr(torch, 'compile', broken_compile)
    keys = list(model.state_dict())
    assert speed.maybe_compile(model) is model
    with pytest.warns(RuntimeWarning, match='no C\\+\\+ compiler'):
        with torch.no_grad():
            out = model(x, mode='tensor')
    assert_close(ref, out)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # warns once only
        with torch.no_grad():
            model(x, mode='tensor')
    assert list(model.state_dict()) == keys
    assert speed.maybe_compile(model, enabled=False) is model


# -- the benchmark tool ---------------------------------------------------------

TINY_CONFIG = """\
_base_ = [{base!r}]
""" + NARROW_HIFUSE


def run_benchmark(tmp_path, *args):
    config = tmp_path / 'tiny.py'
    config.write_text(TINY_CONFIG.format(
        base=str(REPO / 'configs/hifuse/hifuse-tiny_isic2018.py')))
    out = tmp_path / 'result.json'
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools/analysis_tools/benchmark.py'),
         str(config), '--batch-size', '2', '--shape', '64', '--warmup', '1',
         '--iters', '2', '--threads', '2', '--json', str(out), *args],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, json.loads(out.read_text())


def test_benchmark_tool_train_bf16(tmp_path):
    stdout, result = run_benchmark(tmp_path, '--mode', 'train',
                                   '--precision', 'bf16', '--channels-last')
    for word in ('images/s', 'median', 'p90', 'peak memory', 'GFLOP/s',
                 '% of peak'):
        assert word in stdout
    assert result['mode'] == 'train' and result['precision'] == 'bf16'
    assert result['fast'] and result['channels_last']
    assert result['images_per_s'] > 0 and len(result['latencies_ms']) == 2
    assert result['peak_memory_mb'] > 0
    assert result['flops_factor'] == 3
    assert 0 < result['flops_fraction'] < 1


def test_benchmark_tool_compare(tmp_path):
    stdout, results = run_benchmark(tmp_path, '--compare')
    assert [(r['fast'], r['precision']) for r in results] == [
        (False, 'fp32'), (True, 'fp32')]
    assert results[0]['speedup'] == 1.0
    assert '| fp32 no-fast |' in stdout and '| fp32 fast |' in stdout


# -- the GPU check ---------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')
def test_gpu_check_without_cuda_skips(tmp_path, capsys):
    from hifuse_mm.analysis.gpu_check import main
    out = tmp_path / 'gpu.json'
    assert main(['--out', str(out)]) == 0
    assert json.loads(out.read_text())['skipped'] == 'no CUDA device'
    assert 'no CUDA device' in capsys.readouterr().out


def test_gpu_check_smoke_on_the_cpu(tmp_path):
    """The GPU check's steps on the CPU with narrow models: training (losses finite and
    falling), torch.compile against eager (dynamo's eager backend here), throughput against
    narrow MMPretrain Swin and ConvNeXt models, one JSON."""
    from hifuse_mm.analysis.complexity import model_complexity
    from hifuse_mm.analysis.gpu_check import build, main
    out = tmp_path / 'gpu.json'
    code = main(['--out', str(out), '--device', 'cpu', '--archs', 'narrow_hifuse',
                 'narrow_hemf', '--compile-archs', 'narrow_hifuse', '--compile-backend',
                 'eager', '--baselines', 'narrow_swin', 'narrow_convnext', '--size', '32',
                 '--steps', '3', '--batch', '2', '--bench-batch', '2', '--iters', '1',
                 '--skip', 'parity', 'bench'])
    report = json.loads(out.read_text())
    assert code == 0 and report['ok'], report['failures']
    implementations = report['environment']['implementations']
    assert implementations['masa_matmul_low_precision_training'] == 4  # one per stage
    assert [(r['arch'], r['precision']) for r in report['train']] == [
        ('narrow_hifuse', 'bf16'), ('narrow_hemf', 'bf16')]
    for r in report['train']:
        assert len(r['losses']) == 3 and r['finite'] and r['losses'][-1] < r['losses'][0]
    compiled, = report['compile']
    assert compiled['ok'] and compiled['infer_rel_err'] <= 1e-4
    assert compiled['train_fp32_compiled_images_per_s'] > 0
    assert report['parity'] == report['bench'] == 'skipped (--skip)'
    rows = {row['arch']: row for row in report['throughput']}
    assert list(rows) == ['narrow_hifuse', 'narrow_hemf', 'narrow_swin', 'narrow_convnext']
    for arch, row in rows.items():
        macs = model_complexity(build(arch), (32, 32))['flops']
        assert row['gmacs_per_image'] == pytest.approx(macs / 1e9) and macs > 0
        assert row['gmac_per_s'] == pytest.approx(row['images_per_s'] * macs / 1e9)
        for baseline in ('narrow_swin', 'narrow_convnext'):
            assert row[f'gmac_per_s_vs_{baseline}'] == pytest.approx(
                row['gmac_per_s'] / rows[baseline]['gmac_per_s'])
    assert rows['narrow_swin']['gmac_per_s_vs_narrow_swin'] == 1


def test_gpu_check_throughput_compares_within_a_precision():
    """Each model's GMAC/s is divided by the baseline's of the same precision."""
    from hifuse_mm.analysis.gpu_check import throughput
    rows = throughput(['narrow_hemf'], ['narrow_convnext'], ('fp32', 'bf16'),
                      torch.device('cpu'), steps=2, batch=2, size=32)
    assert [(r['arch'], r['precision']) for r in rows] == [
        ('narrow_hemf', 'fp32'), ('narrow_convnext', 'fp32'),
        ('narrow_hemf', 'bf16'), ('narrow_convnext', 'bf16')]
    for row in rows:
        baseline, = (r for r in rows if r['arch'] == 'narrow_convnext'
                     and r['precision'] == row['precision'])
        assert row['gmac_per_s_vs_narrow_convnext'] == pytest.approx(
            row['gmac_per_s'] / baseline['gmac_per_s'])
        assert row['losses_finite']
