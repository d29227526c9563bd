"""Fast paths (hifuse_mm.models.fast_paths) compute what the plain path does.

Each fast path is checked against the plain path on the same module:
fp32 to 1e-5 (:data:`FP32_TOL`; outputs, input gradients and parameter
gradients, in eval and train mode), and bf16 autocast (fast) against fp32
(plain) within :data:`BF16_TOL` (relative to the output's scale). Then
the speed helpers (autocast, compile fallback) and the benchmark tool in a
short mode.
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
from hifuse_mm.models import fast_paths
from hifuse_mm.models.layers import (BatchNorm2d, DepthwiseConv2d, EGFStage,
                                     Im2colConv2d, LayerNorm2d,
                                     ManhattanRelPos2d,
                                     ManhattanSelfAttention,
                                     MultiHeadExternalAttention, PatchMerging2x2,
                                     PointwiseConv2d, WindowAttention)
from hifuse_mm.models.layers.autocast_weights import Linear
from hifuse_mm.models.layers.manhattan_attention import fast_softmax_last_dim
from hifuse_mm.utils import speed
from helpers import REPO
from tiny_config import NARROW_HIFUSE

FAST_PATHS_FILE = REPO / 'hifuse_mm' / 'models' / 'fast_paths.py'
#: fp32: max |fast - plain| <= FP32_TOL * max(1, max |plain|) for outputs
#: and gradients (a parameter's gradient sums thousands of products, so
#: its rounding scales with its size).
FP32_TOL = 1e-5
#: A whole model chains dozens of fast paths (each checked at FP32_TOL), so the
#: rounding differences of its activations add up; its gradients are compared at
#: twice that.
MODEL_FP32_TOL = 2e-5
#: bf16 autocast (fast) vs fp32 (plain): max |difference| <= BF16_TOL * max
#: |fp32 output| (bf16 keeps 8 significant bits: 2^-8 = 0.4% per rounding).
BF16_TOL = 3e-2


def plain_and_fast(fn):
    """``fn()`` with the fast paths off, then on."""
    with fast_paths.fast_paths(False):
        plain = fn()
    with fast_paths.fast_paths(True):
        fast = fn()
    return plain, fast


def assert_close(a, b, tol=FP32_TOL):
    """Every tensor: max |fast - plain| <= 1e-5 * max(1, max |plain|)."""
    a = a if isinstance(a, tuple) else (a, )
    b = b if isinstance(b, tuple) else (b, )
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.shape == y.shape, i
        err = (x.float() - y.float()).abs().max().item()
        assert err <= tol * max(1., x.abs().max().item()), (i, err)


def assert_bf16_close(ref: torch.Tensor, out: torch.Tensor) -> None:
    assert out.dtype in (torch.bfloat16, torch.float32)
    err = (out.float() - ref.float()).abs().max().item()
    assert err <= BF16_TOL * ref.abs().max().item(), err


def forward_backward(module, *inputs, fast=True):
    """Output, input gradients and parameter gradients of ``module``."""
    module.zero_grad(set_to_none=True)
    inputs = [x.detach().clone().requires_grad_() for x in inputs]
    with fast_paths.fast_paths(fast):
        out = module(*inputs)
    out = out[0] if isinstance(out, tuple) else out
    weight = torch.linspace(-1, 1, out.numel()).view(out.shape)
    with fast_paths.fast_paths(fast):
        (out.float() * weight).sum().backward()
    grads = tuple(x.grad for x in inputs) + tuple(
        p.grad for p in module.parameters() if p.grad is not None)
    return (out.detach(), ) + grads


def check_module(module, *inputs, train=True, bf16=True, tol=FP32_TOL):
    """fp32 fast == plain (eval, and train with gradients); bf16 close."""
    module.eval()
    with torch.no_grad():
        plain, fast = plain_and_fast(lambda: module(*inputs))
    assert_close(plain, fast, tol)
    if train:
        # Train mode updates BatchNorm statistics: run both paths from the
        # same state, then restore it.
        state = copy.deepcopy(module.state_dict())
        module.train()
        plain_g = forward_backward(module, *inputs, fast=False)
        module.load_state_dict(state)
        fast_g = forward_backward(module, *inputs, fast=True)
        module.load_state_dict(state)
        assert len(plain_g) == len(fast_g)
        assert_close(plain_g, fast_g, tol)
        module.eval()
    if bf16:
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
            with fast_paths.fast_paths(True):
                low = module(*inputs)
        assert_bf16_close(plain, low)
    return plain, fast


class Call(nn.Module):
    """``module(x, *extra)`` as a one-input module."""

    def __init__(self, module, *extra):
        super().__init__()
        self.module = module
        self.extra = extra

    def forward(self, x):
        out = self.module(x, *self.extra)
        return out[0] if isinstance(out, tuple) else out


def channels_last(*shape):
    return torch.randn(*shape).contiguous(memory_format=torch.channels_last)


@pytest.fixture(autouse=True)
def _seed_and_restore():
    torch.manual_seed(0)
    old = fast_paths.enabled()
    yield
    fast_paths.set_enabled(old)


# -- the switch ---------------------------------------------------------------


def test_switch_default_and_context():
    assert fast_paths.enabled()
    with fast_paths.fast_paths(False):
        assert not fast_paths.enabled()
        with fast_paths.fast_paths(True):
            assert fast_paths.enabled()
        assert not fast_paths.enabled()
    assert fast_paths.enabled()
    with pytest.raises(RuntimeError):
        with fast_paths.fast_paths(False):
            raise RuntimeError
    assert fast_paths.enabled()
    assert fast_paths.set_enabled(False) is True
    assert fast_paths.set_enabled(True) is False


def test_env_var_turns_default_off():
    # The module alone (importing the package would take seconds).
    code = ('import importlib.util as u; '
            f's = u.spec_from_file_location("f", {str(FAST_PATHS_FILE)!r}); '
            'm = u.module_from_spec(s); s.loader.exec_module(m); '
            'print(m.enabled())')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, cwd=REPO,
                         env={'HIFUSE_FAST_PATHS': '0', 'PATH': ''})
    assert out.stdout.strip() == 'False', out.stderr


# -- each fast path -------------------------------------------------------------


@pytest.mark.parametrize('layout', ['nchw', 'channels_last'])
def test_layer_norm_2d(layout):
    norm = LayerNorm2d(24, eps=1e-6)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    x = torch.randn(2, 24, 5, 7)
    if layout == 'channels_last':
        x = x.contiguous(memory_format=torch.channels_last)
    _, fast = check_module(norm, x)
    assert fast.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize('shift,size', [(0, 14), (3, 14), (3, 7), (3, 9)])
def test_window_attention(shift, size):
    attn = WindowAttention(
        embed_dims=32, num_heads=2, window_size=7, shift_size=shift,
        pad_small_map=True)
    attn.init_weights()
    nn.init.normal_(attn.w_msa.relative_position_bias_table)
    check_module(Call(attn, (size, size)), torch.randn(2, size * size, 32))


def test_window_attention_grads_reach_the_bias_table():
    attn = WindowAttention(32, 2, 7, shift_size=3, pad_small_map=True)
    nn.init.normal_(attn.w_msa.relative_position_bias_table)
    attn.train()
    x = torch.randn(2, 14 * 14, 32)
    grads = []
    for flag in (False, True):
        attn.zero_grad()
        with fast_paths.fast_paths(flag):
            attn(x, (14, 14)).square().sum().backward()
        grads.append(attn.w_msa.relative_position_bias_table.grad.clone())
    assert_close(grads[0], grads[1])


def test_patch_merging():
    merge = PatchMerging2x2(16, 32, bias=False)
    nn.init.normal_(merge.norm.weight)
    assert merge(torch.randn(1, 60, 16), (6, 10))[1] == (3, 5)
    check_module(Call(merge, (6, 10)), torch.randn(2, 6 * 10, 16))


def test_pointwise_conv():
    conv = PointwiseConv2d(24, 40)
    _, fast = check_module(conv, channels_last(2, 24, 6, 5))
    assert fast.is_contiguous(memory_format=torch.channels_last)
    check_module(conv, torch.randn(2, 24, 1, 1))  # channel-attention shape
    check_module(conv, torch.randn(2, 24, 6, 5))  # NCHW: nn.Conv2d path


def test_im2col_conv():
    conv = Im2colConv2d(24, 64, 3, padding=1)
    x = channels_last(2, 24, 5, 5)  # 50 pixels < 64 output channels
    assert conv._use_im2col(x)
    check_module(conv, x)
    assert not conv._use_im2col(channels_last(4, 24, 5, 5))


def test_depthwise_conv_bf16_training_runs_fp32():
    conv = DepthwiseConv2d(16, 5)
    x = channels_last(2, 16, 12, 12).requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = conv(x)
        with torch.no_grad():
            assert conv(x).dtype == torch.bfloat16  # inference unchanged
    assert out.dtype == torch.float32
    with fast_paths.fast_paths(False), torch.autocast(
            'cpu', dtype=torch.bfloat16):
        assert conv(x).dtype == torch.bfloat16
    check_module(conv, channels_last(2, 16, 12, 12))


def test_external_attention_double_normalization():
    mhea = MultiHeadExternalAttention(32, num_heads=4, memory_size=16)
    nn.init.normal_(mhea.key_memory.weight, std=0.5)  # a non-uniform softmax
    nn.init.normal_(mhea.value_memory.weight, std=0.5)
    check_module(mhea, channels_last(2, 32, 9, 7))
    check_module(mhea, torch.randn(2, 32, 6, 6))


def _bf16_inference(module, x, fast=True):
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        with fast_paths.fast_paths(fast):
            return module(x)


@pytest.mark.parametrize('make,shape', [
    (lambda: Linear(8, 16), (3, 8)),
    (lambda: PointwiseConv2d(8, 16), (2, 8, 5, 5)),
    (lambda: Im2colConv2d(8, 16, 3, padding=1), (1, 8, 3, 3)),
])
def test_autocast_weight_cache(make, shape):
    """Inference under autocast reuses one cast of the weights; the output is
    bit-identical to autocast's own cast, and any change of the weights (in
    place, load_state_dict, train()/eval()) is seen."""
    module = make().eval()
    x = torch.randn(*shape)
    if x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    ref = _bf16_inference(module, x, fast=False)
    out = _bf16_inference(module, x)
    assert torch.equal(out, ref)
    cached = module._autocast_weights['weight'][1]
    assert cached.dtype == torch.bfloat16
    assert torch.equal(_bf16_inference(module, x), ref)
    assert module._autocast_weights['weight'][1] is cached  # reused
    with torch.no_grad():  # an optimizer step: in place
        module.weight.mul_(-2)
    changed = _bf16_inference(module, x, fast=False)
    assert not torch.equal(changed, ref)
    assert torch.equal(_bf16_inference(module, x), changed)
    module.load_state_dict({k: v * 3 for k, v in module.state_dict().items()})
    assert torch.equal(_bf16_inference(module, x),
                       _bf16_inference(module, x, fast=False))
    module.eval()  # drops the cache (covers writes through .data)
    assert '_autocast_weights' not in module.__dict__
    # Training and autograd neither use nor fill it.
    module.train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        module(x)
    module.eval()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        module(x.requires_grad_())
    assert '_autocast_weights' not in module.__dict__
    assert '_autocast_weights' not in copy.deepcopy(module).__dict__


def test_batch_norm_gradient_layout():
    """Same values and gradients; the BatchNorm backward gets a channels-last gradient even
    when the next op hands back an NCHW one."""
    bn = BatchNorm2d(8)
    nn.init.normal_(bn.weight)
    check_module(bn, channels_last(2, 8, 5, 6))
    x = channels_last(2, 8, 5, 6).requires_grad_()
    for fast in (False, True):
        seen = []
        with fast_paths.fast_paths(fast):
            y = bn(x)
        # Hooks run in order: this one sees the gradient the BatchNorm backward will get.
        y.register_hook(lambda g: seen.append(
            g.is_contiguous(memory_format=torch.channels_last) and not g.is_contiguous()))
        (y.contiguous() * torch.randn(2, 8, 5, 6)).sum().backward()  # hands back NCHW
        assert seen == [fast]


@pytest.mark.parametrize('decomposed,size', [(True, 48), (True, 12),
                                             (False, 8)])
def test_manhattan_self_attention(decomposed, size):
    # 48x48 tokens reach the fused kernel (FUSED_MIN_TOKENS).
    attn = ManhattanSelfAttention(16, 2, decomposed)
    rel_pos = ManhattanRelPos2d(16, 2)((size, size), decomposed)
    check_module(Call(attn, rel_pos), torch.randn(2, size, size, 16))


@pytest.mark.parametrize('length', [7, 28, 32, 56, 64])
def test_masa_bf16_softmax(length):
    """The fast path's bf16 softmax is the bf16 rounding of the fp32 one
    (computed in fp32 where the bf16 kernel is slow) and has torch's bf16
    softmax gradient for that output; in fp32 it is torch.softmax."""
    x = (torch.randn(3, 5, length) * 4).to(torch.bfloat16).requires_grad_()
    out = fast_softmax_last_dim(x)
    assert out.dtype == torch.bfloat16
    ref = torch.softmax(x.float(), -1)
    assert (out.float() - ref).abs().max().item() <= 2**-8
    if length >= 16 and length % 32:
        assert torch.equal(out, ref.to(torch.bfloat16))
    else:
        assert torch.equal(out, torch.softmax(x, -1))
    grad = torch.randn_like(out)
    out.backward(grad)
    expected = torch._softmax_backward_data(grad, out.detach(), -1,
                                            torch.bfloat16)
    assert torch.equal(x.grad, expected)
    y = torch.randn(2, length)
    assert torch.equal(fast_softmax_last_dim(y), torch.softmax(y, -1))


def test_egf_stage_output_layout():
    stage = EGFStage(16, 1, 2)
    x = channels_last(1, 16, 6, 6)
    plain, fast = plain_and_fast(lambda: stage(x))
    assert plain.is_contiguous()
    assert fast.is_contiguous(memory_format=torch.channels_last)
    assert_close(plain, fast)


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


def build(cfg, **neck):
    # init_weights logs every parameter at INFO through the current logger.
    if not MMLogger.check_instance_created('test_fast_paths'):
        MMLogger.get_instance('test_fast_paths', log_level='WARNING')
    model = MODELS.build({**cfg, 'neck': {**cfg['neck'], **neck}})
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
    # 224 px: HEMF's stage 1 (56x56) reaches the fused MaSA kernel.
    size = 224 if cfg is SMALL_HEMF else 96
    x = torch.randn(2, 3, size, size)
    check_module(Features(model), x, tol=MODEL_FP32_TOL)
    model.eval()
    with torch.no_grad():
        plain, fast = plain_and_fast(lambda: model(x, mode='tensor'))
    assert_close(plain, fast)


def test_backbone_maps_match_and_state_dict_is_unchanged():
    model = build(SMALL_HIFUSE)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        plain, fast = plain_and_fast(lambda: model.backbone(x))
    for p_maps, f_maps in zip(plain, fast):
        assert_close(tuple(p_maps), tuple(f_maps))
    keys = set(model.state_dict())
    assert 'backbone.global_stages.0.blocks.0.attn.w_msa.qkv.weight' in keys
    assert 'neck.blocks.0.fusion.local_proj.conv.weight' in keys


def test_complexity_counts_the_plain_path():
    from hifuse_mm.analysis.complexity import model_complexity
    model = build(SMALL_HIFUSE)
    with fast_paths.fast_paths(True):
        on = model_complexity(model, (64, 64))
    with fast_paths.fast_paths(False):
        off = model_complexity(model, (64, 64))
    assert on == off
    assert on['flops'] > on['flops_no_attention']
    assert fast_paths.enabled()


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
