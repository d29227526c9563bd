"""HiFuse backbone + HFF neck: sizes, shapes, flags, parameter counts."""
import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

import hifuse_mm  # noqa: F401
from helpers import check_fusion_shapes
from hifuse_mm.models import HFFNeck, HiFuse
from hifuse_mm.models.layers import ChannelAttention, GlobalBlock, IRMLP

CHANNELS = (96, 192, 384, 768)


def classifier(arch='tiny', num_classes=7, backbone=None, neck=None):
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='HiFuse', arch=arch, **(backbone or {})),
            neck=dict(type='HFFNeck', **(neck or {})),
            head=dict(
                type='LinearClsHead',
                num_classes=num_classes,
                in_channels=768)))


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('arch,depthwise,expected', [
    ('tiny', False, 118_086_497),
    ('small', False, 121_664_273),
    ('base', False, 132_397_601),
    ('tiny', True, 54_673_217),
    ('small', True, 58_250_993),
    ('base', True, 68_984_321),
])
def test_parameter_count(arch, depthwise, expected):
    model = classifier(arch, neck=dict(irmlp_depthwise=depthwise))
    assert n_params(model) == expected


def test_default_is_paper_mode():
    neck = HFFNeck()
    for block, c in zip(neck.blocks, CHANNELS):
        assert block.mlp.spatial_conv.groups == 3 * c
    released = HFFNeck(irmlp_depthwise=False)
    assert all(b.mlp.spatial_conv.groups == 1 for b in released.blocks)
    # Dense minus depthwise 3x3 on 3C channels, per stage.
    diff = sum(9 * (3 * c)**2 - 9 * 3 * c for c in CHANNELS)
    assert n_params(released) - n_params(neck) == diff


@pytest.fixture(scope='module')
def built():
    """``built(arch)``: a 5-class classifier of ``arch`` in eval mode, built once for the sizes
    of test_shapes (they run arch by arch; only the latest model is kept)."""
    models = {}

    def get(arch):
        if arch not in models:
            models.clear()
            models[arch] = classifier(arch, num_classes=5).eval()
        return models[arch]

    return get


@pytest.mark.parametrize('size', [(224, 224), (256, 256), (320, 256)])
@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_shapes(built, arch, size):
    check_fusion_shapes(built(arch), size, CHANNELS, num_classes=5)


def test_depths_by_arch_and_explicit():
    depths = {'tiny': 2, 'small': 6, 'base': 18}
    for arch, d3 in depths.items():
        b = HiFuse(arch=arch)
        assert [len(s) for s in b.local_stages] == [2, 2, d3, 2]
        assert [len(s.blocks) for s in b.global_stages] == [2, 2, d3, 2]
    b = HiFuse(arch=dict(embed_dims=32, depths=(1, 1, 3, 1),
                         num_heads=(1, 2, 4, 8)))
    assert [len(s.blocks) for s in b.global_stages] == [1, 1, 3, 1]
    out = b(torch.randn(1, 3, 64, 64))
    assert out[3][0].shape == (1, 256, 2, 2)


def test_bad_arch_and_input():
    with pytest.raises(KeyError, match='huge'):
        HiFuse(arch='huge')
    with pytest.raises(KeyError, match='num_heads'):
        HiFuse(arch=dict(embed_dims=96, depths=(2, 2, 2, 2)))
    with pytest.raises(ValueError, match='multiples of 32'):
        HiFuse()(torch.randn(1, 3, 100, 100))


def test_never_called_modules_are_not_built():
    names = [n for n, _ in classifier().named_modules()]
    assert not any(n.endswith('norm2') for n in names)
    neck = HFFNeck()
    assert not hasattr(neck.blocks[0].fusion, 'prev_proj')
    assert neck.blocks[0].fusion.norm.normalized_shape == (2 * 96, )
    assert all(
        b.fusion.norm.normalized_shape == (3 * c, )
        for b, c in zip(neck.blocks[1:], CHANNELS[1:]))


def test_double_sigmoid_flag():
    torch.manual_seed(0)
    once = ChannelAttention(32, double_sigmoid=False)
    twice = ChannelAttention(32, double_sigmoid=True)
    twice.load_state_dict(once.state_dict())
    x = torch.randn(2, 32, 5, 5)
    z = once.fc2(torch.relu(once.fc1(x.amax((2, 3), keepdim=True)))) + \
        once.fc2(torch.relu(once.fc1(x.mean((2, 3), keepdim=True))))
    torch.testing.assert_close(once(x), x * torch.sigmoid(z))
    torch.testing.assert_close(twice(x), x * torch.sigmoid(torch.sigmoid(z)))
    neck = HFFNeck(double_sigmoid=True)
    assert all(b.channel_attn.double_sigmoid for b in neck.blocks)


def test_shift_last_stage_flag():
    kept = HiFuse(shift_last_stage=True)
    off = HiFuse(shift_last_stage=False)
    off.load_state_dict(kept.state_dict())

    def shifts(b):
        return [[blk.attn.shift_size for blk in s.blocks]
                for s in b.global_stages]

    assert shifts(kept) == [[0, 3]] * 4
    assert shifts(off) == [[0, 3]] * 3 + [[0, 0]]
    kept.eval(), off.eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        a, b = kept(x), off(x)
    for i in range(3):  # only the last stage changes
        torch.testing.assert_close(a[i][1], b[i][1])
    assert not torch.allclose(a[3][1], b[3][1])


