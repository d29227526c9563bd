"""Inference under CPU autocast with one low-precision copy of each weight."""
from typing import Dict, FrozenSet, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .drop_in import DropIn

_Stamp = Tuple[int, int, torch.dtype]


class WeightCache:
    """Mixin: the weights as autocast would cast them, cast once.

    Under autocast every forward casts each fp32 weight of a linear or
    convolution to the low-precision dtype; autocast reuses a cast only
    within one ``with autocast()`` region, and only for a parameter passed
    as it is (not a view of it, as the matmul 1x1 and im2col convolutions of
    :mod:`~hifuse_mm.models.ops.conv` use).

    On the device types in :attr:`cache_devices`, in eval mode, without
    autograd, eager (not under ``torch.compile``) and under autocast,
    :meth:`autocast_param` returns a copy cast once and kept on the module,
    recast whenever the parameter changes (its version counter or storage:
    an optimizer step, ``load_state_dict``, ``.to()``) and dropped by every
    ``train()`` / ``eval()`` call and on copying or pickling. In-place writes
    through ``param.data`` bypass the version counter (mmengine's EMA hook
    swaps weights that way, before the validation loop calls ``eval()``):
    after such a write outside a runner, call ``model.eval()`` again. The
    copy holds the same values as autocast's own cast, so the outputs are
    bit-identical; it costs the weights' size in the low-precision dtype.
    """

    _CACHE = '_autocast_weights'
    #: Device types whose inference uses the cache (set by ``apply_impl``).
    cache_devices: FrozenSet[str] = frozenset()

    def train(self, mode: bool = True):
        self.__dict__.pop(self._CACHE, None)
        return super().train(mode)

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop(self._CACHE, None)
        return state

    def autocast_param(self, name: str) -> Optional[torch.Tensor]:
        """Parameter ``name`` in the dtype the current autocast would use."""
        param = getattr(self, name)
        if param is None or self.training:
            return param
        device = param.device.type
        if (device not in self.cache_devices or torch.is_grad_enabled()
                or param.dtype != torch.float32
                or torch.compiler.is_compiling()
                or not torch.amp.is_autocast_available(device)
                or not torch.is_autocast_enabled(device)):
            return param
        dtype = torch.get_autocast_dtype(device)
        stamp: _Stamp = (param._version, param.data_ptr(), dtype)
        cache: Dict[str, tuple] = self.__dict__.setdefault(self._CACHE, {})
        hit = cache.get(name)
        if hit is None or hit[0] != stamp:
            hit = cache[name] = (stamp, param.detach().to(dtype))
        return hit[1]


def autocast_param(module: nn.Module, name: str) -> Optional[torch.Tensor]:
    """``module.autocast_param(name)`` for a :class:`WeightCache`, else the parameter."""
    if isinstance(module, WeightCache):
        return module.autocast_param(name)
    return getattr(module, name)


class CachedLinear(DropIn, WeightCache, nn.Linear):
    """Drop-in for ``nn.Linear`` whose inference under autocast uses
    :class:`WeightCache`'s cast weights."""

    reference = nn.Linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.autocast_param('weight'),
                        self.autocast_param('bias'))
