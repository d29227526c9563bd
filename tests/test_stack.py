"""The import-time check of the OpenMMLab stack (hifuse_mm/utils/stack.py)."""
import importlib.util
import re

import pytest

from hifuse_mm.utils import stack
from hifuse_mm.utils.stack import StackError, check_stack, check_version, version_tuple
from helpers import REPO


@pytest.mark.parametrize('version, expected', [
    ('0.10.7', (0, 10, 7)),
    ('0.10.12', (0, 10, 12)),
    ('2.2.0', (2, 2, 0)),
    ('1.3.6rc1', (1, 3, 6)),
    ('2.3.0.post3', (2, 3, 0)),
    ('2.14.1+cu130', (2, 14, 1)),
    ('1.2', (1, 2)),
    ('dev', ()),
])
def test_version_tuple(version, expected):
    assert version_tuple(version) == expected


def test_version_tuple_orders_numerically():
    # 0.10.12 (OneDL) is newer than 0.10.7 (upstream): not a string comparison.
    assert version_tuple('0.10.12') > version_tuple('0.10.7')
    assert version_tuple('0.10.7') > version_tuple('0.9.1')


@pytest.mark.parametrize('package, version', [
    ('mmengine', '0.10.7'),    # upstream, last release
    ('mmengine', '0.10.12'),   # onedl-mmengine
    ('mmcv', '2.2.0'),         # mmcv-lite / mmcv upstream
    ('mmcv', '2.3.6'),         # onedl-mmcv
    ('mmcv', '2.0.0'),
    ('mmpretrain', '1.2.0'),   # upstream, last release
    ('mmpretrain', '1.3.6'),   # onedl-mmpretrain
    ('mmpretrain', '1.3.6rc1'),
])
def test_supported_versions_pass(package, version):
    check_version(package, version)


@pytest.mark.parametrize('package, version', [
    ('mmengine', '0.10.6'),
    ('mmengine', '0.11.0'),
    ('mmengine', '1.0.0'),
    ('mmcv', '1.7.2'),
    ('mmcv', '2.4.0'),
    ('mmpretrain', '1.1.1'),
    ('mmpretrain', '1.4.0'),
    ('mmpretrain', '0'),
])
def test_unsupported_versions_raise(package, version):
    with pytest.raises(StackError) as info:
        check_version(package, version)
    message = str(info.value)
    assert f'found {package} {version}' in message
    low, high = stack.SUPPORTED[package]
    assert f'{low} <= {package} < {high}' in message
    assert 'hifuse-mm[openmmlab]' in message and 'hifuse-mm[onedl]' in message


def test_stack_error_is_an_import_error():
    # `import hifuse_mm` fails like any import of a missing dependency.
    assert issubclass(StackError, ImportError)


def test_installed_stack_passes():
    check_stack()


@pytest.mark.parametrize('missing', sorted(stack.SUPPORTED))
def test_missing_package_names_the_extras(monkeypatch, missing):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == missing else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, 'find_spec', find_spec)
    with pytest.raises(StackError) as info:
        check_stack()
    message = str(info.value)
    assert f'needs {missing}, which is not installed' in message
    assert 'hifuse-mm[openmmlab]' in message and 'hifuse-mm[onedl]' in message


def test_out_of_range_installed_version_is_reported(monkeypatch):
    import mmcv
    monkeypatch.setattr(mmcv, '__version__', '2.4.1')
    with pytest.raises(StackError, match=r'found mmcv 2\.4\.1'):
        check_stack()


def _extra(setup_text: str, name: str) -> str:
    match = re.search(rf'^{name} = \[(.*?)\]', setup_text, re.M | re.S)
    assert match, f'{name} not found in setup.py'
    return match.group(1)


def test_setup_extras_match_the_checked_ranges():
    """Every version the extras admit passes the import-time check, and vice versa at the ends."""
    text = (REPO / 'setup.py').read_text()
    for extra, prefix in (('OPENMMLAB', ''), ('ONEDL', 'onedl-')):
        specs = re.findall(r"'([\w-]+)>=([\d.]+),<([\d.]+)'", _extra(text, extra))
        assert len(specs) == 3, specs
        for dist, low, high in specs:
            package = dist[len(prefix):].replace('-lite', '')
            assert dist.startswith(prefix) and package in stack.SUPPORTED
            check_version(package, low)
            supported_low, supported_high = stack.SUPPORTED[package]
            assert version_tuple(supported_low) <= version_tuple(low)
            assert version_tuple(high) <= version_tuple(supported_high)
    install_requires = re.search(r'install_requires=\[(.*?)\]', text, re.S).group(1)
    for package in stack.SUPPORTED:
        assert package not in install_requires, f'{package} must be a choice (an extra)'


def test_constraints_pin_a_checked_stack():
    """Both constraints files pin versions that the import-time check accepts."""
    pins = {}
    for name, prefix in (('constraints.txt', ''), ('constraints-onedl.txt', 'onedl-')):
        lines = (REPO / 'requirements' / name).read_text().splitlines()
        pins = dict(line.split('==') for line in lines if '==' in line and not line.startswith('#'))
        for package in stack.SUPPORTED:
            dist = f'{prefix}{package}' + ('-lite' if package == 'mmcv' and not prefix else '')
            assert dist in pins, f'{name} does not pin {dist}'
            check_version(package, pins[dist])
        assert version_tuple(pins['torch']) >= (2, 6)
