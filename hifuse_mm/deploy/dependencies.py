"""The optional ``deploy`` extra (onnx, onnxscript, onnxruntime), imported only when used.

``import hifuse_mm`` (and :mod:`hifuse_mm.apis`) never imports these packages: every function
of :mod:`hifuse_mm.deploy` that needs one calls :func:`import_deploy_module`, which names the
extra to install when it is missing.
"""
from __future__ import annotations

import importlib
from types import ModuleType

#: How to install what this package needs.
INSTALL_HINT = "pip install -e '.[deploy]' (or `make venv`, which installs it)"

#: Import name -> distribution name, for messages.
DISTRIBUTIONS = {'onnx': 'onnx', 'onnxscript': 'onnxscript', 'onnxruntime': 'onnxruntime'}


class DeployDependencyError(ImportError):
    """A package of the ``deploy`` extra is not installed; the message says how to install it."""


def import_deploy_module(name: str, purpose: str = 'ONNX export and inference') -> ModuleType:
    """Import ``name`` (``'onnx'``, ``'onnxscript'`` or ``'onnxruntime'``).

    Raises:
        DeployDependencyError: it is not installed (or fails to import), naming the extra.
    """
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise DeployDependencyError(
            f'{purpose} needs the package {DISTRIBUTIONS.get(name, name)}, which is not '
            f'installed ({err}); install the deploy extra: {INSTALL_HINT}') from err


def deploy_versions() -> dict:
    """Versions of the deploy packages that are installed (``None`` for a missing one)."""
    versions = {}
    for name in DISTRIBUTIONS:
        try:
            versions[name] = importlib.import_module(name).__version__
        except ImportError:
            versions[name] = None
    return versions
