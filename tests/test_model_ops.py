"""The optimised implementations (hifuse_mm.models.ops) compute what the reference layers do.

Each implementation of each op is checked against the reference module it replaces, on a copy
with the same parameters: fp32 to 1e-5 (:data:`FP32_TOL`; outputs, input gradients and
parameter gradients, in eval and train mode), and under bf16 autocast against the fp32
reference within :data:`BF16_TOL` (relative to the output's scale). Then the selection: the
table for ``cpu`` and ``cuda`` device types, ``apply_impl`` / ``use_impl``, and, with the
implementations the ``cuda`` device type selects (run on CPU tensors), a forward launches as
many operators for a batch of 16 as for one image (no per-image loops on the GPU path).
Last, ``torch.compile``: no graph breaks in narrow HiFuse / HEMF models (train and eval), and
the compiled model equals the eager one.
"""
import copy
import os

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmpretrain.models.utils import ShiftWindowMSA
from mmpretrain.models.utils.norm import LayerNorm2d as LN2d
from mmpretrain.registry import MODELS
from torch.utils._python_dispatch import TorchDispatchMode

import hifuse_mm  # noqa: F401
from hifuse_mm.models.layers import (EGFStage, ManhattanRelPos2d,
                                     ManhattanSelfAttention,
                                     MultiHeadExternalAttention,
                                     memory_format_of)
from hifuse_mm.models.ops import AUTO, resolve, selected, use_impl
from hifuse_mm.models.ops.conv import OptimisedConv2d
from hifuse_mm.models.ops.drop_in import DropIn
from hifuse_mm.models.ops.selection import DROP_INS, IN_PLACE

#: fp32: max |optimised - reference| <= FP32_TOL * max(1, max |reference|) for outputs and
#: gradients (a parameter's gradient sums many products, so its rounding scales with it).
FP32_TOL = 1e-5
#: bf16 autocast (optimised) vs fp32 (reference): max |difference| <= BF16_TOL * max |fp32|
#: (bf16 keeps 8 significant bits: 2^-8 = 0.4% per rounding).
BF16_TOL = 3e-2

#: Implementations that loop over images or work around a CPU kernel: never selected for
#: CUDA.
CPU_ONLY = {'per_image', 'sdpa_inference', 'matmul', 'im2col', 'fp32_bf16_training',
            'channels_last_grad', 'matmul_low_precision_training'}


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def optimised(module: nn.Module, name: str, device: str = 'cpu') -> nn.Module:
    """A copy of ``module`` whose drop-in runs implementation ``name`` on ``device``."""
    out = copy.deepcopy(module)
    drop_in = DROP_INS[type(module)]
    out.__class__ = drop_in
    out.impls = {device: drop_in.implementations[name]}
    return out


def first(out):
    return out[0] if isinstance(out, tuple) else out


def assert_close(ref, out, tol=FP32_TOL):
    ref = ref if isinstance(ref, tuple) else (ref, )
    out = out if isinstance(out, tuple) else (out, )
    assert len(ref) == len(out)
    for i, (a, b) in enumerate(zip(ref, out)):
        assert a.shape == b.shape, i
        err = (a.float() - b.float()).abs().max().item()
        assert err <= tol * max(1., a.abs().max().item()), (i, err)


def forward_backward(module, *inputs):
    """Output, input gradients and parameter gradients of ``module``."""
    module.zero_grad(set_to_none=True)
    inputs = [x.detach().clone().requires_grad_() for x in inputs]
    out = first(module(*inputs))
    weight = torch.linspace(-1, 1, out.numel()).view(out.shape)
    (out.float() * weight).sum().backward()
    grads = tuple(x.grad for x in inputs) + tuple(
        p.grad for p in module.parameters() if p.grad is not None)
    return (out.detach(), ) + grads


