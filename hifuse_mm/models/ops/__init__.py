"""Optimised drop-ins for the reference layers, and the table that selects them.

Each file holds one op: a drop-in subclass of a reference module (same constructor,
parameters, buffers and state dict) and the function(s) its forward runs. Which
implementation runs on which device type is one table, :data:`selection.AUTO`; the
backbones and necks select it when they are built (``impl='auto'``), see
:func:`apply_impl`. Nothing here is needed for correctness: ``impl='reference'`` runs
the plain layers of :mod:`hifuse_mm.models.layers`.
"""
from .selection import AUTO, IMPLS, apply_impl, resolve, selected, use_impl

__all__ = ['AUTO', 'IMPLS', 'apply_impl', 'resolve', 'selected', 'use_impl']