def test_stage4_shift_masks_single_window():
    """At 224 stage 4 is one 7x7 window; the released shift masks 74%."""
    block = GlobalBlock(8, 1, window_size=7, shift=True)
    mask = block.attn.get_attn_mask((7, 7), 7, 3)
    assert mask.shape == (1, 49, 49)
    assert abs((mask != 0).float().mean().item() - 0.740) < 0.005
    assert set(mask.unique().tolist()) == {0.0, -100.0}


def test_drop_path_rates():
    b = HiFuse(arch='small', local_drop_path_rate=0.2,
               global_drop_path_rate=0.3)
    local = [blk.drop_path.drop_prob for s in b.local_stages for blk in s]
    glob = [blk.drop_path.drop_prob for s in b.global_stages
            for blk in s.blocks]
    torch.testing.assert_close(torch.tensor(local),
                               torch.linspace(0, 0.2, 12))
    torch.testing.assert_close(torch.tensor(glob), torch.linspace(0, 0.3, 12))
    neck = HFFNeck(drop_path_rate=0.1)
    assert [blk.drop_path.drop_prob for blk in neck.blocks] == [0.1] * 4
    # Stochastic in training, deterministic in eval.
    model = classifier(backbone=dict(local_drop_path_rate=0.5),
                       neck=dict(drop_path_rate=0.5))
    x = torch.randn(2, 3, 64, 64)
    model.train()
    assert not torch.allclose(model(x, mode='tensor'), model(x, mode='tensor'))
    model.eval()
    torch.testing.assert_close(model(x, mode='tensor'), model(x, mode='tensor'))


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    plain = classifier(arch=dict(embed_dims=32, depths=(1, 1, 2, 1),
                                 num_heads=(1, 2, 4, 8)),
                       neck=dict(in_channels=(32, 64, 128, 256)),
                       num_classes=3)
    plain.head.fc = nn.Linear(256, 3)
    ckpt = classifier(arch=dict(embed_dims=32, depths=(1, 1, 2, 1),
                                num_heads=(1, 2, 4, 8)),
                      backbone=dict(with_cp=True),
                      neck=dict(in_channels=(32, 64, 128, 256), with_cp=True),
                      num_classes=3)
    ckpt.head.fc = nn.Linear(256, 3)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    for m in (plain, ckpt):
        m.train()
        m(x, mode='tensor').sum().backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_ablation_flags():
    local_only = classifier(backbone=dict(with_global_branch=False),
                            neck=dict(with_fusion=False))
    assert not hasattr(local_only.backbone, 'global_stages')
    assert not hasattr(local_only.neck, 'blocks')
    x = torch.randn(1, 3, 64, 64)
    assert local_only(x, mode='tensor').shape == (1, 7)

    plain = HFFNeck(with_attention=False, with_irmlp=False,
                    with_shortcut=False)
    blk = plain.blocks[1]
    assert isinstance(blk.spatial_attn, nn.Identity)
    assert isinstance(blk.channel_attn, nn.Identity)
    assert not isinstance(blk.mlp, IRMLP)
    assert isinstance(HFFNeck().blocks[1].mlp, IRMLP)

    # Shortcut: the output differs exactly by the pooled previous map.
    torch.manual_seed(0)
    with_sc = HFFNeck(in_channels=(32, 64)).eval()
    without = HFFNeck(in_channels=(32, 64), with_shortcut=False).eval()
    without.load_state_dict(with_sc.state_dict())
    maps = [(torch.randn(1, 32, 8, 8), torch.randn(1, 32, 8, 8)),
            (torch.randn(1, 64, 4, 4), torch.randn(1, 64, 4, 4))]
    with torch.no_grad():
        prev = with_sc.blocks[0](*maps[0])
        shortcut = with_sc.blocks[1].fusion.pool(
            with_sc.blocks[1].fusion.prev_proj(prev))
        torch.testing.assert_close(
            with_sc.fuse(maps), without.fuse(maps) + shortcut)


def test_released_init():
    b = HiFuse(arch='tiny')
    b.init_weights()
    conv_std = b.local_stages[3][0].dwconv.weight.std().item()
    assert 0.17 < conv_std < 0.23  # trunc-normal 0.2, as released
    fc = b.global_stages[3].blocks[0].fc
    assert 0.015 < fc.weight.std().item() < 0.025
    assert fc.bias.abs().max().item() == 0


def test_frozen_stages():
    b = HiFuse(arch='tiny', frozen_stages=1)
    b.train()
    for i in range(4):
        params = list(b.local_stages[i].parameters()) + list(
            b.global_stages[i].parameters())
        assert all(p.requires_grad == (i > 1) for p in params), i
        assert b.local_stages[i].training == (i > 1)
    assert not any(p.requires_grad for p in b.patch_embed.parameters())