def check(reference, fast, *inputs, train=True, bf16=True, tol=FP32_TOL):
    """fp32: ``fast`` == ``reference`` (eval; train with gradients); bf16 close."""
    reference.eval(), fast.eval()
    with torch.no_grad():
        ref, out = first(reference(*inputs)), first(fast(*inputs))
    assert_close(ref, out, tol)
    if bf16:
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
            low = first(fast(*inputs))
        assert low.dtype in (torch.bfloat16, torch.float32)
        err = (low.float() - ref.float()).abs().max().item()
        assert err <= BF16_TOL * ref.abs().max().item(), err
    if train:
        reference.train(), fast.train()
        ref_g, out_g = forward_backward(reference, *inputs), forward_backward(fast, *inputs)
        assert len(ref_g) == len(out_g)
        assert_close(ref_g, out_g, tol)
        reference.eval(), fast.eval()
    return ref, out


class Call(nn.Module):
    """``module(x, *extra)`` as a one-input module."""

    def __init__(self, module, *extra):
        super().__init__()
        self.module = module
        self.extra = extra

    def forward(self, x):
        return first(self.module(x, *self.extra))


def channels_last(*shape):
    return torch.randn(*shape).contiguous(memory_format=torch.channels_last)


# -- each op ----------------------------------------------------------------------------


@pytest.mark.parametrize('layout', ['nchw', 'channels_last'])
def test_layer_norm_2d(layout):
    norm = LN2d(24, eps=1e-6)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    x = torch.randn(2, 24, 5, 7)
    if layout == 'channels_last':
        x = x.contiguous(memory_format=torch.channels_last)
    ref, out = check(norm, optimised(norm, 'channels_last'), x)
    assert ref.is_contiguous()
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize('impl', ['sdpa', 'sdpa_inference'])
@pytest.mark.parametrize('shift,size', [(0, 14), (3, 14), (3, 7), (3, 9)])
def test_window_attention(impl, shift, size):
    attn = ShiftWindowMSA(32, 2, 7, shift_size=shift, pad_small_map=True)
    attn.init_weights()
    nn.init.normal_(attn.w_msa.relative_position_bias_table)
    fast = optimised(attn, impl)
    # The bias table's gradient is among the parameter gradients compared.
    check(Call(attn, (size, size)), Call(fast, (size, size)),
          torch.randn(2, size * size, 32))


def test_conv_op_by_shape():
    ops = {
        'pointwise_conv': nn.Conv2d(8, 16, 1),
        'dense_conv': nn.Conv2d(8, 16, 3, padding=1),
        'depthwise_conv': nn.Conv2d(8, 8, 5, padding=2, groups=8),
        None: nn.Conv2d(8, 16, 4, stride=4),
    }
    for op, conv in ops.items():
        assert OptimisedConv2d.op_of(conv) == op
    assert OptimisedConv2d.op_of(nn.Conv2d(8, 8, 3, padding=1, groups=8)) is None
    assert OptimisedConv2d.op_of(nn.Conv2d(8, 16, 3)) is None  # not 'same' padding


def test_pointwise_conv():
    conv = nn.Conv2d(24, 40, 1)
    fast = optimised(conv, 'matmul')
    _, out = check(conv, fast, channels_last(2, 24, 6, 5))
    assert out.is_contiguous(memory_format=torch.channels_last)
    check(conv, fast, torch.randn(2, 24, 1, 1))  # the channel-attention shape
    check(conv, fast, torch.randn(2, 24, 6, 5))  # NCHW: nn.Conv2d's convolution


def test_im2col_conv():
    conv = nn.Conv2d(24, 64, 3, padding=1)
    fast = optimised(conv, 'im2col')
    check(conv, fast, channels_last(2, 24, 5, 5))  # 50 pixels < 64 output channels: im2col
    check(conv, fast, channels_last(4, 24, 5, 5))  # 100 >= 64: the convolution
    for batch, im2col in ((2, True), (4, False)):
        with CountOps() as ops, torch.no_grad():
            fast.eval()(channels_last(batch, 24, 5, 5))
        assert any('convolution' in name for name in ops.names) != im2col, ops.names


def test_depthwise_conv_bf16_training_runs_fp32():
    conv = nn.Conv2d(16, 16, 5, padding=2, groups=16)
    fast = optimised(conv, 'fp32_bf16_training')
    x = channels_last(2, 16, 12, 12).requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        assert fast(x).dtype == torch.float32
        assert conv(x).dtype == torch.bfloat16
        with torch.no_grad():
            assert fast(x).dtype == torch.bfloat16  # inference unchanged
    check(conv, fast, channels_last(2, 16, 12, 12))


