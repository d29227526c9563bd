"""Converters from the authors' released checkpoints to hifuse-mm models."""
from .official import (ConversionError, convert_official, detect_family,
                       extract_state_dict, register_family)

# Importing a family module registers it.
from . import hemf, hifuse  # noqa: E402,F401,I001

__all__ = [
    'ConversionError', 'convert_official', 'detect_family',
    'extract_state_dict', 'register_family'
]
