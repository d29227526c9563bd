"""Every change hifuse-mm makes to mmengine's internals, in one place.

Written against **mmengine 0.10.7** (:data:`TARGET_MMENGINE`); the code at each target is the
same in the OneDL fork ``onedl-mmengine`` 0.10.12 (checked against its source), so the same
patches apply there. Everything else hifuse-mm adds to a run is a subclass or a new registered
name (:class:`~hifuse_mm.engine.runner.HiFuseRunner`,
:class:`~hifuse_mm.engine.hooks.CrashSafeCheckpointHook`, the ``hifuse_atomic_local`` file
backend); ``import hifuse_mm`` changes none of what is listed here.

Scoped: applied by :class:`~hifuse_mm.engine.runner.HiFuseRunner` only while it works, each a
context manager that restores exactly what was there on exit (the value, or its absence) and
may be nested:

1. :func:`safe_checkpoint_loading` (also named :func:`safe_local_loading`): every loader in
   ``CheckpointLoader._schemes`` becomes ours (:mod:`hifuse_mm.engine.checkpoint_schemes`):
   ``''`` (local paths) :func:`hifuse_mm.engine.safe_checkpoint.load_from_local`, each remote
   scheme mmengine knows (``http(s)://``, ``torchvision://``, ``open-mmlab://``, ``mmcls://``,
   ``s3://``, ``petrel://``, ``pavi://``) a loader that fetches with that scheme's transport
   and loads the bytes with the same policy (weights-only, full unpickling only when trusted,
   or refused with a message), and any other registered prefix a loader that refuses. On
   exit every prefix that still holds our loader gets back exactly the loader it had (a
   prefix registered meanwhile is left alone). *Why not a registration:* mmengine picks a
   loader by the path's prefix from this one table; ``init_cfg=dict(type='Pretrained')`` and
   hooks load through the module functions of ``mmengine.runner.checkpoint``, which no runner
   method can reach. ``register_scheme(force=True)`` can replace a loader but not put the old
   one back.
2. :func:`atomic_last_checkpoint`: the module global ``open`` of
   ``mmengine.hooks.checkpoint_hook`` becomes :func:`hifuse_mm.engine.atomic_io.atomic_open`.
   *Why:* ``CheckpointHook._save_checkpoint_with_step`` writes ``work_dir/last_checkpoint`` with
   that module's ``open(save_file, 'w')``; no argument, backend or hook controls that write, and
   overriding the method would mean re-implementing mmengine's checkpoint rotation. Only
   :class:`~hifuse_mm.engine.hooks.CrashSafeCheckpointHook` applies it, around that one call.

Process-wide: only :func:`hifuse_mm.engine.install`, the explicit opt-in our command-line tools
call at start, applies these (idempotent, never undone):

3. :func:`install_safe_checkpoint_loading` (also named :func:`install_safe_local_loading`):
   as 1, for the rest of the process (mmengine's public ``CheckpointLoader.register_scheme(
   prefixes=..., force=True)`` for each registered prefix), so that whatever a tool loads
   through mmengine (``load_checkpoint``, MMPretrain's ``get_model``, runners of configs
   without ``runner_type``), from a file or a URL, is loaded safely. A prefix registered
   later (e.g. by a config's ``custom_imports``) is covered by 1 inside a ``HiFuseRunner``.
4. :func:`install_cpu_gloo_init`: ``mmengine.dist.utils._init_dist_pytorch`` starts a gloo
   process group on a CPU-only host instead of calling ``torch.cuda.set_device`` (which fails
   there). *Why not a registration:* ``init_dist`` dispatches to that private function by
   launcher name, with no registry. A :class:`~hifuse_mm.engine.runner.HiFuseRunner` does not
   need it (its ``setup_env`` starts the group itself); the tools install it for runners of
   configs without ``runner_type`` and for their own calls of ``init_dist``.

``tests/test_mmengine_patches.py`` has a test for each; ``tests/test_import_isolation.py``
checks that importing hifuse_mm and running a HiFuseRunner leave all of it as it was.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Dict, Iterator

from .atomic_io import atomic_open
from .checkpoint_schemes import safe_loader_for
from .cpu_distributed import gloo_process_group_args
from .safe_checkpoint import load_from_local

#: The mmengine version these patches were written against (also checked: onedl-mmengine
#: 0.10.12).
TARGET_MMENGINE = '0.10.7'
#: Marks the function :func:`install_cpu_gloo_init` puts in place.
_CPU_AWARE = '_hifuse_cpu_aware'
_MISSING = object()


# -- scoped -----------------------------------------------------------------------------------
def _safe_schemes(schemes: Dict[str, Any]) -> Dict[str, Any]:
    """prefix -> our loader for each prefix in ``schemes`` (``''`` always included)."""
    safe = {prefix: safe_loader_for(prefix, loader) for prefix, loader in schemes.items()}
    safe.setdefault('', load_from_local)
    return safe


@contextmanager
def safe_checkpoint_loading() -> Iterator[None]:
    """Patch 1: mmengine loads checkpoints of every scheme with our safe loaders inside."""
    from mmengine.runner.checkpoint import CheckpointLoader

    schemes = CheckpointLoader._schemes
    safe = _safe_schemes(schemes)
    before = {prefix: schemes.get(prefix, _MISSING) for prefix in safe}
    # Assigning an existing key keeps its place (mmengine sorts prefixes, longest first); ''
    # is the only one that may be new, and it belongs last.
    schemes.update(safe)
    try:
        yield
    finally:
        schemes = CheckpointLoader._schemes  # register_scheme may have rebuilt the dict
        for prefix, loader in safe.items():
            if schemes.get(prefix, _MISSING) is not loader:
                continue  # replaced meanwhile (register_scheme(force=True)): keep that
            if before[prefix] is _MISSING:
                schemes.pop(prefix, None)
            else:
                schemes[prefix] = before[prefix]


#: The name this patch had when it covered local paths only.
safe_local_loading = safe_checkpoint_loading


@contextmanager
def atomic_last_checkpoint() -> Iterator[None]:
    """Patch 2: ``CheckpointHook`` writes ``last_checkpoint`` atomically inside."""
    from mmengine.hooks import checkpoint_hook

    module_globals = vars(checkpoint_hook)
    before = module_globals.get('open', _MISSING)
    module_globals['open'] = atomic_open
    try:
        yield
    finally:
        if before is _MISSING:
            module_globals.pop('open', None)
        else:
            module_globals['open'] = before


# -- process-wide, through hifuse_mm.engine.install() only ------------------------------------
def install_safe_checkpoint_loading() -> None:
    """Patch 3: our safe loaders are mmengine's loaders of every scheme for the rest of the
    process (idempotent: nothing is re-registered when they are in place)."""
    from mmengine.runner.checkpoint import CheckpointLoader

    for prefix, loader in _safe_schemes(CheckpointLoader._schemes).items():
        if CheckpointLoader._schemes.get(prefix) is not loader:
            CheckpointLoader.register_scheme(prefixes=prefix, loader=loader, force=True)


#: The name this patch had when it covered local paths only.
install_safe_local_loading = install_safe_checkpoint_loading


def install_cpu_gloo_init() -> None:
    """Patch 4: mmengine's PyTorch-launcher initialiser uses gloo on CPU-only hosts."""
    from mmengine.dist import utils as dist_utils

    from ..utils import device

    original = dist_utils._init_dist_pytorch
    if getattr(original, _CPU_AWARE, False):
        return

    def init_dist_pytorch(backend: str, init_backend: str = 'torch', **kwargs: Any) -> None:
        if not device.on_cpu_only_host() or init_backend != 'torch':
            return original(backend, init_backend=init_backend, **kwargs)
        import torch.distributed
        torch.distributed.init_process_group(**gloo_process_group_args(backend, **kwargs))

    setattr(init_dist_pytorch, _CPU_AWARE, True)
    init_dist_pytorch.__wrapped__ = original  # type: ignore[attr-defined]
    dist_utils._init_dist_pytorch = init_dist_pytorch
