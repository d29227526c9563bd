"""The base of the optimised drop-ins: per device type, the implementation to run."""
from typing import Callable, Dict, Optional

import torch.nn as nn


class DropIn:
    """Mixin of a drop-in for a reference module class (``reference``).

    A drop-in subclasses its reference directly, adds no parameter or buffer
    and keeps its constructor, so a module of the reference class becomes one
    by assigning ``__class__`` (as ``torch.nn.utils.parametrize`` does) and
    back again: the state dict, the parameter count and the weight init are
    the reference's. :func:`~hifuse_mm.models.ops.apply_impl` does this when
    a backbone or neck is built and sets :attr:`impls`.

    ``forward`` runs ``impls[x.device.type](self, x, ...)`` for the first
    input ``x``, or the reference's ``forward`` when the device type has no
    entry: the device is read from the input because models are built on the
    CPU and moved to a GPU afterwards.
    """

    #: The class this one replaces.
    reference: type = nn.Module
    #: The op's name in :data:`hifuse_mm.models.ops.selection.AUTO`.
    op: Optional[str] = None
    #: Implementation name (as in the table) -> ``fn(module, *inputs)``.
    implementations: Dict[str, Callable] = {}
    #: Device type -> implementation, set by ``apply_impl``.
    impls: Dict[str, Callable] = {}

    @classmethod
    def op_of(cls, module: nn.Module) -> Optional[str]:
        """The op ``module`` (an instance of :attr:`reference`) is an instance of."""
        return cls.op

    def forward(self, x, *args, **kwargs):
        fn = self.impls.get(x.device.type)
        if fn is None:
            return super().forward(x, *args, **kwargs)
        return fn(self, x, *args, **kwargs)
