"""HEMF backbone + HEF neck: sizes, shapes, flags, counts, converter."""
import math

import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

import hifuse_mm  # noqa: F401
from helpers import check_fusion_shapes
from hifuse_mm.converters import ConversionError, convert_official
from hifuse_mm.models import HEFNeck, HEMF
from hifuse_mm.models.layers import (ELFBlock, EGFStage, ManhattanRelPos2d,
                                     ManhattanSelfAttention, MixedAttention,
                                     MultiHeadExternalAttention, SIRMLP)
from parity_utils import PARITY_DIR, generate_state_dict

CHANNELS = (96, 192, 384, 768)
RELEASED_PARAMS = 66_678_263  # whole classifier, 7 classes
# Dense minus depthwise SIRMLP 3x3 (on C channels), summed over the stages.
DW_SAVING = sum(9 * c * c - 9 * c for c in CHANNELS)
# A narrow, shallow HEMF for fast checks.
SMALL = dict(
    embed_dims=16, num_heads=2, local_depths=(1, 1, 1, 1),
    global_depths=(2, 1, 1, 1))


def classifier(num_classes=7, backbone=None, neck=None, in_channels=768):
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='HEMF', **(backbone or {})),
            neck=dict(type='HEFNeck', **(neck or {})),
            head=dict(
                type='LinearClsHead',
                num_classes=num_classes,
                in_channels=in_channels)))


def small_classifier(backbone=None, neck=None, num_classes=3):
    return classifier(
        num_classes,
        backbone=dict(arch=SMALL, **(backbone or {})),
        neck=dict(in_channels=(16, 32, 64, 128), **(neck or {})),
        in_channels=128)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope='module')
def released():
    return classifier().eval()


# -- sizes ------------------------------------------------------------------


def test_parameter_count(released):
    assert n_params(released) == RELEASED_PARAMS
    dw = classifier(neck=dict(sirmlp_depthwise=True))
    assert n_params(dw) == RELEASED_PARAMS - DW_SAVING == 59_640_983


def test_stage_parameter_counts(released):
    """Architecture spec section 3.6 (HEF minus never-called modules)."""
    b, neck = released.backbone, released.neck
    local = [n_params(b.local_downsamples[i]) + n_params(b.local_stages[i])
             for i in range(4)]
    glob = [n_params(b.global_downsamples[i]) + n_params(b.global_stages[i])
            for i in range(4)]
    assert local == [378_912, 1_559_424, 6_215_424, 24_817_152]
    assert glob == [152_448, 645_696, 2_544_768, 10_103_040]
    # SIRMLP: paper Table 3, "SIR" column (0.185 / 0.739 / 2.952 / 11.802 M).
    assert [n_params(blk.mlp) for blk in neck.blocks] == [
        184_992, 738_624, 2_951_808, 11_801_856]
    assert [n_params(blk) for blk in neck.blocks] == [
        229_636, 962_308, 3_822_916, 15_239_620]
    # Per ELF block 10C^2 + 14C; per EGF sub-layer 5C^2 + 31C, + 4C / stage.
    for i, c in enumerate(CHANNELS):
        assert n_params(b.local_stages[i][0]) == 10 * c * c + 14 * c
        assert n_params(b.global_stages[i]) == 3 * (5 * c * c + 31 * c) + 4 * c


def test_flops_match_reference(released):
    """fvcore on the authors' class: 10.27 G; paper (thop): 10.01 G."""
    from hifuse_mm.analysis.complexity import model_complexity

    result = model_complexity(released)
    assert result['params'] == RELEASED_PARAMS
    assert result['flops'] / 1e9 == pytest.approx(10.27, rel=0.02)
    assert result['flops_no_attention'] / 1e9 == pytest.approx(10.01, rel=0.02)
    # Decomposed MaSA matmuls: 2 * HW * (H + W) * C per sub-layer (rows
    # and columns, q k^T and attn v), 3 sub-layers per stage.
    sides = (56, 28, 14, 7)
    attention = sum(3 * 2 * s * s * (2 * s) * c
                    for s, c in zip(sides, CHANNELS))
    assert result['flops'] - result['flops_no_attention'] == attention


@pytest.mark.parametrize('size', [(224, 224), (256, 256), (320, 256)])
def test_shapes(released, size):
    check_fusion_shapes(released, size, CHANNELS, num_classes=7)


