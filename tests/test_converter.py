"""The official-checkpoint converter: wrappers, detection, refusals, CLI."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hifuse_mm.converters import ConversionError, convert_official
from helpers import REPO, TOOLS
from parity_utils import PARITY_DIR, generate_state_dict
from tool_runner import call_tool

TOOL = REPO / 'tools' / 'model_converters' / 'hifuse_official_to_mmpretrain.py'
SOURCE = PARITY_DIR / 'hifuse_tiny_dw.pt'

pytestmark = pytest.mark.skipif(
    not SOURCE.is_file(), reason=f'{SOURCE} not available')


@pytest.fixture(scope='module')
def released():
    """A HiFuse-Tiny (depthwise) state dict in the authors' key layout."""
    golden = torch.load(SOURCE, weights_only=False)
    return generate_state_dict(golden['manifest'], golden['salt'])


@pytest.fixture(scope='module')
def converted(released):
    return convert_official(released)


def test_detects_variant_and_drops_never_called(converted):
    state_dict, meta = converted
    assert meta['family'] == 'hifuse'
    s = meta['settings']
    assert (s['arch'], s['depths'], s['irmlp_depthwise'], s['mode'],
            s['num_classes']) == ('tiny', (2, 2, 2, 2), True, 'paper', 7)
    dropped = set(meta['dropped_keys'])
    for key in ('norm.weight', 'head.weight', 'fu1.Updim.conv.weight',
                'fu1.W3.conv.weight', 'fu1.norm1.weight', 'fu2.W.conv.weight',
                'fu2.norm2.weight', 'layers1.blocks.0.norm2.weight'):
        assert key in dropped
    assert not any('Updim' in k or 'norm2' in k for k in state_dict)
    assert meta['model']['neck']['irmlp_depthwise'] is True


@pytest.mark.parametrize('wrap', ['state_dict', 'model', 'net', 'module'])
def test_checkpoint_wrappers(released, converted, wrap):
    if wrap == 'module':
        ckpt = {f'module.{k}': v for k, v in released.items()}
    else:
        ckpt = {wrap: released, 'epoch': 3}
    state_dict, _ = convert_official(ckpt)
    assert state_dict.keys() == converted[0].keys()
    for k, v in state_dict.items():
        assert torch.equal(v, converted[0][k]), k


def test_without_classifier(released):
    from mmpretrain.registry import MODELS

    headless = {k: v for k, v in released.items() if 'conv_head' not in k}
    state_dict, meta = convert_official(headless)
    assert meta['settings']['num_classes'] is None
    assert 'head' not in meta['model']
    assert not any(k.startswith('head.') for k in state_dict)
    model = MODELS.build(meta['model'])
    model.load_state_dict(state_dict, strict=True)


def test_patch_merging_reordered(released, converted):
    """mmcv's unfold order interleaves the four 2x2 neighbours."""
    src = released['layers2.downsample.reduction.weight']  # [2C, 4C]
    ours = converted[0]['backbone.global_stages.1.downsample.reduction.weight']
    c = src.shape[1] // 4
    for pos, block in enumerate([0, 2, 1, 3]):  # x0, x2, x1, x3
        torch.testing.assert_close(ours[:, pos::4],
                                   src[:, block * c:(block + 1) * c])


def test_refusals(released):
    with pytest.raises(ConversionError, match='state dict of tensors'):
        convert_official({'epoch': 1})
    with pytest.raises(ConversionError, match='not a checkpoint'):
        convert_official({'fc.weight': torch.zeros(2, 2)})
    broken = dict(released)
    del broken['fu3.residual.conv2.conv.weight']
    with pytest.raises(ConversionError, match='lacks tensors'):
        convert_official(broken)
    broken = dict(released, **{'fu2.mystery.weight': torch.zeros(1)})
    with pytest.raises(ConversionError, match='fu2.mystery'):
        convert_official(broken)
    broken = dict(released)
    broken['stages.1.0.pwconv.weight'] = torch.zeros(192, 96)
    with pytest.raises(ConversionError, match='shape'):
        convert_official(broken)


def test_cli(released, tmp_path: Path):
    src = tmp_path / 'best_model.pth'
    dst = tmp_path / 'converted.pth'
    torch.save({'net': released}, src)

    # The conversion itself as a user runs it (a subprocess); the refusals and --force through
    # the same main() in this process (no second interpreter start for each).
    result = subprocess.run([sys.executable, str(TOOL), str(src), str(dst)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert 'tiny' in result.stdout and 'paper' in result.stdout
    ckpt = torch.load(dst, weights_only=True)  # safe to load
    assert ckpt['meta']['hifuse_mm']['settings']['irmlp_depthwise'] is True
    assert len(ckpt['state_dict']) > 0

    def run(*args):
        return call_tool(REPO, TOOL.relative_to(TOOLS), *args, exits=True)

    before = dst.stat().st_mtime_ns
    result = run(src, dst)
    assert result.returncode != 0 and '--force' in result.stderr
    assert dst.stat().st_mtime_ns == before  # untouched
    assert run(src, dst, '--force').returncode == 0
    assert dst.stat().st_mtime_ns != before
    assert torch.load(dst, weights_only=True)['state_dict'].keys() == ckpt['state_dict'].keys()

    junk = tmp_path / 'junk.pth'
    torch.save({'fc.weight': torch.zeros(2)}, junk)
    result = run(junk, tmp_path / 'out.pth')
    assert result.returncode == 2 and 'junk.pth' in result.stderr
    assert not (tmp_path / 'out.pth').exists()
