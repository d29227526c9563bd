"""Low-precision copies of the weights, kept across inference forwards."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import fast_paths

_Stamp = Tuple[int, int, torch.dtype]


class AutocastWeightCache:
    """Mixin: the weights as autocast would cast them, cast once.

    Under autocast every forward casts each fp32 weight of a linear or
    convolution to the low-precision dtype; autocast reuses a cast only
    within one ``with autocast()`` region, and only for a parameter passed
    as it is (not a view of it, as :class:`PointwiseConv2d` and
    :class:`Im2colConv2d` use). HEMF casts ~60 M weights per forward (about
    5% of a bf16 inference batch of 8 on a 2-core CPU).

    With the fast paths on (:mod:`~hifuse_mm.models.fast_paths`), in eval
    mode, without autograd and under autocast, :meth:`autocast_param`
    returns a copy cast once and kept on the module, recast whenever the
    parameter changes (its version counter or storage: an optimizer step,
    ``load_state_dict``, ``.to()``) and dropped by every ``train()`` /
    ``eval()`` call and on copying or pickling. In-place writes through
    ``param.data`` bypass the version counter (mmengine's EMA hook swaps
    weights that way, before the validation loop calls ``eval()``): after
    such a write outside a runner, call ``model.eval()`` again. The copy
    holds the same values as autocast's own cast, so the outputs are
    bit-identical; it costs the weights' size in the low-precision dtype.
    Training (autograd on, or train mode) never uses or fills the cache.
    """

    _CACHE = '_autocast_weights'

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
        if param is None or not fast_paths.enabled() or self.training:
            return param
        device = param.device.type
        if (torch.is_grad_enabled() or param.dtype != torch.float32
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


class Linear(AutocastWeightCache, nn.Linear):
    """``nn.Linear`` (same parameters and state dict) whose inference under
    autocast uses :class:`AutocastWeightCache`'s cast weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.autocast_param('weight'),
                        self.autocast_param('bias'))


class Conv2d(AutocastWeightCache, nn.Conv2d):
    """``nn.Conv2d`` (same parameters and state dict) whose inference under
    autocast uses :class:`AutocastWeightCache`'s cast weights; the base of
    the project's convolutions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.autocast_param('weight'),
                                  self.autocast_param('bias'))
