"""Config transforms shared by training and testing runs (pure functions of the config).

Each function edits a loaded :class:`~mmengine.config.Config` in place from explicit keyword
options: no argparse, no file I/O. The tools' flags map onto them one to one
(:mod:`hifuse_mm.cli`); the train- and test-only transforms are in :mod:`.training_config` and
:mod:`.testing_config`.

* Where the run writes (:func:`set_work_dir`) and MMPretrain tools' dataloader defaults
  (:func:`set_dataloader_defaults`).
* Run safety: every run gets the hooks of :data:`RUN_HOOKS` (:func:`add_run_hooks`: exact
  resume, stop on a NaN/inf loss, class-count check, skipped-image report);
  :func:`set_skip_bad_images` leaves bad images out instead of stopping; ``--compile`` adds
  ``CompileModelHook`` (:func:`add_compile_hook`).
* ``persistent_workers`` needs ``num_workers > 0``: mmpretrain's tools/train.py defaults
  ``persistent_workers=True`` for every dataloader, and torch's DataLoader raises ValueError when
  num_workers == 0 (same bug class fixed in mmaction2:
  https://github.com/open-mmlab/mmaction2/pull/1202): :func:`fix_persistent_workers`.
* ``--launcher`` on a CPU-only host: gloo and DDP without ``device_ids``:
  :func:`configure_distributed` (the process-group side is :mod:`.cpu_distributed`).
* ``--amp``: :func:`amp_optim_wrapper_cfg` selects :class:`.CPUAwareAmpOptimWrapper`.

* ``--cfg-options``: :func:`merge_cfg_options` (a key that cannot be set, or a new top-level key
  nothing reads, is an error naming it; :func:`suggest_key` finds the key probably meant).

:func:`prepare_run` applies the shared tail of both tools in their order. An option that does
not fit the config raises :class:`RunConfigError`, whose message says what to do.
"""
from __future__ import annotations

import copy
import difflib
import inspect
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple

from mmengine.config import Config, ConfigDict

from ..utils import device

DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
#: Hooks the tools add to every run (unless the config already has one of the type).
RUN_HOOKS = ('EpochReseedHook', 'NonFiniteLossHook', 'ClassCountCheckHook', 'BadImageReportHook')


class RunConfigError(ValueError):
    """A run option that does not fit the config; the message names the option and the fix
    (the command-line tools print it and exit with status 1)."""


