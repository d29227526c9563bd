"""Shared by the parity and converter tests: where the parity files are, and their weight rule
(:func:`hifuse_mm.analysis.parity.generate_state_dict`)."""
import os
from pathlib import Path

from helpers import REPO
from hifuse_mm.analysis.parity import generate_state_dict  # noqa: F401  (re-exported)

PARITY_DIR = Path(
    os.environ.get('HIFUSE_PARITY_DIR', REPO.parent / 'shared' / 'parity'))