def test_batch_norm_gradient_layout():
    """Same values and gradients; the BatchNorm backward gets a channels-last gradient even
    when the next op hands back an NCHW one."""
    bn = nn.BatchNorm2d(8)
    nn.init.normal_(bn.weight)
    fast = optimised(bn, 'channels_last_grad')
    check(bn, fast, channels_last(2, 8, 5, 6))
    x = channels_last(2, 8, 5, 6).requires_grad_()
    for module, expected in ((bn, False), (fast, True)):
        seen = []
        y = module.train()(x)
        # Hooks run in order: this one sees the gradient the BatchNorm backward will get.
        y.register_hook(lambda g: seen.append(
            g.is_contiguous(memory_format=torch.channels_last) and not g.is_contiguous()))
        (y.contiguous() * torch.randn(2, 8, 5, 6)).sum().backward()  # hands back NCHW
        assert seen == [expected]


@pytest.mark.parametrize('impl', ['double_norm', 'per_image'])
def test_external_attention(impl):
    mhea = MultiHeadExternalAttention(32, num_heads=4, memory_size=16)
    nn.init.normal_(mhea.key_memory.weight, std=0.5)  # a non-uniform softmax
    nn.init.normal_(mhea.value_memory.weight, std=0.5)
    fast = optimised(mhea, impl)
    check(mhea, fast, channels_last(2, 32, 9, 7))
    check(mhea, fast, torch.randn(2, 32, 6, 6))


@pytest.mark.parametrize('impl', ['sdpa', 'matmul_low_precision_training'])
@pytest.mark.parametrize('decomposed,size', [(True, 48), (True, 12), (False, 8)])
def test_manhattan_self_attention(impl, decomposed, size):
    attn = ManhattanSelfAttention(16, 2, decomposed)
    rel_pos = ManhattanRelPos2d(16, 2)((size, size), decomposed)
    check(Call(attn, rel_pos), Call(optimised(attn, impl), rel_pos),
          torch.randn(2, size, size, 16))


def test_manhattan_self_attention_low_precision_training():
    """matmul_low_precision_training: under bf16 autocast with autograd, the reference's
    matmuls (no fused attention) with the masks in bf16; output and input gradient within
    bf16's tolerance of the fp32 reference; without autograd, fused attention."""
    attn = ManhattanSelfAttention(16, 2, True)
    rel_pos = ManhattanRelPos2d(16, 2)((12, 12), True)
    fast = optimised(attn, 'matmul_low_precision_training')
    x = torch.randn(2, 12, 12, 16)
    ref_out, ref_grad = forward_backward(Call(attn, rel_pos), x)[:2]
    with torch.autocast('cpu', dtype=torch.bfloat16), CountOps() as ops:
        out, grad = forward_backward(Call(fast, rel_pos), x)[:2]
    assert out.dtype == torch.bfloat16
    assert not any('scaled_dot_product' in name for name in ops.names), ops.names
    for a, b in ((ref_out, out), (ref_grad, grad)):
        err = (a.float() - b.float()).abs().max().item()
        assert err <= BF16_TOL * a.abs().max().item(), err
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16), CountOps() as ops:
        fast(x, rel_pos)
    assert any('scaled_dot_product' in name for name in ops.names), ops.names


def test_egf_stage_keeps_the_memory_format():
    stage = EGFStage(16, 1, 2).eval()
    x = torch.randn(1, 16, 6, 6)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    assert memory_format_of(x) == torch.contiguous_format
    assert memory_format_of(x_cl) == torch.channels_last
    assert memory_format_of(torch.randn(2, 16, 1, 1)) == torch.contiguous_format
    with torch.no_grad():
        out, out_cl = stage(x), stage(x_cl)
    assert out.is_contiguous()
    assert out_cl.is_contiguous(memory_format=torch.channels_last)
    assert_close(out, out_cl)


# -- selection ----------------------------------------------------------------------------


