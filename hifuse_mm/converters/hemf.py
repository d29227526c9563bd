"""HEMF (``Esgjgd/HEMF`` ``main_model.py``) key layout."""
import re
from typing import Dict, Optional

from .hifuse import _HFF_FIRST, _HFF_LATER
from .official import (ConversionError, Family, StateDict, count_indices,
                       is_depthwise_conv, register_family)

# Released HEF sub-module -> ours, for every stage (the fusion path's
# modules, ``_HFF_FIRST`` / ``_HFF_LATER``, are named as in HiFuse).
_HEF_COMMON: Dict[str, str] = {
    'W_l': 'fusion.local_proj',
    'W_g': 'fusion.global_proj',
    'norm3': 'norm',
    'residual.conv_s': 'mlp.squeeze',
    'residual.conv1.conv': 'mlp.irmlp.spatial_conv',
    'residual.bn1': 'mlp.irmlp.norm',
    'residual.conv2.conv': 'mlp.irmlp.expand',
    'residual.conv3.conv': 'mlp.irmlp.project.conv',
    'residual.conv3.bn': 'mlp.irmlp.project.bn',
}
for _side, _ours in (('l', 'local_attn'), ('g', 'global_attn')):
    _HEF_COMMON.update({
        f'norm_{_side}': f'{_ours}.norm',
        f'mea_{_side}.mk': f'{_ours}.mhea.key_memory',
        f'mea_{_side}.mv': f'{_ours}.mhea.value_memory',
        f'sa_{_side}.conv1': f'{_ours}.spatial_attn.conv',
        f'ca_{_side}.fc1': f'{_ours}.channel_attn.fc1',
        f'ca_{_side}.fc2': f'{_ours}.channel_attn.fc2',
    })

# Released EGF_block sub-module -> ours (``VRC`` = VisionRetentionChunk).
_EGF = {
    'norm1': 'norm1',
    'norm2': 'norm2',
    'RetNetRelPos2d': 'rel_pos',
    'VRC': 'attns',
    'FC': 'fcs',
}

#: The released factory ``HEMF(num_classes)`` (our arch ``'default'``).
_RELEASED = dict(local_depths=(4, 4, 4, 4), global_depths=(3, 3, 3, 3))
_RELEASED_HEADS = 8


def detect(sd: StateDict) -> bool:
    return 'stages2.0.VRC.0.q_proj.weight' in sd and any(
        k.startswith('fu1.residual.conv_s.') for k in sd)


def settings(sd: StateDict) -> dict:
    num_stages = count_indices(sd, r'fu(\d+)\.')
    local_depths = tuple(
        count_indices(sd, rf'stages\.{i}\.(\d+)\.dwconv') for i in range(num_stages))
    global_depths = tuple(
        count_indices(sd, rf'stages2\.{i}\.VRC\.(\d+)\.') for i in range(num_stages))
    channels = tuple(sd[f'stages2.{i}.norm1.weight'].shape[0]
                     for i in range(num_stages))
    # MaSA heads leave no trace in the weights; the rotary ``angle`` buffer
    # (head_dim entries) gives them when the checkpoint has it.
    heads = tuple(
        c // sd[f'stages2.{i}.RetNetRelPos2d.angle'].shape[0]
        if f'stages2.{i}.RetNetRelPos2d.angle' in sd else _RELEASED_HEADS
        for i, c in enumerate(channels))
    depthwise = is_depthwise_conv(sd, 'fu1.residual.conv1.conv.weight',
                                  'SIRMLP 3x3')
    memory = sd['fu1.mea_l.mk.weight'].shape
    head = sd.get('conv_head.weight')
    released = (channels[0] == 96 and heads == (_RELEASED_HEADS, ) * 4
                and local_depths == _RELEASED['local_depths']
                and global_depths == _RELEASED['global_depths'])
    return dict(
        arch='default' if released else 'custom',
        local_depths=local_depths,
        global_depths=global_depths,
        embed_dims=channels[0],
        num_heads=heads,
        mhea_heads=channels[0] // memory[1],
        memory_size=memory[0],
        reduction=channels[0] // sd['fu1.ca_l.fc1.weight'].shape[0],
        sirmlp_depthwise=depthwise,
        mode='paper' if depthwise else 'released',
        num_classes=None if head is None else int(head.shape[0]),
    )


def model_cfg(s: dict) -> dict:
    arch = dict(
        embed_dims=s['embed_dims'],
        local_depths=s['local_depths'],
        global_depths=s['global_depths'],
        num_heads=s['num_heads'])
    channels = tuple(s['embed_dims'] * 2**i
                     for i in range(len(s['local_depths'])))
    cfg = dict(
        type='ImageClassifier',
        backbone=dict(
            type='HEMF', arch='default' if s['arch'] == 'default' else arch),
        neck=dict(
            type='HEFNeck',
            in_channels=channels,
            sirmlp_depthwise=s['sirmlp_depthwise'],
            mhea_heads=s['mhea_heads'],
            memory_size=s['memory_size'],
            reduction=s['reduction']))
    if s['num_classes'] is not None:
        cfg['head'] = dict(
            type='LinearClsHead',
            num_classes=s['num_classes'],
            in_channels=channels[-1])
    return cfg


def _lookup(rest: str, table: Dict[str, str]) -> Optional[str]:
    for src, dst in table.items():
        if rest.startswith(src + '.'):
            return dst + rest[len(src):]
    return None


def rename(key: str, s: dict) -> Optional[str]:
    if key.startswith('conv_norm.'):
        return 'neck.norm.' + key[len('conv_norm.'):]
    if key.startswith('conv_head.'):
        return 'head.fc.' + key[len('conv_head.'):]
    if key.startswith('downsample_layers.'):
        return 'backbone.local_downsamples.' + key[len('downsample_layers.'):]
    if key.startswith('downsample_layers2.'):
        return 'backbone.global_downsamples.' + key[len('downsample_layers2.'
                                                        ):]
    if key.startswith('stages.'):
        return 'backbone.local_stages.' + key[len('stages.'):]
    m = re.match(r'stages2\.(\d+)\.(.*)', key)
    if m:
        stage, rest = m.groups()
        new = _lookup(rest, _EGF)
        if new is None:
            return _unknown(key)
        return f'backbone.global_stages.{stage}.' + new.replace(
            '.lepe.conv.', '.lepe.')
    m = re.match(r'fu(\d+)\.(.*)', key)
    if m:
        stage, rest = int(m.group(1)) - 1, m.group(2)
        used = _HFF_FIRST if stage == 0 else _HFF_LATER
        unused = _HFF_LATER if stage == 0 else _HFF_FIRST
        new = _lookup(rest, _HEF_COMMON) or _lookup(rest, used)
        if new is not None:
            return f'neck.blocks.{stage}.{new}'
        if _lookup(rest, unused) is not None:
            return None  # built, never called in this stage
    return _unknown(key)


def _unknown(key: str) -> str:
    raise ConversionError(f'unrecognised HEMF key {key!r}')


HEMF = register_family(
    Family(
        name='hemf',
        detect=detect,
        settings=settings,
        model_cfg=model_cfg,
        rename=rename,
        derived_buffers=('angle', 'decay')))
