"""Paths and environment shared by the tests (import as ``from helpers import REPO``)."""
import os
from pathlib import Path
from typing import Dict

#: The repository root.
REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / 'tests'
TOOLS = REPO / 'tools'
#: The demo config the tests' small configs inherit from.
DEMO_CONFIG = REPO / 'configs' / 'hifuse' / 'hifuse-tiny_demo.py'


def repo_env(*paths: Path, **variables: str) -> Dict[str, str]:
    """This process's environment for a tool subprocess: ``PYTHONPATH`` starts with the
    repository (then ``paths``, then what it was), plus ``variables``."""
    pythonpath = os.pathsep.join(
        filter(None, [str(REPO), *map(str, paths), os.environ.get('PYTHONPATH')]))
    return dict(os.environ, PYTHONPATH=pythonpath, **variables)