def set_work_dir(cfg: Config, work_dir: Optional[str], config_file: str) -> None:
    """``work_dir`` if given, else the config's own, else ``work_dirs/<config name>``."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = str(Path('work_dirs') / Path(config_file).stem)


def set_dataloader_defaults(cfg: Config, *, pin_memory: bool,
                            persistent_workers: Optional[bool]) -> None:
    """Fill MMPretrain tools' dataloader defaults; the config's own values win, options override.

    ``pin_memory=False`` turns pinning off everywhere; ``persistent_workers=None`` leaves that
    key alone (test tool), ``False`` turns it off everywhere.
    """
    defaults = dict(pin_memory=not device.on_cpu_only_host(),
                    collate_fn=dict(type='default_collate'))
    if persistent_workers is not None:
        defaults['persistent_workers'] = True
    for key in DATALOADER_KEYS:
        loader = cfg.get(key)
        if loader is None:
            continue
        cfg[key] = ConfigDict({**defaults, **loader})
        if not pin_memory:
            cfg[key].pin_memory = False
        if persistent_workers is False:
            cfg[key].persistent_workers = False


def add_compile_hook(cfg: Config) -> None:
    """``--compile``: append ``CompileModelHook`` (torch.compile, eager fallback)."""
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [dict(type='CompileModelHook')]


def add_run_hooks(cfg: Config) -> None:
    """Add the hooks of :data:`RUN_HOOKS` the config does not have yet (exact resume, NaN/inf
    loss stop, class-count check, skipped-image report)."""
    hooks = list(cfg.get('custom_hooks') or [])
    present = {str(hook.get('type')).split('.')[-1] for hook in hooks if isinstance(hook, dict)}
    cfg.custom_hooks = hooks + [dict(type=name) for name in RUN_HOOKS if name not in present]


def set_skip_bad_images(cfg: Config) -> None:
    """``--skip-bad-images``: set ``skip_bad_images=True`` on every dataloader's dataset.

    Raises:
        RunConfigError: a dataset is not a :class:`~hifuse_mm.datasets.MedicalImageDataset`.
    """
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import DATASETS

    from ..datasets import MedicalImageDataset
    for key in DATALOADER_KEYS:
        dataset = (cfg.get(key) or {}).get('dataset')
        if dataset is None:
            continue
        with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmpretrain')):
            kind = DATASETS.get(dataset.get('type')) if isinstance(dataset.get('type'), str) \
                else dataset.get('type')
        if not (isinstance(kind, type) and issubclass(kind, MedicalImageDataset)):
            raise RunConfigError(f'--skip-bad-images needs hifuse_mm datasets '
                                 f'(MedicalImageDataset, ISIC2018, Kvasir, COVID19CT); '
                                 f'{key}.dataset is {dataset.get("type")!r}')
        dataset['skip_bad_images'] = True


def fix_persistent_workers(cfg: Config) -> None:
    """Set ``persistent_workers=False`` on every dataloader config with ``num_workers == 0``."""
    for key in DATALOADER_KEYS:
        loader = cfg.get(key)
        if loader is not None and loader.get('num_workers', 0) == 0:
            loader['persistent_workers'] = False


def amp_optim_wrapper_cfg(optim_wrapper: dict) -> None:
    """Switch an ``optim_wrapper`` config to mixed precision (``tools/train.py --amp``)."""
    if optim_wrapper.get('type', 'OptimWrapper') in ('OptimWrapper', 'AmpOptimWrapper'):
        optim_wrapper['type'] = 'CPUAwareAmpOptimWrapper'
    optim_wrapper.setdefault('loss_scale', 'dynamic')


def configure_distributed(cfg: Config, launcher: str) -> None:
    """Adapt a config for ``launcher`` on a CPU-only host: gloo backend, DDP without device_ids.

    Does nothing for ``launcher == 'none'`` or when an accelerator is present.
    """
    if launcher == 'none' or not device.on_cpu_only_host():
        return
    dist_cfg = (cfg.get('env_cfg') or {}).get('dist_cfg') or {}
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        cfg.merge_from_dict({'env_cfg.dist_cfg.backend': 'gloo'})
    wrapper: Optional[dict] = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        # The same defaults mmengine uses when no wrapper config is given, minus device_ids.
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        wrapper = cfg.model_wrapper_cfg
    if wrapper.get('type', 'MMDistributedDataParallel') == 'MMDistributedDataParallel':
        wrapper['device_ids'] = None


def configure(cfg: Config, launcher: str = 'none') -> None:
    """Apply every stack fix: ``persistent_workers`` only with workers, CPU distributed."""
    fix_persistent_workers(cfg)
    configure_distributed(cfg, launcher)


#: Top-level config keys the runner or the tools read although a config need not set them
#: (besides the parameters of mmengine's ``Runner``).
RUNNER_READS = ('runner_type', 'model_wrapper_cfg', 'find_unused_parameters', 'sync_bn',
                'compile', 'activation_checkpointing', 'efficient_conv_bn_eval', 'tta_model',
                'tta_pipeline', 'custom_imports', 'default_scope')


def _runner_keys() -> set:
    from mmengine.runner import Runner
    return set(inspect.signature(Runner.__init__).parameters) - {'self'} | set(RUNNER_READS)


def iter_key_paths(node: Any, prefix: str = '') -> Iterator[Tuple[str, Any]]:
    """``(dotted path, value)`` of every entry of a config (lists by index), depth first."""
    items = node.items() if isinstance(node, dict) else \
        enumerate(node) if isinstance(node, (list, tuple)) else ()
    for key, value in items:
        path = f'{prefix}.{key}' if prefix else str(key)
        yield path, value
        yield from iter_key_paths(value, path)


def _kind(value: Any) -> str:
    if isinstance(value, (int, float, bool)):
        return f'{"an" if isinstance(value, int) else "a"} {type(value).__name__} ({value!r})'
    return 'a dict' if isinstance(value, dict) else 'a list' if isinstance(value, list) \
        else f'a {type(value).__name__}'


def _merge_problem(cfg: Config, key: str) -> str:
    """Why ``key`` cannot be set in ``cfg`` (walks the path to the entry that stops it)."""
    node: Any = cfg._cfg_dict
    for depth, part in enumerate(key.split('.')):
        here = '.'.join(key.split('.')[:depth]) or 'the config'
        if isinstance(node, (list, tuple)):
            if not part.isdigit() or int(part) >= len(node):
                return f'{here} is a list of {len(node)} entries, so it has no entry {part!r}'
            node = node[int(part)]
        elif isinstance(node, dict):
            if part not in node:
                return 'it does not fit the config'
            node = node[part]
        else:
            return f'{here} is {_kind(node)} in the config, so it has no key {part!r}'
    return 'it does not fit the config'


def suggest_key(cfg: Config, key: str) -> str:
    """``' (did you mean X?)'`` with the key path X of ``cfg`` nearest to the mistyped ``key``
    (same last part, else a close spelling of it; in the same section first), or ``''``."""
    parent, _, leaf = key.rpartition('.')
    paths = [path for path, _ in iter_key_paths(cfg._cfg_dict) if path != key]
    names = [path.rpartition('.')[2] for path in paths]
    close = [leaf] if leaf in names else \
        difflib.get_close_matches(leaf, sorted(set(names)), n=3, cutoff=0.75)
    found = [path for path, name in zip(paths, names) if name in close]
    found.sort(key=lambda path: (path.rpartition('.')[0] != parent,
                                 close.index(path.rpartition('.')[2]), len(path)))
    return f' (did you mean {found[0]}?)' if found else ''


def check_new_top_level_keys(cfg: Config, cfg_options: dict) -> None:
    """A ``--cfg-options`` key that adds a top-level entry nothing reads is a mistyped key
    (``max_epochs=1`` for ``train_cfg.max_epochs=1``): :class:`RunConfigError` naming it."""
    known = _runner_keys()
    for key in cfg_options:
        top = key.split('.')[0]
        if top not in cfg and top not in known:
            raise RunConfigError(f'--cfg-options {key}: the config has no {top!r} and the runner '
                                 f'reads no such key{suggest_key(cfg, key)}; check the spelling')


def merge_cfg_options(cfg: Config, cfg_options: dict) -> None:
    """``--cfg-options``: merge the overrides into ``cfg`` (mmengine's ``merge_from_dict``).

    Raises:
        RunConfigError: a key adds a top-level entry nothing reads
            (:func:`check_new_top_level_keys`) or cannot be merged (a key below a number, an
            index past the end of a list, ...); the message names the key.
    """
    check_new_top_level_keys(cfg, cfg_options)
    try:
        cfg.merge_from_dict(cfg_options)
        return
    except (TypeError, KeyError, ValueError, AttributeError, IndexError):
        pass
    trial = copy.deepcopy(cfg)
    for key, value in cfg_options.items():
        try:
            trial.merge_from_dict({key: value})
        except (TypeError, KeyError, ValueError, AttributeError, IndexError):
            raise RunConfigError(f'--cfg-options {key}: cannot be set: '
                                 f'{_merge_problem(trial, key)}') from None
    raise RunConfigError('--cfg-options: the overrides contradict each other (one key sets a '
                         'value, another a key below it): ' + ' '.join(cfg_options))


def prepare_run(cfg: Config, *, launcher: str = 'none', compile_model: bool = False,
                cfg_options: Optional[dict] = None, skip_bad_images: bool = False) -> None:
    """The tail both tools share, in order: ``--compile``'s hook, the ``--cfg-options``
    overrides (applied after every flag), the run hooks, ``--skip-bad-images``, then
    :func:`configure` for ``launcher``."""
    if compile_model:
        add_compile_hook(cfg)
    if cfg_options is not None:
        merge_cfg_options(cfg, cfg_options)
    add_run_hooks(cfg)
    if skip_bad_images:
        set_skip_bad_images(cfg)
    configure(cfg, launcher)
