"""Number-for-number parity with the authors' released models.

For every ``*.pt`` in ``$HIFUSE_PARITY_DIR`` (default ``../shared/parity``
next to the repository), following that directory's README: regenerate the
authors' state dict from its manifest, check the fingerprints, convert it
with our converter, load it strictly into our model and compare the logits
(tolerance from the file) and every stored stage feature. Everything is
read from the file (salt, input, tolerances), nothing is assumed.
"""
import math

import pytest
import torch

from hifuse_mm.converters import convert_official
from hifuse_mm.analysis.parity import stage_features
from parity_utils import PARITY_DIR, generate_state_dict


#: Arch name -> (family, expected detected settings).
KNOWN_ARCHS = {
    'hifuse_tiny': ('hifuse', dict(arch='tiny', irmlp_depthwise=False)),
    'hifuse_small': ('hifuse', dict(arch='small', irmlp_depthwise=False)),
    'hifuse_base': ('hifuse', dict(arch='base', irmlp_depthwise=False)),
    'hifuse_tiny_dw': ('hifuse', dict(arch='tiny', irmlp_depthwise=True)),
    'hifuse_small_dw': ('hifuse', dict(arch='small', irmlp_depthwise=True)),
    'hifuse_base_dw': ('hifuse', dict(arch='base', irmlp_depthwise=True)),
    'hemf': ('hemf', dict(sirmlp_depthwise=False)),
    'hemf_dw': ('hemf', dict(sirmlp_depthwise=True)),
}

FEATURE_ATOL = FEATURE_RTOL = 2e-2  # features are stored as float16


def _parity_files():
    if not PARITY_DIR.is_dir():
        return [
            pytest.param(
                None,
                marks=pytest.mark.skip(
                    reason=f'parity directory {PARITY_DIR} does not exist '
                    '(set HIFUSE_PARITY_DIR)'))
        ]
    files = sorted(PARITY_DIR.glob('*.pt'))
    if not files:
        return [
            pytest.param(
                None,
                marks=pytest.mark.skip(
                    reason=f'no *.pt files in {PARITY_DIR}'))
        ]
    return [pytest.param(f, id=f.stem) for f in files]


@pytest.mark.parametrize('path', _parity_files())
def test_official_parity(path):
    from mmpretrain.registry import MODELS

    golden = torch.load(path, map_location='cpu', weights_only=False)
    arch = golden['arch']
    assert arch in KNOWN_ARCHS, (f'{path.name}: unknown arch {arch!r}; '
                                 f'known: {sorted(KNOWN_ARCHS)}')
    family, expected = KNOWN_ARCHS[arch]

    state_dict = generate_state_dict(golden['manifest'], golden['salt'])
    wrong = [
        k for k, v in golden['fingerprints'].items()
        if not math.isclose(
            state_dict[k].double().sum().item(), v, rel_tol=1e-6,
            abs_tol=1e-9)
    ]
    assert not wrong, f'generator disagrees with fingerprints: {wrong[:5]}'

    converted, meta = convert_official(state_dict)
    assert meta['family'] == family
    for key, value in expected.items():
        assert meta['settings'][key] == value, key
    assert meta['settings']['num_classes'] == golden['num_classes']

    model = MODELS.build(meta['model'])
    model.load_state_dict(converted, strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(golden['input'])
    torch.testing.assert_close(
        logits, golden['logits'], atol=golden['atol'], rtol=golden['rtol'])

    if golden['features']:
        ours = stage_features(model, golden['input'])
        for name, ref in golden['features'].items():
            torch.testing.assert_close(
                ours[name],
                ref.float(),
                atol=FEATURE_ATOL,
                rtol=FEATURE_RTOL,
                msg=lambda m, name=name: f'{name}: {m}')
