"""get_flops: parameter and FLOP counts against the reference figures."""
import re
import subprocess
import sys

import pytest
from mmpretrain.registry import MODELS

import hifuse_mm  # noqa: F401
from hifuse_mm.analysis.complexity import model_complexity
from helpers import REPO


def hifuse(arch, depthwise):
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(type='HiFuse', arch=arch),
            neck=dict(type='HFFNeck', irmlp_depthwise=depthwise),
            head=dict(type='LinearClsHead', num_classes=7, in_channels=768)))


# (arch, depthwise IRMLP, GFLOPs with attention matmuls (fvcore on the
# authors' classes), GFLOPs without them (paper Table 4) or None).
REFERENCE = [
    ('tiny', True, 8.20, 8.13),
    ('small', True, 8.93, 8.84),
    ('base', True, 11.11, 10.97),
    ('tiny', False, 17.55, None),
]


@pytest.mark.parametrize('arch,depthwise,with_attn,without_attn', REFERENCE)
def test_flops_match_reference(arch, depthwise, with_attn, without_attn):
    result = model_complexity(hifuse(arch, depthwise))
    assert result['flops'] / 1e9 == pytest.approx(with_attn, rel=0.02)
    if without_attn is not None:
        assert result['flops_no_attention'] / 1e9 == pytest.approx(
            without_attn, rel=0.02)
    # Attention matmuls: 2 * N^2 * C per window and block (N = 49 tokens).
    depths = {'tiny': 2, 'small': 6, 'base': 18}[arch]
    windows, channels, blocks = (64, 16, 4, 1), (96, 192, 384, 768), (
        2, 2, depths, 2)
    attention = sum(2 * 49 * 49 * c * w * b
                    for w, c, b in zip(windows, channels, blocks))
    assert result['flops'] - result['flops_no_attention'] == attention


def test_get_flops_tool():
    result = subprocess.run([
        sys.executable,
        str(REPO / 'tools/analysis_tools/get_flops.py'),
        str(REPO / 'configs/hifuse/hifuse-tiny_isic2018.py')
    ],
                            capture_output=True,
                            text=True,
                            cwd=REPO)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert 'Params: 54,673,217' in out
    with_attn = float(re.search(r'with attention matmuls\): ([\d.]+) G',
                                out).group(1))
    without = float(re.search(r'without attention matmuls.*: ([\d.]+) G',
                              out).group(1))
    assert with_attn == pytest.approx(8.20, rel=0.02)
    assert without == pytest.approx(8.13, rel=0.02)
