"""Speed options for the tools: mixed precision and ``torch.compile``.

What a tool needs to offer ``--amp`` / a precision option and ``--compile``
without knowing the device::

    from hifuse_mm.utils.speed import autocast_context, maybe_compile

    model = maybe_compile(model)                     # or leave eager
    with torch.no_grad(), autocast_context('cpu', 'bf16'):
        logits = model(images, mode='tensor')

* :func:`autocast_context` is ``torch.autocast`` for ``'bf16'`` / ``'fp16'``
  and a no-op for ``'fp32'``; on the CPU it runs bf16 on AMX / AVX512-BF16
  hardware (fp16 works but has no fast CPU kernels: it is emulated, tens of
  times slower than fp32; :func:`warn_slow_precision` says so). Weights
  stay fp32 (mixed precision, not a bf16 model).
* :func:`grad_scaler` gives the loss scaler fp16 training needs (None for
  fp32 and bf16, which has fp32's exponent range).
* :func:`maybe_compile` compiles a module's ``forward`` (or another
  method) with ``torch.compile`` and falls back to eager, with a warning,
  when compiling fails: no C++ compiler, an unsupported op, an old
  PyTorch. The module object, its attributes and its state dict are
  unchanged.

The models' own optimised implementations (fused attention, channels-last
layouts) are selected per device type when a model is built (``impl``, see
:mod:`hifuse_mm.models.ops`); the default ``'auto'`` uses them.
"""
import contextlib
import functools
import warnings
from typing import Any, Callable, ContextManager, Optional

import torch
import torch.nn as nn

__all__ = [
    'PRECISIONS', 'autocast_dtype', 'autocast_context', 'grad_scaler',
    'maybe_compile', 'slow_precision_note', 'to_channels_last',
    'warn_slow_precision'
]

#: Precision names the tools accept.
PRECISIONS = ('fp32', 'bf16', 'fp16')
_DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
_ALIASES = {
    'float32': 'fp32', 'float': 'fp32', 'bfloat16': 'bf16',
    'float16': 'fp16', 'half': 'fp16', 'amp': 'fp16'
}


def _precision(precision: str) -> str:
    name = _ALIASES.get(str(precision).lower(), str(precision).lower())
    if name not in _DTYPES:
        raise ValueError(f'precision must be one of {PRECISIONS}, '
                         f'got {precision!r}')
    return name


def _device_type(device: Any) -> str:
    return torch.device(device).type


def autocast_dtype(precision: str) -> Optional[torch.dtype]:
    """The autocast dtype of a precision name (None for ``'fp32'``)."""
    return _DTYPES[_precision(precision)]


def autocast_context(device: Any, precision: str) -> ContextManager:
    """``torch.autocast`` on ``device`` for ``precision`` (no-op for fp32).

    Args:
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``, a ``torch.device``...
        precision: ``'fp32'``, ``'bf16'`` or ``'fp16'`` (also
            ``'float32'``, ``'bfloat16'``, ``'float16'``).
    """
    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=_device_type(device), dtype=dtype)


def slow_precision_note(device: Any, precision: str) -> Optional[str]:
    """Why ``precision`` on ``device`` is slow (fp16 on a CPU), else None."""
    if _precision(precision) == 'fp16' and _device_type(device) == 'cpu':
        return ('fp16 on a CPU is emulated and slow (tens of times slower '
                'than fp32; 33x in one tools/infer.py run): use bf16 '
                '(--precision bf16, fast on CPUs with AMX / AVX512-BF16) or '
                'fp32')
    return None


def warn_slow_precision(device: Any, precision: str,
                        stacklevel: int = 3) -> Optional[str]:
    """Warn (``RuntimeWarning``) when ``precision`` is slow on ``device``.

    Called by the tools and :class:`~hifuse_mm.apis.Classifier` before any
    work; returns the message (None: nothing to say).
    """
    note = slow_precision_note(device, precision)
    if note is not None:
        warnings.warn(note, RuntimeWarning, stacklevel=stacklevel)
    return note


def grad_scaler(device: Any, precision: str) -> Optional[Any]:
    """A ``torch.amp.GradScaler`` for fp16 training, else None."""
    if _precision(precision) != 'fp16':
        return None
    return torch.amp.GradScaler(_device_type(device))


def to_channels_last(model: nn.Module) -> nn.Module:
    """Store the model's 4-D parameters and buffers channels-last (in place).

    Only the memory layout changes, not the values or the state dict's
    shapes. Feed it channels-last inputs too
    (``x.contiguous(memory_format=torch.channels_last)``).
    """
    return model.to(memory_format=torch.channels_last)


class _CompiledOrEager:
    """Call the compiled function; on its first failure, warn, go eager."""

    def __init__(self, eager: Callable, compiled: Callable,
                 name: str) -> None:
        self.eager = eager
        self.compiled = compiled
        self.name = name
        self.failed = False
        functools.update_wrapper(self, eager)

    def __call__(self, *args, **kwargs):
        if not self.failed:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as error:  # noqa: BLE001 (any compile failure)
                self.failed = True
                warnings.warn(
                    f'torch.compile of {self.name} failed, running eager '
                    f'instead ({type(error).__name__}: '
                    f'{str(error).strip().splitlines()[0][:300]})',
                    RuntimeWarning, stacklevel=2)
        return self.eager(*args, **kwargs)


def maybe_compile(model: nn.Module,
                  enabled: bool = True,
                  method: str = 'forward',
                  **compile_kwargs) -> nn.Module:
    """Compile ``model.<method>`` with ``torch.compile``, in place.

    The compiled method replaces the instance's ``method`` attribute, so
    ``model(...)`` (for ``'forward'``), attributes, ``state_dict`` and
    checkpoints are untouched. Compilation happens on the first call; if
    ``torch.compile`` is missing or the first call raises, a
    ``RuntimeWarning`` says why and the model runs eager from then on
    (the failed call is re-run eagerly, so no result is lost). Errors that
    only appear later (e.g. in a compiled backward) are not caught.

    Args:
        model: The module.
        enabled: False returns ``model`` untouched (so tools can pass
            their flag straight through).
        method: Name of the method to compile (``'forward'``; mmengine's
            runner compiles ``'train_step'`` etc. the same way).
        **compile_kwargs: Passed to ``torch.compile`` (``mode``,
            ``dynamic``, ``backend``...).

    Returns:
        ``model``.
    """
    if not enabled:
        return model
    eager = getattr(model, method)
    name = f'{type(model).__name__}.{method}'
    if isinstance(eager, _CompiledOrEager):
        return model
    compile_fn = getattr(torch, 'compile', None)
    if compile_fn is None:
        warnings.warn(f'torch {torch.__version__} has no torch.compile; '
                      f'{name} runs eager', RuntimeWarning, stacklevel=2)
        return model
    try:
        compiled = compile_fn(eager, **compile_kwargs)
    except Exception as error:  # noqa: BLE001
        warnings.warn(f'torch.compile of {name} failed, running eager '
                      f'instead ({type(error).__name__}: {error})',
                      RuntimeWarning, stacklevel=2)
        return model
    setattr(model, method, _CompiledOrEager(eager, compiled, name))
    return model
