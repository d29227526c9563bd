"""The few harmless non-tensor types our training checkpoints hold, for weights-only loading.

``torch.load(weights_only=True)`` refuses any pickled global outside torch's own list, so an
mmengine training checkpoint does not load with it: its ``message_hub`` holds
:class:`mmengine.logging.HistoryBuffer` objects (numpy arrays inside) and numpy scalars. These
types only carry numbers; none of them runs code when rebuilt. :func:`allowed_globals` lists them
for :func:`torch.serialization.safe_globals`, so our own training checkpoints load weights-only
(for ``tools/test.py``, ``tools/infer.py``, publishing, ``--resume``) while a hostile pickle is
still refused.

One entry needs care: a ``HistoryBuffer`` pickles its statistics methods as
``getattr(HistoryBuffer, 'mean')``. Allowing ``builtins.getattr`` itself would let a pickle
reach arbitrary attributes, so the name ``builtins.getattr`` is bound to
:func:`history_buffer_method` instead, which returns only those methods and refuses anything
else.
"""
from __future__ import annotations

import pickle
from typing import Any, Callable, List, Set, Tuple, Union

import numpy as np
from mmengine.logging import HistoryBuffer

SafeGlobal = Union[Callable[..., Any], type, Tuple[Callable[..., Any], str]]

#: numpy dtype characters whose dtype classes may appear in pickled arrays and scalars
#: (booleans, integers, floats, complex numbers; no object, string or datetime dtypes).
_NUMERIC_DTYPE_CHARS = '?bBhHiIlLqQefdgFDG'


class RefusedAttributeError(pickle.UnpicklingError):
    """A pickle asked for an attribute outside the allowlist (torch.load reports it as an
    ``UnpicklingError``, like any other refused global)."""


def history_buffer_method(owner: Any, name: str) -> Any:
    """``getattr`` restricted to ``HistoryBuffer``'s statistics methods (what it pickles)."""
    allowed = getattr(HistoryBuffer, '_statistics_methods', {})
    if owner is HistoryBuffer and isinstance(name, str) and (
            name in allowed or name in ('min', 'max', 'mean', 'current')):
        return getattr(HistoryBuffer, name)
    raise RefusedAttributeError(
        f'checkpoint asks for attribute {name!r} of {owner!r}; only HistoryBuffer statistics '
        'methods are allowed in weights-only loading')


def _numpy_globals() -> List[SafeGlobal]:
    """numpy's array / scalar rebuild functions under both module names (numpy 1 and 2)."""
    from numpy._core import multiarray  # numpy >= 2
    entries: List[SafeGlobal] = [np.ndarray, np.dtype]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        entries.append((multiarray._reconstruct, f'{module}._reconstruct'))
        entries.append((multiarray.scalar, f'{module}.scalar'))
    entries.extend(sorted({type(np.dtype(char)) for char in _NUMERIC_DTYPE_CHARS},
                          key=lambda cls: cls.__name__))
    return entries


def allowed_globals() -> List[SafeGlobal]:
    """Everything beyond torch's default allowlist that our training checkpoints need."""
    return _numpy_globals() + [HistoryBuffer, (history_buffer_method, 'builtins.getattr')]


def global_name(entry: SafeGlobal) -> str:
    """The ``module.name`` a pickle uses for an allowlist entry."""
    if isinstance(entry, tuple):
        return entry[1]
    return f'{entry.__module__}.{entry.__qualname__}'


def allowed_global_names() -> Set[str]:
    """``module.name`` of every entry of :func:`allowed_globals`."""
    return {global_name(entry) for entry in allowed_globals()}