def test_selection_table_for_cpu_and_cuda(monkeypatch):
    monkeypatch.delenv('HIFUSE_FAST_PATHS', raising=False)
    assert resolve('auto') == AUTO
    assert resolve('reference') == {}
    cpu, cuda = resolve('cpu'), resolve('cuda')
    assert cpu == {op: {'cpu': row['cpu'], 'cuda': row['cpu']}
                   for op, row in AUTO.items() if 'cpu' in row}
    # On CUDA: no per-image loops or CPU-kernel work-arounds; the batched paths (fused
    # attention, the convolutions as they are).
    cuda_names = {row['cuda'] for row in cuda.values()}
    assert not cuda_names & CPU_ONLY, cuda_names & CPU_ONLY
    assert AUTO['window_attention']['cuda'] == 'sdpa'
    assert AUTO['masa']['cuda'] == 'sdpa'
    # Every name in the table is an implementation its op has.
    by_op = {cls.op: cls.implementations for cls in DROP_INS.values() if cls.op}
    by_op.update(dict.fromkeys(('pointwise_conv', 'dense_conv', 'depthwise_conv'),
                               OptimisedConv2d.implementations))
    assert set(by_op) == set(AUTO)
    for op, row in AUTO.items():
        assert set(row.values()) <= set(by_op[op]), op
        assert set(IN_PLACE.get(op, {})) <= set(by_op[op]), op
    with pytest.raises(ValueError, match='impl must be one of'):
        resolve('fast')
    # HIFUSE_FAST_PATHS=0 makes 'auto' the reference, read when a model is built.
    monkeypatch.setenv('HIFUSE_FAST_PATHS', '0')
    assert resolve('auto') == {}
    assert resolve('cuda') == cuda


def narrow(family: str, **backbone):
    """A narrow HiFuse / HEMF classifier (16-128 channels, one block per stage)."""
    if not MMLogger.check_instance_created('test_model_ops'):
        MMLogger.get_instance('test_model_ops', log_level='WARNING')
    if family == 'hifuse':
        arch = dict(embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 4))
        neck = 'HFFNeck'
    else:
        arch = dict(embed_dims=16, num_heads=2, local_depths=(1, 1, 1, 1),
                    global_depths=(1, 1, 1, 1))
        neck = 'HEFNeck'
    model = MODELS.build(dict(
        type='ImageClassifier',
        backbone=dict(type='HiFuse' if family == 'hifuse' else 'HEMF', arch=arch,
                      **backbone),
        neck=dict(type=neck, in_channels=(16, 32, 64, 128)),
        head=dict(type='LinearClsHead', num_classes=3, in_channels=128)))
    model.init_weights()
    return model


@pytest.mark.parametrize('family', ['hifuse', 'hemf'])
def test_apply_and_use_impl(family):
    model = narrow(family)
    keys = list(model.state_dict())
    params = sum(p.numel() for p in model.parameters())
    auto = selected(model)
    assert auto['backbone'] == {'cpu': 'channels_last_input', 'cuda': 'channels_last_input'}
    # Built on the CPU, chosen per device type once: nothing CPU-only on CUDA.
    for name, entry in auto.items():
        assert not any(part in entry.get('cuda', '') for part in
                       ('per_image', 'inference')), name
    classes = [type(m) for m in model.modules()]
    with use_impl(model, 'reference'):
        assert selected(model) == {}
        assert not any(isinstance(m, DropIn) for m in model.modules())
        assert list(model.state_dict()) == keys
    assert [type(m) for m in model.modules()] == classes
    assert selected(model) == auto
    with use_impl(model.backbone, 'cuda'):
        forced = selected(model.backbone)  # the cuda column on every device type
        assert forced and all(e['cpu'] == e['cuda'] for e in forced.values()), forced
        assert not any(e['cpu'].endswith(tuple(CPU_ONLY)) for e in forced.values()), forced
    assert selected(model) == auto
    reference = narrow(family, impl='reference')
    assert sum(p.numel() for p in reference.parameters()) == params
    assert list(reference.state_dict()) == keys
    assert selected(reference.backbone) == {}
    # Same init whatever the implementations.
    torch.manual_seed(0)
    a = narrow(family)
    torch.manual_seed(0)
    b = narrow(family, impl='reference')
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), k
    with pytest.raises(ValueError):
        narrow(family, impl='fast')


