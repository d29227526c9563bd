"""The one switch for the models' fast paths.

HiFuse and HEMF have two implementations of some steps. The *plain* path
is the reference: what the parity tests were written against, and what
:mod:`hifuse_mm.analysis.complexity` counts. The *fast* path computes the same
function with fewer passes over memory. The fast paths (each documented
where it lives):

* window attention (:class:`~hifuse_mm.models.layers.WindowAttention`)
  and MaSA (:class:`~hifuse_mm.models.layers.ManhattanSelfAttention`)
  through :func:`torch.nn.functional.scaled_dot_product_attention`, with
  the relative-position bias plus shift mask, or the decay, as the
  additive mask; the shift mask and the window-partition bookkeeping are
  cached instead of rebuilt on every call;
* the two-branch backbones run their convolutional parts in the
  channels-last memory format (NHWC), and the channels-first LayerNorm
  (:class:`~hifuse_mm.models.layers.LayerNorm2d`), the token/map
  reshapes and the patch merging
  (:class:`~hifuse_mm.models.layers.PatchMerging2x2`) stop copying back
  to NCHW;
* inference under autocast reuses one low-precision copy of each weight
  (:mod:`~hifuse_mm.models.layers.autocast_weights`), and HEMF's external
  attention and stage-1 MaSA run image by image with fewer passes over
  memory (see :class:`~hifuse_mm.models.layers.MultiHeadExternalAttention`
  and :class:`~hifuse_mm.models.layers.ManhattanSelfAttention`).

Both paths have the same parameters and state dict; the fast one agrees
with the plain one to float rounding (tests/test_fast_paths.py checks
1e-5 in fp32). The switch is process-wide and read on every forward, so
it applies to models already built::

    from hifuse_mm.models import fast_paths

    fast_paths.enabled()              # True unless HIFUSE_FAST_PATHS=0
    with fast_paths.fast_paths(False):
        logits = model(x)             # the plain, reference path
    fast_paths.set_enabled(False)     # process-wide, until set again

The environment variable ``HIFUSE_FAST_PATHS=0`` makes the plain path the
default of a process (for debugging; the default is on).
"""
import os
from contextlib import contextmanager
from typing import Iterator

import torch

__all__ = ['enabled', 'set_enabled', 'fast_paths', 'needs_grad']


def _default() -> bool:
    value = os.environ.get('HIFUSE_FAST_PATHS', '1').strip().lower()
    return value not in ('0', 'false', 'no', 'off')


_ENABLED = _default()


def enabled() -> bool:
    """Whether the fast paths are on (read by the models on every forward)."""
    return _ENABLED


def set_enabled(flag: bool) -> bool:
    """Turn the fast paths on or off process-wide; returns the old value."""
    global _ENABLED
    old, _ENABLED = _ENABLED, bool(flag)
    return old


@contextmanager
def fast_paths(flag: bool = True) -> Iterator[None]:
    """Run the enclosed code with the fast paths on (True) or off (False).

    Restores the previous setting on exit, also on an exception.
    """
    old = set_enabled(flag)
    try:
        yield
    finally:
        set_enabled(old)


def needs_grad(*tensors: torch.Tensor) -> bool:
    """True when autograd will record an op on ``tensors``.

    The fused attention kernels are only used when it will not: on this
    stack's CPU build their backward is slower than the plain path's
    (measured, see docs/benchmarks.md), and a trainable additive mask (the
    relative-position bias) sends them to an unfused fallback anyway.
    """
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
