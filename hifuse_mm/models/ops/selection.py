"""Which implementation each optimised op runs, per device type: the one table.

:data:`AUTO` is the table. A model's backbone and neck take ``impl`` (default
``'auto'``) and call :func:`apply_impl` on themselves once, when built:

* ``'auto'``: :data:`AUTO`; the environment variable ``HIFUSE_FAST_PATHS=0`` (read then,
  at build time) makes it ``'reference'``;
* ``'reference'``: the plain reference implementation everywhere (the layers of
  :mod:`hifuse_mm.models.layers`, torch, mmcv, mmpretrain), which is what the parity
  tests were written against and what :mod:`hifuse_mm.analysis.complexity` counts;
* a device type, ``'cpu'`` or ``'cuda'``: what :data:`AUTO` selects for that device
  type, on every device (e.g. the CUDA implementations on CPU tensors, for tests).

:func:`apply_impl` turns each module that has an optimised drop-in into the drop-in (by
assigning its ``__class__``; the parameters, buffers, state-dict keys and init are the
reference's) and records, per device type, the function its forward runs. A device type
without an entry runs the reference. Models are built on the CPU and moved to the GPU
afterwards, so the device type is read from each forward's input (a dict lookup), never
from a process-wide switch.
"""
import os
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch.nn as nn

from . import (batch_norm, channels_last, conv, external_attention, masa,
               window_attention)
from .drop_in import DropIn

#: op -> {device type: implementation}. A device type not listed runs the reference.
#: What loops over images or works around a CPU kernel is CPU-only; on CUDA the batched paths run (SDPA, cuDNN convolutions).
AUTO: Dict[str, Dict[str, str]] = {
    'channels_last': {'cpu': 'channels_last', 'cuda': 'channels_last'},
    'window_attention': {'cpu': 'sdpa_inference', 'cuda': 'sdpa'},
    'masa': {'cpu': 'matmul_low_precision_training', 'cuda': 'sdpa'},
    'external_attention': {'cpu': 'per_image', 'cuda': 'double_norm'},
    'pointwise_conv': {'cpu': 'matmul'},
    'dense_conv': {'cpu': 'im2col'},
    'depthwise_conv': {'cpu': 'fp32_bf16_training'},
    'batch_norm': {'cpu': 'channels_last_grad'},
}

#: Values of ``impl``.
IMPLS = ('auto', 'reference', 'cpu', 'cuda')
#: Device types a forced ``impl='cpu'`` / ``'cuda'`` applies to.
DEVICE_TYPES = ('cpu', 'cuda')

#: Reference class -> its drop-in.
DROP_INS: Dict[type, type] = {
    cls.reference: cls
    for cls in (batch_norm.OptimisedBatchNorm2d, channels_last.OptimisedLN2d,
                conv.OptimisedConv2d,
                external_attention.OptimisedExternalAttention,
                masa.OptimisedManhattanSelfAttention,
                window_attention.OptimisedWindowAttention)
}
#: Ops selected in place on modules whose class names them in ``selectable_op``
#: (the backbones' input layout): op -> implementations.
IN_PLACE: Dict[str, Dict[str, Callable]] = {
    'channels_last': channels_last.INPUT_IMPLEMENTATIONS,
}

_OFF = ('0', 'false', 'no', 'off')


def resolve(impl: str = 'auto') -> Dict[str, Dict[str, str]]:
    """The table ``impl`` stands for: op -> {device type: implementation}."""
    if impl not in IMPLS:
        raise ValueError(f'impl must be one of {IMPLS}, got {impl!r}')
    if impl == 'auto' and os.environ.get('HIFUSE_FAST_PATHS', '1').strip(
    ).lower() in _OFF:
        impl = 'reference'
    if impl == 'reference':
        return {}
    if impl == 'auto':
        return {op: dict(row) for op, row in AUTO.items()}
    return {op: dict.fromkeys(DEVICE_TYPES, row[impl])
            for op, row in AUTO.items() if impl in row}


def _functions(op, table, implementations) -> Dict[str, Callable]:
    return {device: implementations[name]
            for device, name in table.get(op, {}).items()}


def _reference_class(module: nn.Module) -> type:
    return type(module).reference if isinstance(module, DropIn) else type(module)


def apply_impl(module: nn.Module, impl: str = 'auto') -> nn.Module:
    """Select ``impl`` (see the module docstring) for every submodule of ``module``,
    ``module`` included, in place; returns ``module``."""
    table = resolve(impl)
    for m in module.modules():
        op = getattr(type(m), 'selectable_op', None)
        if op is not None:
            m.impls = _functions(op, table, IN_PLACE[op])
            continue
        reference = _reference_class(m)
        drop_in = DROP_INS.get(reference)
        if drop_in is None:
            continue
        impls = _functions(drop_in.op_of(m), table, drop_in.implementations)
        if impls:
            m.__class__ = drop_in
            m.impls = impls
        else:
            m.__class__ = reference
            m.__dict__.pop('impls', None)
    return module


@contextmanager
def use_impl(module: nn.Module, impl: str) -> Iterator[nn.Module]:
    """Run the enclosed code with ``impl`` selected for ``module``, then restore
    exactly the selection it had (also on an exception)."""
    saved: List[Tuple[nn.Module, type, Optional[dict]]] = [
        (m, type(m), m.__dict__.get('impls')) for m in module.modules()
    ]
    apply_impl(module, impl)
    try:
        yield module
    finally:
        for m, cls, impls in saved:
            m.__class__ = cls
            m.__dict__.pop('impls', None)
            if impls is not None:
                m.impls = impls


def selected(module: nn.Module) -> Dict[str, Dict[str, str]]:
    """``{module name: {device type: implementation function}}`` of ``module``'s
    optimised submodules."""
    return {name: {device: fn.__name__ for device, fn in m.impls.items()}
            for name, m in module.named_modules() if getattr(m, 'impls', None)}
