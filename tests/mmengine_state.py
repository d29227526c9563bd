"""A snapshot of what a plugin could change in mmengine / MMPretrain, and the difference of two.

Used by tests/test_import_isolation.py in fresh interpreters. :func:`snapshot` maps a key to
the object found there (or, for ordered state, a tuple of it):

* every entry of every registry object in ``mmengine.registry`` and ``mmpretrain.registry``
  and of their children (mmcv's included), and each registry's child names;
* the attributes of the classes and modules hifuse-mm used to patch (``Runner``,
  ``CheckpointHook``, ``LocalBackend``, ``CheckpointLoader``; the modules
  ``mmengine.hooks.checkpoint_hook``, ``mmengine.runner.{runner,checkpoint}``,
  ``mmengine.dist.utils``, ``mmengine.fileio.io``);
* mmengine's file backends by name and prefix, ``CheckpointLoader``'s schemes in order,
  MMPretrain's ``LoadImageFromFile``, and ``warnings.filters``.

Call :func:`import_registry_locations` first: MMPretrain's registries import their modules
lazily, and those registrations are MMPretrain's, not a plugin's.
"""
import importlib
import warnings
from typing import Any, Dict, Iterator, List, Tuple

CLASSES = ('mmengine.runner.Runner', 'mmengine.hooks.CheckpointHook',
           'mmengine.fileio.backends.LocalBackend', 'mmengine.runner.checkpoint.CheckpointLoader')
MODULES = ('mmengine.hooks.checkpoint_hook', 'mmengine.runner.runner',
           'mmengine.runner.checkpoint', 'mmengine.dist.utils', 'mmengine.fileio.io')
ORDERED = ('schemes', 'warnings.filters')


def _object(dotted: str) -> Any:
    module, _, name = dotted.rpartition('.')
    return getattr(importlib.import_module(module), name)


def registries() -> Iterator[Any]:
    """Every registry of mmengine and MMPretrain, and their children, each once."""
    from mmengine.registry import Registry
    seen, todo = set(), []
    for module in ('mmengine.registry', 'mmpretrain.registry'):
        todo.extend(v for v in vars(importlib.import_module(module)).values()
                    if isinstance(v, Registry))
    while todo:
        registry = todo.pop()
        if id(registry) in seen:
            continue
        seen.add(id(registry))
        todo.extend(registry.children.values())
        yield registry


def import_registry_locations() -> None:
    """Import the modules MMPretrain's registries load lazily (what a first build does)."""
    for registry in list(registries()):
        registry.import_from_location()


def snapshot() -> Dict[str, Any]:
    """Key -> object of everything listed in the module docstring."""
    from mmengine.fileio.backends import backends, prefix_to_backends
    from mmengine.runner.checkpoint import CheckpointLoader
    from mmpretrain.registry import TRANSFORMS
    state: Dict[str, Any] = {}
    for registry in registries():
        where = f'registry {registry.scope}.{registry.name}'
        state[f'{where} children'] = tuple(sorted(registry.children))
        for name, obj in registry.module_dict.items():
            state[f'{where}: {name}'] = obj
    for dotted in CLASSES:
        for name, obj in vars(_object(dotted)).items():
            if not (dotted.endswith('CheckpointLoader') and name == '_schemes'):
                state[f'class {dotted}.{name}'] = obj
    for dotted in MODULES:
        for name, obj in vars(importlib.import_module(dotted)).items():
            state[f'module {dotted}.{name}'] = obj
    state.update({f'file backend {k}': v for k, v in backends.items()})
    state.update({f'file backend prefix {k!r}': v for k, v in prefix_to_backends.items()})
    state['schemes'] = tuple(CheckpointLoader._schemes.items())
    state["mmpretrain TRANSFORMS.get('LoadImageFromFile')"] = TRANSFORMS.get('LoadImageFromFile')
    state['warnings.filters'] = tuple(warnings.filters)
    return state


def difference(before: Dict[str, Any], after: Dict[str, Any]
               ) -> Tuple[List[str], List[str], List[str]]:
    """``(changed, removed, added)`` keys; objects compare by identity, ordered state by
    equality of its items (themselves compared by identity or equality)."""
    def same(key: str) -> bool:
        a, b = before[key], after[key]
        if key in ORDERED or key.endswith(' children'):
            return a == b
        return a is b
    changed = sorted(k for k in before if k in after and not same(k))
    removed = sorted(k for k in before if k not in after)
    added = sorted(k for k in after if k not in before)
    return changed, removed, added


def describe(key: str, obj: Any) -> str:
    """``key -> module.qualname`` of a snapshot entry, for reports."""
    name = getattr(obj, '__qualname__', None) or type(obj).__qualname__
    return f'{key} -> {getattr(obj, "__module__", "?")}.{name}'