def test_bad_arch_and_input():
    with pytest.raises(KeyError, match='huge'):
        HEMF(arch='huge')
    with pytest.raises(KeyError, match='depth'):
        HEMF(arch=dict(depth=3))
    with pytest.raises(ValueError, match='one entry per stage'):
        HEMF(decomposed_masa=(True, False))
    with pytest.raises(ValueError, match='at least one branch'):
        HEMF(with_local_branch=False, with_global_branch=False)
    with pytest.raises(ValueError, match='multiples of 32'):
        HEMF(arch=SMALL)(torch.randn(1, 3, 100, 96))


def test_never_called_modules_are_not_built():
    neck = HEFNeck()
    assert not hasattr(neck.blocks[0].fusion, 'prev_proj')
    assert neck.blocks[0].fusion.norm.normalized_shape == (2 * 96, )
    assert all(
        b.fusion.norm.normalized_shape == (3 * c, )
        for b, c in zip(neck.blocks[1:], CHANNELS[1:]))
    # One LayerNorm per Mixed Attention, two per EGF stage.
    attn = neck.blocks[0].local_attn
    assert sum(isinstance(m, nn.LayerNorm) for m in attn.modules()) == 1
    stage = HEMF(arch=SMALL).global_stages[0]
    assert sum(isinstance(m, nn.LayerNorm) for m in stage.modules()) == 2


# -- blocks -----------------------------------------------------------------


