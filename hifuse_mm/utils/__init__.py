"""Utilities: :mod:`hifuse_mm.utils.compat` holds the fixes for this software stack."""
from . import compat
from .compile_hook import CompileModelHook

__all__ = ['compat', 'CompileModelHook']
