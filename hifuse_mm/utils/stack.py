"""The OpenMMLab stack hifuse-mm runs on, checked when the package is imported.

The framework packages are a choice (setup.py extras ``openmmlab`` for upstream OpenMMLab and
``onedl`` for the maintained OneDL forks, which install the same import packages ``mmengine``,
``mmcv`` and ``mmpretrain``), so pip cannot check their versions for us: naming one
distribution in ``install_requires`` would install it on top of the other. This module checks
the import packages' versions instead and says what to install when one is missing or outside
the tested range.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
from typing import Dict, Tuple

#: import package -> (minimum, exclusive maximum): what the code needs / what is tested.
SUPPORTED: Dict[str, Tuple[str, str]] = {
    'mmengine': ('0.10.7', '0.11.0'),
    'mmcv': ('2.0.0', '2.4.0'),
    'mmpretrain': ('1.2.0', '1.4.0'),
}

INSTALL_HINT = ('install one stack: pip install "hifuse-mm[openmmlab]" (upstream mmengine, '
                'mmcv-lite, mmpretrain) or "hifuse-mm[onedl]" (the maintained OneDL forks); '
                'see docs/get_started.md')


def version_tuple(version: str) -> Tuple[int, ...]:
    """``'1.3.6rc1'`` -> ``(1, 3, 6)``: the leading numeric release parts."""
    parts = []
    for piece in version.split('.'):
        match = re.match(r'\d+', piece)
        if match is None:
            break
        parts.append(int(match.group()))
        if match.end() != len(piece):
            break
    return tuple(parts)


class StackError(ImportError):
    """A framework package is missing or of an unsupported version."""


def check_version(package: str, version: str) -> None:
    """Raise :class:`StackError` when ``version`` of ``package`` is outside :data:`SUPPORTED`."""
    low, high = SUPPORTED[package]
    if not version_tuple(low) <= version_tuple(version) < version_tuple(high):
        raise StackError(f'hifuse-mm needs {low} <= {package} < {high}, found {package} '
                         f'{version}; {INSTALL_HINT}')


def check_stack() -> None:
    """Check that mmengine, mmcv and mmpretrain are installed in supported versions."""
    for package in SUPPORTED:
        if importlib.util.find_spec(package) is None:
            raise StackError(f'hifuse-mm needs {package}, which is not installed; '
                             f'{INSTALL_HINT}')
    for package in SUPPORTED:
        module = importlib.import_module(package)
        check_version(package, getattr(module, '__version__', '0'))
