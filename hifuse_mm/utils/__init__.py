"""Utilities: :mod:`hifuse_mm.utils.compat` holds the fixes for this software stack."""
from . import compat

__all__ = ['compat']