def test_elf_block_formula():
    torch.manual_seed(0)
    blk = ELFBlock(8).eval()
    x = torch.randn(2, 8, 5, 6)
    y = blk.conv(x)
    y = nn.functional.layer_norm(y.permute(0, 2, 3, 1), (8, ),
                                 blk.norm.weight, blk.norm.bias, 1e-6)
    y = blk.dwconv(y.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    y = nn.functional.gelu(blk.pwconv(y)).permute(0, 3, 1, 2)
    torch.testing.assert_close(blk(x), x + y)


def test_rel_pos_buffers():
    """RMT's schedule with HEMF's values (architecture spec section 3.3)."""
    pos = ManhattanRelPos2d(96, 8)
    assert set(dict(pos.named_buffers())) == {'angle', 'decay'}
    assert not list(pos.parameters())
    assert set(pos.state_dict()) == {'angle', 'decay'}  # persistent
    half = 1 / 10000**torch.linspace(0, 1, 6)
    torch.testing.assert_close(pos.angle, half.repeat_interleave(2))
    torch.testing.assert_close(
        pos.decay[:3], torch.tensor([-0.6931, -0.4870, -0.3528]), atol=1e-4,
        rtol=0)
    gamma = torch.exp(pos.decay)
    torch.testing.assert_close(gamma[-1], torch.tensor(0.9190), atol=1e-4,
                               rtol=0)
    # Same schedule in every stage; another init/range changes it.
    torch.testing.assert_close(ManhattanRelPos2d(768, 8).decay, pos.decay)
    other = ManhattanRelPos2d(96, 8, initial_value=2, heads_range=4)
    assert not torch.allclose(other.decay, pos.decay)
    # Masks: decay * |i - j| per axis, or * Manhattan distance over tokens.
    rp = pos((3, 4), decomposed=True)
    assert rp.sin.shape == (3, 4, 12)
    mask_h, mask_w = rp.masks
    assert mask_h.shape == (8, 3, 3) and mask_w.shape == (8, 4, 4)
    torch.testing.assert_close(mask_w[:, 0, 3], 3 * pos.decay)
    (mask, ) = pos((3, 4), decomposed=False).masks
    assert mask.shape == (8, 12, 12)
    # token 1 = (0, 1), token 11 = (2, 3): distance 2 + 2.
    torch.testing.assert_close(mask[:, 1, 11], 4 * pos.decay)


def _rotate(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Reference RoPE on [..., H, W, d]: complex rotation of channel pairs
    by the flattened token index times the pair's angle."""
    h, w, d = x.shape[-3:]
    index = torch.arange(h * w, dtype=torch.float).reshape(h, w, 1)
    phase = torch.polar(torch.ones(h, w, d // 2), index * angle[0::2])
    z = torch.view_as_complex(x.reshape(*x.shape[:-1], d // 2, 2).contiguous())
    return torch.view_as_real(z * phase).flatten(-2)


def _masa_reference(attn, pos, x, decomposed):
    """Eq. 3 as written: softmax weights times gamma^distance, renormalised."""
    b, h, w, c = x.shape
    heads, d = attn.num_heads, attn.head_dim

    def split(t):
        return t.reshape(b, h, w, heads, d).permute(0, 3, 1, 2, 4)

    q = _rotate(split(attn.q_proj(x)), pos.angle)
    k = _rotate(split(attn.k_proj(x)) * d**-0.5, pos.angle)
    v = split(attn.v_proj(x))
    gamma = pos.decay.exp()

    def weights(logits, dist):  # logits [B, heads, ..., n, n]
        g = gamma.reshape(-1, *[1] * (logits.dim() - 2))
        p = torch.softmax(logits, -1) * g**dist
        return p / p.sum(-1, keepdim=True)

    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing='ij')
    if decomposed:
        dw = (xs[0][:, None] - xs[0][None, :]).abs().float()
        dh = (ys[:, 0][:, None] - ys[:, 0][None, :]).abs().float()
        a = weights(torch.einsum('bnyxd,bnyzd->bnyxz', q, k), dw)
        rows = torch.einsum('bnyxz,bnyzd->bnyxd', a, v)
        a = weights(torch.einsum('bnyxd,bnzxd->bnxyz', q, k), dh)
        out = torch.einsum('bnxyz,bnzxd->bnyxd', a, rows)
    else:
        yy, xx = ys.flatten(), xs.flatten()
        dist = ((yy[:, None] - yy[None]).abs() +
                (xx[:, None] - xx[None]).abs()).float()
        qf, kf, vf = (t.flatten(2, 3) for t in (q, k, v))
        a = weights(qf @ kf.transpose(-1, -2), dist)
        out = (a @ vf).reshape(b, heads, h, w, d)
    out = out.permute(0, 2, 3, 1, 4).reshape(b, h, w, c)
    lepe = attn.lepe(attn.v_proj(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    return attn.out_proj(out + lepe)


@pytest.mark.parametrize('decomposed', [True, False])
def test_manhattan_attention_matches_eq3(decomposed):
    torch.manual_seed(0)
    attn = ManhattanSelfAttention(16, 2, decomposed=decomposed)
    pos = ManhattanRelPos2d(16, 2)
    x = torch.randn(2, 3, 5, 16)  # non-square
    with torch.no_grad():
        ours = attn(x, pos((3, 5), decomposed))
        ref = _masa_reference(attn, pos, x, decomposed)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)


def test_egf_stage_post_norm_and_position_once():
    torch.manual_seed(0)
    stage = EGFStage(16, depth=3, num_heads=2).eval()
    calls = []
    stage.rel_pos.register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(1, 16, 4, 6)
    with torch.no_grad():
        out = stage(x)
        assert len(calls) == 1  # position terms once per stage
        t = x.permute(0, 2, 3, 1)
        rel_pos = stage.rel_pos((4, 6), True)
        for attn, fc in zip(stage.attns, stage.fcs):
            t = stage.norm1(t + attn(t, rel_pos))
            t = stage.norm2(t + fc(t))
    torch.testing.assert_close(out, t.permute(0, 3, 1, 2))


def test_external_attention():
    torch.manual_seed(0)
    mhea = MultiHeadExternalAttention(32, num_heads=8, memory_size=16)
    # Memories shared by the heads, no bias, released init N(0, 0.001^2).
    assert mhea.key_memory.weight.shape == (16, 4)
    assert mhea.key_memory.bias is None and mhea.value_memory.bias is None
    big = MultiHeadExternalAttention(768)
    assert 0.0009 < big.key_memory.weight.std().item() < 0.0011
    nn.init.normal_(mhea.key_memory.weight)
    x = torch.randn(2, 32, 3, 5)  # non-square works
    out = mhea(x)
    tokens = x.reshape(2, 8, 4, 15).transpose(-1, -2)  # [B, heads, N, d]
    attn = torch.softmax(tokens @ mhea.key_memory.weight.T, dim=2)
    attn = attn / attn.sum(-1, keepdim=True)
    ref = (attn @ mhea.value_memory.weight.T).transpose(-1, -2)
    torch.testing.assert_close(out, ref.reshape(2, 32, 3, 5))
    # No positional dependence: permuting the tokens permutes the output.
    perm = torch.randperm(15)
    flat = x.flatten(2)[..., perm].reshape(2, 32, 5, 3)
    torch.testing.assert_close(
        mhea(flat).flatten(2), out.flatten(2)[..., perm])


def test_mixed_attention_order_and_shared_norm():
    torch.manual_seed(0)
    ma = MixedAttention(32).eval()
    nn.init.normal_(ma.mhea.key_memory.weight)
    nn.init.normal_(ma.mhea.value_memory.weight)
    x = torch.randn(2, 32, 4, 6)
    with torch.no_grad():
        y = ma.norm(x)
        y = ma.norm(y * ma.mhea(y))
        mean_max = torch.cat(
            [y.mean(1, keepdim=True), y.amax(1, keepdim=True)], 1)
        y = y * torch.sigmoid(ma.spatial_attn.conv(mean_max))
        y = ma.channel_attn(y)
        torch.testing.assert_close(ma(x), y)
    assert isinstance(ma.spatial_attn.bn, nn.Identity)  # no BN, as released
    assert ma.spatial_attn.pool_order == ('mean', 'max')
    assert ma.channel_attn.fc1.out_channels == 2  # ratio 16


# -- flags ------------------------------------------------------------------


def test_sirmlp_depthwise_flag():
    dense, dw = HEFNeck(), HEFNeck(sirmlp_depthwise=True)
    for d, w, c in zip(dense.blocks, dw.blocks, CHANNELS):
        assert isinstance(d.mlp, SIRMLP)
        assert d.mlp.irmlp.spatial_conv.groups == 1
        assert w.mlp.irmlp.spatial_conv.groups == c
        assert d.mlp.squeeze.conv.in_channels == 3 * c
        assert d.mlp.irmlp.expand.out_channels == 4 * c  # 4x the squeezed C
    assert n_params(dense) - n_params(dw) == DW_SAVING


def test_heads_per_stage_flag():
    heads = (4, 4, 8, 16)
    b = HEMF(arch=dict(num_heads=heads))
    ref = HEMF()
    assert n_params(b) == n_params(ref)  # heads change no parameter
    for stage, n, c in zip(b.global_stages, heads, CHANNELS):
        assert all(a.num_heads == n for a in stage.attns)
        assert stage.rel_pos.angle.shape == (c // n, )
        assert stage.rel_pos.decay.shape == (n, )
    params = {k: v for k, v in ref.state_dict().items()
              if not k.endswith(('.angle', '.decay'))}
    missing, unexpected = b.load_state_dict(params, strict=False)
    assert all(k.endswith(('.angle', '.decay')) for k in missing)
    assert not unexpected
    b.eval(), ref.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours, theirs = b(x), ref(x)
    torch.testing.assert_close(ours[0][0], theirs[0][0])  # local: unchanged
    assert not torch.allclose(ours[0][1], theirs[0][1])  # global: changed


def test_decomposed_masa_flag():
    full = HEMF(arch=SMALL, decomposed_masa=(True, True, False, False))
    dec = HEMF(arch=SMALL)
    assert [s.decomposed for s in full.global_stages] == [True, True, False,
                                                          False]
    assert all(a.decomposed for s in dec.global_stages for a in s.attns)
    assert not any(a.decomposed for a in full.global_stages[3].attns)
    full.load_state_dict(dec.state_dict())  # same parameters and buffers
    full.eval(), dec.eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        a, b = full(x), dec(x)
    for i in range(2):  # decomposed stages agree
        torch.testing.assert_close(a[i][1], b[i][1])
    assert not torch.allclose(a[2][1], b[2][1])  # full 2-D MaSA differs


def test_masa_decay_schedule_flags():
    b = HEMF(arch=SMALL, masa_initial_value=(2, 2, 2, 2),
             masa_heads_range=(4, 4, 6, 6))
    expected = torch.log(1 - 2**(-2 - 6 * torch.arange(2.) / 2))
    torch.testing.assert_close(b.global_stages[3].rel_pos.decay, expected)


def test_shared_stem_flag():
    shared = HEMF(arch=SMALL, shared_stem=True).eval()
    own = HEMF(arch=SMALL)
    assert isinstance(shared.global_downsamples[0], nn.Identity)
    assert n_params(own) - n_params(shared) == 3 * 16 * 16 + 16 + 2 * 16
    stem_out = []
    shared.global_stages[0].register_forward_pre_hook(
        lambda m, args: stem_out.append(args[0]))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        shared(x)
        torch.testing.assert_close(stem_out[0], shared.local_downsamples[0](x))


def test_drop_path_rates():
    b = HEMF(local_drop_path_rate=0.2, global_drop_path_rate=0.3)
    local = [blk.drop_path.drop_prob for s in b.local_stages for blk in s]
    glob = [dp.drop_prob for s in b.global_stages for dp in s.drop_paths]
    torch.testing.assert_close(torch.tensor(local), torch.linspace(0, 0.2, 16))
    torch.testing.assert_close(torch.tensor(glob), torch.linspace(0, 0.3, 12))
    assert all(dp.drop_prob == 0 for s in HEMF().global_stages
               for dp in s.drop_paths)  # released EGF: none
    neck = HEFNeck(drop_path_rate=0.1)
    assert [blk.drop_path.drop_prob for blk in neck.blocks] == [0.1] * 4
    model = small_classifier(
        backbone=dict(local_drop_path_rate=0.5, global_drop_path_rate=0.5),
        neck=dict(drop_path_rate=0.5))
    x = torch.randn(2, 3, 32, 32)
    model.train()
    assert not torch.allclose(model(x, mode='tensor'), model(x, mode='tensor'))
    model.eval()
    torch.testing.assert_close(
        model(x, mode='tensor'), model(x, mode='tensor'))


def test_ablation_flags():
    """Paper Table 10 rows, as configs/hemf/ablation builds them."""
    x = torch.randn(1, 3, 32, 32)
    elf_only = small_classifier(backbone=dict(with_global_branch=False),
                                neck=dict(with_fusion=False)).eval()
    egf_only = small_classifier(backbone=dict(with_local_branch=False),
                                neck=dict(with_fusion=False)).eval()
    assert not hasattr(elf_only.backbone, 'global_stages')
    assert not hasattr(egf_only.backbone, 'local_stages')
    assert not hasattr(elf_only.neck, 'blocks')
    for m in (elf_only, egf_only):
        assert m(x, mode='tensor').shape == (1, 3)

    plain = HEFNeck(with_mhea=False, with_spatial_channel=False,
                    with_sirmlp=False)
    blk = plain.blocks[1]
    assert not hasattr(blk.local_attn, 'mhea')
    assert not hasattr(blk.local_attn, 'norm')  # identity
    assert not isinstance(blk.mlp, SIRMLP)
    mhea_only = HEFNeck(with_spatial_channel=False).blocks[1].global_attn
    assert hasattr(mhea_only, 'mhea') and not hasattr(mhea_only,
                                                      'spatial_attn')
    sa_ca_only = HEFNeck(with_mhea=False).blocks[1].global_attn
    assert hasattr(sa_ca_only, 'channel_attn') and not hasattr(
        sa_ca_only, 'mhea')
    feats = [(torch.randn(1, c, 8 >> i, 8 >> i), torch.randn(1, c, 8 >> i,
                                                             8 >> i))
             for i, c in enumerate((16, 32, 64, 128))]
    neck = HEFNeck(in_channels=(16, 32, 64, 128), with_mhea=False,
                   with_spatial_channel=False, with_sirmlp=False).eval()
    with torch.no_grad():
        assert neck(feats)[0].shape == (1, 128)


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    plain = small_classifier()
    ckpt = small_classifier(backbone=dict(with_cp=True),
                            neck=dict(with_cp=True))
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    for m in (plain, ckpt):
        m.train()
        m(x, mode='tensor').sum().backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_frozen_stages():
    b = HEMF(arch=SMALL, frozen_stages=1)
    b.train()
    for branch in ('local', 'global'):
        for i in range(4):
            modules = [getattr(b, f'{branch}_downsamples')[i],
                       getattr(b, f'{branch}_stages')[i]]
            frozen = all(not p.requires_grad for m in modules
                         for p in m.parameters())
            assert frozen == (i <= 1)


def test_released_init():
    b = HEMF(arch=dict(embed_dims=96, local_depths=(1, ) * 4,
                       global_depths=(1, ) * 4))
    b.init_weights()
    assert 0.17 < b.local_stages[3][0].conv.weight.std().item() < 0.23
    assert 0.17 < b.global_stages[3].attns[0].lepe.weight.std().item() < 0.23
    q = b.global_stages[3].attns[0].q_proj
    assert 0.015 < q.weight.std().item() < 0.025
    assert q.bias.abs().max().item() == 0
    # The position buffers survive init.
    torch.testing.assert_close(b.global_stages[0].rel_pos.decay,
                               ManhattanRelPos2d(96, 8).decay)


# -- converter --------------------------------------------------------------

HEMF_FILE = PARITY_DIR / 'hemf.pt'
needs_manifest = pytest.mark.skipif(
    not HEMF_FILE.is_file(), reason=f'{HEMF_FILE} not available')


@pytest.fixture(scope='module')
def manifest():
    return torch.load(HEMF_FILE, weights_only=False)['manifest']


def _authors_buffers(manifest, heads=8):
    """``angle`` / ``decay`` as the released RetNetRelPos2d computes them."""
    out = {}
    for key, shape, kind in manifest:
        if kind != 'buffer':
            continue
        stage = int(key.split('.')[1])
        head_dim = CHANNELS[stage] // heads
        if key.endswith('angle'):
            a = 1.0 / (10000**torch.linspace(0, 1, head_dim // 2))
            out[key] = a.unsqueeze(-1).repeat(1, 2).flatten()
        else:
            out[key] = torch.log(1 - 2**(-1 - 3 * torch.arange(
                heads, dtype=torch.float) / heads))
    return out


@needs_manifest
def test_converter_depthwise_variant(manifest):
    """A ``hemf_dw`` checkpoint: depthwise SIRMLP 3x3, read from tensors."""
    dw = [(k, (s[0], 1, 3, 3) if k.endswith('residual.conv1.conv.weight')
           else s, kind) for k, s, kind in manifest]
    source = generate_state_dict(dw, '')
    converted, meta = convert_official(source)
    assert meta['family'] == 'hemf'
    s = meta['settings']
    assert (s['sirmlp_depthwise'], s['mode'], s['arch'],
            s['num_classes']) == (True, 'paper', 'default', 7)
    assert meta['model']['neck']['sirmlp_depthwise'] is True
    model = MODELS.build(meta['model'])
    model.load_state_dict(converted, strict=True)
    assert n_params(model) == RELEASED_PARAMS - DW_SAVING
    for blk, c in zip(model.neck.blocks, CHANNELS):
        assert blk.mlp.irmlp.spatial_conv.groups == c
    torch.testing.assert_close(
        model.state_dict()['neck.blocks.2.mlp.irmlp.spatial_conv.weight'],
        source['fu3.residual.conv1.conv.weight'])
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)


@needs_manifest
def test_converter_checks_position_buffers(manifest):
    source = generate_state_dict(manifest, '')
    buffers = _authors_buffers(manifest)
    assert len(buffers) == 8
    converted, meta = convert_official({**source, **buffers})
    assert set(buffers) <= set(meta['dropped_keys'])
    torch.testing.assert_close(
        converted['backbone.global_stages.1.rel_pos.angle'],
        buffers['stages2.1.RetNetRelPos2d.angle'], atol=0, rtol=0)
    wrong = dict(buffers)
    wrong['stages2.2.RetNetRelPos2d.decay'] = buffers[
        'stages2.2.RetNetRelPos2d.decay'] * 1.01
    with pytest.raises(ConversionError, match='decay'):
        convert_official({**source, **wrong})
    # Never-called modules dropped, nothing of ours left unfilled.
    assert 'fu1.Updim.conv.weight' in meta['dropped_keys']
    assert 'fu2.W.conv.weight' in meta['dropped_keys']
    assert not any(math.isnan(v.float().sum()) for v in converted.values())


@needs_manifest
def test_converter_reads_heads_from_buffers(manifest):
    source = generate_state_dict(manifest, '')
    buffers = _authors_buffers(manifest, heads=4)
    _, meta = convert_official({**source, **buffers})
    assert meta['settings']['num_heads'] == (4, 4, 4, 4)
    assert meta['settings']['arch'] == 'custom'
    assert meta['model']['backbone']['arch']['num_heads'] == (4, 4, 4, 4)
