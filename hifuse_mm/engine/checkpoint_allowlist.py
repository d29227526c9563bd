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

**Signed checkpoints.** The ``--resume`` of a checkpoint our training signed may need more than
weights-only loading allows (a hook of the run can store, say, a ``fractions.Fraction``). It is
then unpickled with :data:`restricted_pickle`: Python's own unpickler, but every global it
names must be one of :func:`signed_checkpoint_globals`: the weights-only list above (torch's
own entries included) plus plain-data types of the standard library (:data:`PLAIN_DATA`).
Anything else (``os.system``, ``subprocess.*``, ``builtins.eval``, any importable function) is
refused, whatever the signature says: a signature proves who wrote the file, not that nothing
in the run put a code-running object into it. Training checkpoints of our runs hold only
torch's types, numpy arrays and scalars and ``HistoryBuffer`` (listed with
``torch.serialization.get_unsafe_globals_in_checkpoint`` from real runs, also with
``EMAHook``, ``--amp`` and a warm-up + cosine schedule).
"""
from __future__ import annotations

import _compat_pickle
import importlib
import pickle
import types
from typing import Any, Callable, Dict, List, Set, Tuple, Union

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


# -- signed checkpoints: full unpickling restricted to an allowlist ---------------------------
#: Standard-library types that only hold data: rebuilding one runs no code a file can choose.
PLAIN_DATA = (
    'builtins.bool', 'builtins.int', 'builtins.float', 'builtins.complex', 'builtins.str',
    'builtins.bytes', 'builtins.bytearray', 'builtins.list', 'builtins.tuple', 'builtins.dict',
    'builtins.set', 'builtins.frozenset', 'builtins.slice', 'builtins.range',
    'collections.OrderedDict', 'collections.defaultdict', 'collections.deque',
    'collections.Counter', 'fractions.Fraction', 'decimal.Decimal', 'datetime.date',
    'datetime.time', 'datetime.datetime', 'datetime.timedelta', 'datetime.timezone',
    'uuid.UUID', 'pathlib.PurePath', 'pathlib.PurePosixPath', 'pathlib.PureWindowsPath',
    'pathlib.Path', 'pathlib.PosixPath', 'pathlib.WindowsPath', 'argparse.Namespace',
    'types.SimpleNamespace')


class RefusedGlobalError(pickle.UnpicklingError):
    """A signed checkpoint names a global outside :func:`signed_checkpoint_globals`."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f'unsupported GLOBAL {name}: not a type our training checkpoints '
                         'hold')


def _torch_allowed_globals() -> Dict[str, Any]:
    """What ``torch.load(weights_only=True)`` accepts by itself and through ``safe_globals``."""
    entries: Dict[str, Any] = {}
    try:
        from torch import _weights_only_unpickler as weights_only
        entries.update(weights_only._get_allowed_globals())
        entries.update(weights_only._get_user_allowed_globals())
    except (ImportError, AttributeError):  # another torch: its public list only
        import torch
        for entry in torch.serialization.get_safe_globals():
            entries[global_name(entry)] = entry[0] if isinstance(entry, tuple) else entry
    return entries


def _plain_data() -> Dict[str, Any]:
    entries = {}
    for name in PLAIN_DATA:
        module, _, attribute = name.rpartition('.')
        entries[name] = getattr(importlib.import_module(module), attribute)
    return entries


def signed_checkpoint_globals() -> Dict[str, Any]:
    """``module.name`` -> object: every global a signed checkpoint may name when unpickled
    fully (what weights-only loading allows, ours included, and :data:`PLAIN_DATA`)."""
    entries = _torch_allowed_globals()
    entries.update(_plain_data())
    entries.update((global_name(entry), entry[0] if isinstance(entry, tuple) else entry)
                   for entry in allowed_globals())  # binds builtins.getattr to ours
    return entries


class RestrictedUnpickler(pickle.Unpickler):
    """Python's unpickler, with globals resolved only from :func:`signed_checkpoint_globals`
    (never imported by name), so a pickle cannot reach code-running functions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._allowed = signed_checkpoint_globals()

    def find_class(self, module: str, name: str) -> Any:
        if not (isinstance(module, str) and isinstance(name, str)):
            raise RefusedGlobalError(f'{module!r}.{name!r}')
        # Protocol 0-2 pickles (torch.save's default) name Python 2 modules: map them as
        # pickle's own find_class does (``__builtin__`` -> ``builtins``).
        module, name = _compat_pickle.NAME_MAPPING.get(
            (module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
        try:
            return self._allowed[f'{module}.{name}']
        except KeyError:
            raise RefusedGlobalError(f'{module}.{name}') from None


def _restricted_load(file: Any, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


#: A ``pickle_module`` for ``torch.load(..., weights_only=False)`` that unpickles with
#: :class:`RestrictedUnpickler` (torch also reads its legacy-format headers with ``load``).
restricted_pickle = types.ModuleType('hifuse_mm_restricted_pickle')
restricted_pickle.Unpickler = RestrictedUnpickler  # type: ignore[attr-defined]
restricted_pickle.load = _restricted_load  # type: ignore[attr-defined]
restricted_pickle.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]
