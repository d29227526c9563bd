"""HiFuse (``huoxiangzuo/HiFuse`` ``main_model.py``) key layout."""
import re
from typing import Optional

import torch

from .official import (ConversionError, Family, StateDict, count_indices,
                       is_depthwise_conv, register_family)

_ARCHS = {(2, 2, 2, 2): 'tiny', (2, 2, 6, 2): 'small', (2, 2, 18, 2): 'base'}

# Released HFF sub-module -> ours, for every stage.
_HFF_COMMON = {
    'se.0': 'channel_attn.fc1',
    'se.2': 'channel_attn.fc2',
    'spatial.conv': 'spatial_attn.conv',
    'spatial.bn': 'spatial_attn.bn',
    'W_l': 'fusion.local_proj',
    'W_g': 'fusion.global_proj',
    'norm3': 'norm',
    'residual.conv1.conv': 'mlp.spatial_conv',
    'residual.bn1': 'mlp.norm',
    'residual.conv2.conv': 'mlp.expand',
    'residual.conv3.conv': 'mlp.project.conv',
    'residual.conv3.bn': 'mlp.project.bn',
}
# Stage 1 fuses two inputs, stages 2-4 three; each builds both paths.
_HFF_FIRST = {'norm2': 'fusion.norm', 'W': 'fusion.merge'}
_HFF_LATER = {
    'Updim': 'fusion.prev_proj',
    'norm1': 'fusion.norm',
    'W3': 'fusion.merge'
}


def detect(sd: StateDict) -> bool:
    return 'layers1.blocks.0.attn.qkv.weight' in sd and any(
        k.startswith('fu1.residual.') for k in sd)


def settings(sd: StateDict) -> dict:
    num_stages = count_indices(sd, r'fu(\d+)\.')
    depths = tuple(
        count_indices(sd, rf'layers{i + 1}\.blocks\.(\d+)\.')
        for i in range(num_stages))
    local_depths = tuple(
        count_indices(sd, rf'stages\.{i}\.(\d+)\.dwconv') for i in range(num_stages))
    if depths != local_depths:
        raise ConversionError(f'local depths {local_depths} differ from '
                              f'global depths {depths}: not a released '
                              'HiFuse factory model')
    embed_dims = sd['patch_embed.proj.weight'].shape[0]
    heads = tuple(
        sd[f'layers{i + 1}.blocks.0.attn.relative_position_bias_table'].
        shape[1] for i in range(num_stages))
    table = sd['layers1.blocks.0.attn.relative_position_bias_table'].shape[0]
    window = (int(round(table**0.5)) + 1) // 2
    depthwise = is_depthwise_conv(sd, 'fu1.residual.conv1.conv.weight',
                                  'IRMLP 3x3')
    head = sd.get('conv_head.weight')
    return dict(
        arch=_ARCHS.get(depths, 'custom'),
        depths=depths,
        embed_dims=embed_dims,
        num_heads=heads,
        window_size=window,
        irmlp_depthwise=depthwise,
        mode='paper' if depthwise else 'released',
        num_classes=None if head is None else int(head.shape[0]),
    )


def model_cfg(s: dict) -> dict:
    arch = s['arch'] if s['arch'] != 'custom' else dict(
        embed_dims=s['embed_dims'],
        depths=s['depths'],
        num_heads=s['num_heads'])
    channels = tuple(s['embed_dims'] * 2**i for i in range(len(s['depths'])))
    cfg = dict(
        type='ImageClassifier',
        backbone=dict(
            type='HiFuse', arch=arch, window_size=s['window_size']),
        neck=dict(
            type='HFFNeck',
            in_channels=channels,
            irmlp_depthwise=s['irmlp_depthwise']))
    if s['num_classes'] is not None:
        cfg['head'] = dict(
            type='LinearClsHead',
            num_classes=s['num_classes'],
            in_channels=channels[-1])
    return cfg


def _unfold_order(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Reorder Swin's [x0, x1, x2, x3] patch-merging channels for mmcv.

    The released PatchMerging concatenates the 2x2 neighbours as
    (even row, even col), (odd, even), (even, odd), (odd, odd), each a block
    of C channels; mmcv's merges with ``nn.Unfold``, whose channel ``c * 4 +
    2 * kh + kw`` is interleaved and visits (even, odd) before (odd, even).
    """
    shape = t.shape
    t = t.reshape(*shape[:dim], 4, shape[dim] // 4, *shape[dim + 1:])
    t = t.index_select(dim, torch.tensor([0, 2, 1, 3]))
    return t.transpose(dim, dim + 1).reshape(shape)


def rename(key: str, s: dict) -> Optional[str]:
    if key.startswith(('norm.', 'head.')):
        return None  # the global branch's own head is never called
    if key.startswith('conv_norm.'):
        return 'neck.norm.' + key[len('conv_norm.'):]
    if key.startswith('conv_head.'):
        return 'head.fc.' + key[len('conv_head.'):]
    if key.startswith('downsample_layers.'):
        return 'backbone.local_downsamples.' + key[len('downsample_layers.'):]
    if key.startswith('stages.'):
        return 'backbone.local_stages.' + key[len('stages.'):]
    if key.startswith('patch_embed.'):
        return 'backbone.patch_embed.' + key[len('patch_embed.'):].replace(
            'proj.', 'projection.')
    m = re.match(r'layers(\d+)\.(.*)', key)
    if m:
        stage, rest = int(m.group(1)) - 1, m.group(2)
        prefix = f'backbone.global_stages.{stage}.'
        if rest.startswith('downsample.'):
            return prefix + rest
        b = re.match(r'blocks\.(\d+)\.(norm1|norm2|attn|fc1)\.(.*)', rest)
        if b is None:
            return _unknown(key)
        blk, part, leaf = b.groups()
        prefix += f'blocks.{blk}.'
        return {
            'norm1': prefix + 'norm.' + leaf,
            'norm2': None,  # built, never called
            'attn': prefix + 'attn.w_msa.' + leaf,
            'fc1': prefix + 'fc.' + leaf,
        }[part]
    m = re.match(r'fu(\d+)\.(.*)', key)
    if m:
        stage, rest = int(m.group(1)) - 1, m.group(2)
        used = _HFF_FIRST if stage == 0 else _HFF_LATER
        unused = _HFF_LATER if stage == 0 else _HFF_FIRST
        for table in (_HFF_COMMON, used, unused):
            for src, dst in table.items():
                if rest.startswith(src + '.'):
                    if table is unused:
                        return None  # built, never called in this stage
                    return f'neck.blocks.{stage}.{dst}' + rest[len(src):]
    return _unknown(key)


def _unknown(key: str) -> str:
    raise ConversionError(f'unrecognised HiFuse key {key!r}')


def transform(key: str, value: torch.Tensor) -> torch.Tensor:
    """Tensor layout changes (patch merging only)."""
    if '.downsample.reduction.weight' in key:
        return _unfold_order(value, 1)
    if '.downsample.norm.' in key:
        return _unfold_order(value, 0)
    return value


HIFUSE = register_family(
    Family(
        name='hifuse',
        detect=detect,
        settings=settings,
        model_cfg=model_cfg,
        rename=rename,
        transform=transform,
        derived_buffers=('relative_position_index', )))