# -- no per-image loops on the CUDA path ---------------------------------------------------


class CountOps(TorchDispatchMode):
    """Counts the aten operators run while active."""

    def __init__(self):
        super().__init__()
        self.names = []

    @property
    def total(self):
        return len(self.names)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


#: What ``reshape`` runs depends on whether a view is possible, which a batch of one
#: image changes (its batch stride does not matter): a view, or a copy and a view.
RESHAPE_OPS = ('aten.view', 'aten._unsafe_view', 'aten.clone')


def _count(model, batch, size, skip=()):
    x = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        model(x, mode='tensor')  # warm-up: cached window plans
        with CountOps() as ops:
            model(x, mode='tensor')
    return sum(name not in skip for name in ops.names)


@pytest.mark.parametrize('family', ['hifuse', 'hemf'])
def test_cuda_path_op_count_does_not_grow_with_the_batch(family):
    model = narrow(family).eval()
    with use_impl(model, 'cuda'):
        one, sixteen = (_count(model, b, 64, RESHAPE_OPS) for b in (1, 16))
        assert one == sixteen, (one, sixteen)
        two, sixteen = (_count(model, b, 64) for b in (2, 16))
        assert two == sixteen, (two, sixteen)
    # HEMF's CPU selections do loop over images (external attention in inference): the count
    # tells; HiFuse's CPU column has no per-image path.
    with use_impl(model, 'cpu'):
        counts = [_count(model, b, 64, RESHAPE_OPS) for b in (16, 1)]
    assert counts[0] > counts[1] if family == 'hemf' else counts[0] == counts[1], counts


# -- torch.compile ---------------------------------------------------------------------------


def _graph_breaks(model, x, train):
    model.train(train)
    torch._dynamo.reset()
    with torch.set_grad_enabled(train):
        explained = torch._dynamo.explain(lambda x: model(x, mode='tensor'))(x)
    torch._dynamo.reset()
    assert explained.graph_count == 1
    return [b.reason for b in explained.break_reasons]


@pytest.mark.parametrize('family', ['hifuse', 'hemf'])
def test_compile(family):
    """No graph breaks (torch._dynamo.explain) with the CPU selections in eval and the CUDA
    ones in training; then a training step compiled with the CPU selections, whole-graph
    (``fullgraph=True``: a graph break would raise), through dynamo and AOTAutograd (the
    ``aot_eager`` backend: the graph, its decompositions and the backward inductor would
    compile, without the C++ build), equals eager to 1e-4 in fp32, outputs and gradients."""
    model = narrow(family)
    x = torch.randn(2, 3, 32, 32)
    with use_impl(model, 'cpu'):
        assert _graph_breaks(model, x, train=False) == []
    with use_impl(model, 'cuda'):
        assert _graph_breaks(model, x, train=True) == []
    model.train()
    state = copy.deepcopy(model.state_dict())
    eager = forward_backward(Call(model), x)
    model.load_state_dict(state)
    compiled = torch.compile(Call(model), backend='aot_eager', fullgraph=True)
    out = forward_backward(compiled, x)
    torch._dynamo.reset()
    assert_close(eager, out, 1e-4)


@pytest.mark.skipif(not os.environ.get('HIFUSE_COMPILE_TESTS'),
                    reason="inductor's C++ build of the four graphs takes many minutes on a "
                    'small CPU; set HIFUSE_COMPILE_TESTS=1 (tools/analysis_tools/gpu_check.py '
                    'compiles on CUDA)')
@pytest.mark.parametrize('family', ['hifuse', 'hemf'])
def test_inductor_equals_eager(family):
    model = narrow(family)
    x = torch.randn(2, 3, 64, 64)
    for train in (False, True):
        model.train(train)
        state = copy.deepcopy(model.state_dict())
        with torch.set_grad_enabled(train):
            eager = forward_backward(Call(model), x) if train else Call(model)(x)
            model.load_state_dict(state)
            torch._dynamo.reset()
            compiled = torch.compile(Call(model), fullgraph=True)
            out = forward_backward(compiled, x) if train else compiled(x)
        assert_close(eager, out, 1e-4)
    torch._dynamo.reset()
