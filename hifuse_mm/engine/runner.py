"""``HiFuseRunner``: mmengine's ``Runner`` with hifuse-mm's run safety.

Registered in MMPretrain's ``RUNNERS`` and selected by ``runner_type =
'mmpretrain.HiFuseRunner'`` in ``configs/_base_/default_runtime.py`` (the scope prefix lets
tools that build from mmengine's root ``RUNNERS``, MMPretrain's ``tools/train.py`` among them,
find it). What it adds, all as overrides of ``Runner`` methods, for its runs only:

* **Safe loading** (SECURITY.md): every checkpoint the run loads (``load_from`` and
  ``tools/test.py``, ``--resume``, ``init_cfg=dict(type='Pretrained')``, hooks), from a local
  file or by URL / any other scheme (:mod:`~hifuse_mm.engine.checkpoint_schemes`), is read by
  :mod:`~hifuse_mm.engine.safe_checkpoint`: weights-only, full unpickling only with
  ``--trust-checkpoint``, restricted unpickling for the resume of a local checkpoint this
  account's runs signed. :meth:`resume` is the resume scope
  (:func:`~hifuse_mm.engine.checkpoint_trust.resuming`).
* **Strict loading**: :meth:`load_checkpoint` raises
  :class:`~hifuse_mm.engine.state_dict_match.CheckpointMismatchError`, naming the file and the
  keys, for a checkpoint that does not fit the model (mmengine only warns).
* **Crash-safe, signed saving**: :meth:`save_checkpoint` writes local checkpoints atomically
  (``hifuse_atomic_local`` backend) and signs them
  (:func:`~hifuse_mm.engine.checkpoint_trust.sign_checkpoint`); a plain ``CheckpointHook`` in
  the config becomes a :class:`~hifuse_mm.engine.hooks.CrashSafeCheckpointHook` (atomic
  ``last_checkpoint``, old checkpoints deleted only after the new one is saved).
* **One training per work dir**: :meth:`train` holds the work dir's lock
  (:mod:`~hifuse_mm.engine.work_dir_lock`); a second training into it stops with a message
  naming the one that holds it.
* **Resume**: ``last_checkpoint`` is written relative to the work dir and :meth:`load_or_resume`
  resolves it, falling back to the newest checkpoint when it is empty or dangling
  (:mod:`~hifuse_mm.engine.last_checkpoint`); a resumed checkpoint whose epoch the interrupted
  run did not validate is validated before training goes on
  (:class:`~hifuse_mm.engine.hooks.ResumeValidationHook`, registered in every run).
* **CPU distributed**: with ``--launcher pytorch`` on a host without CUDA, :meth:`setup_env`
  starts a gloo process group itself (mmengine's initialiser would call
  ``torch.cuda.set_device``); :mod:`~hifuse_mm.engine.run_config` makes the config side fit.

CPU ``--amp`` is the registered optim wrapper
:class:`~hifuse_mm.engine.cpu_amp_optim_wrapper.CPUAwareAmpOptimWrapper`. The one private
mmengine internal the runner changes while it works (the checkpoint loaders of every scheme,
for the loads no runner method reaches) is :func:`~hifuse_mm.engine.mmengine_patches.safe_local_loading`,
restored when :meth:`train` / :meth:`val` / :meth:`test` return; its checkpoint hook changes
one more around each save (:func:`~hifuse_mm.engine.mmengine_patches.atomic_last_checkpoint`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

import torch.nn as nn
from mmengine.dist import is_distributed, is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop, Runner
from mmengine.runner.checkpoint import _load_checkpoint, _load_checkpoint_to_model
from mmpretrain.registry import RUNNERS

from .atomic_backend import atomic_backend_args, is_local_path
from .checkpoint_trust import remove_orphan_signatures, resuming, sign_checkpoint
from .cpu_distributed import init_cpu_process_group, needs_cpu_process_group
from .hooks.crash_safe_checkpoint_hook import CrashSafeCheckpointHook
from .hooks.resume_validation_hook import ResumeValidationHook
from .last_checkpoint import resolve_resume_checkpoint
from .mmengine_patches import safe_local_loading
from .state_dict_match import CheckpointMismatchError, checkpoint_state_dict, compare_state_dict
from .work_dir_lock import hold_work_dir, live_holder

#: Config ``type`` values of mmengine's plain checkpoint hook, replaced by ours.
_PLAIN_CHECKPOINT_HOOK = ('CheckpointHook', 'mmengine.CheckpointHook', CheckpointHook)


@RUNNERS.register_module()
class HiFuseRunner(Runner):
    """``Runner`` with safe and strict checkpoint loading, crash-safe signed saving and CPU
    gloo initialisation, one training per work dir, resume that validates what the interrupted
    run did not and follows moved work dirs (see the module docstring). Same arguments as
    ``Runner``."""

    #: ``CrashSafeCheckpointHook`` writes ``last_checkpoint`` relative to the work dir:
    #: :meth:`load_or_resume` resolves it.
    relative_last_checkpoint = True
    #: The checkpoint :meth:`resume` loaded (None until then).
    resumed_checkpoint: Optional[str] = None
    #: :meth:`dump_config` found the work dir held by a live training and left its config be.
    _config_dump_deferred = False

    # -- environment --------------------------------------------------------------------------
    def setup_env(self, env_cfg: Dict) -> None:
        """Start a gloo process group on a CPU-only host, then mmengine's setup (which skips
        ``init_dist`` when the group is started)."""
        dist_cfg = env_cfg.get('dist_cfg', {})
        if self.distributed and not is_distributed() and \
                needs_cpu_process_group(self.launcher, dist_cfg):
            init_cpu_process_group(dist_cfg)
        super().setup_env(env_cfg)

    # -- hooks --------------------------------------------------------------------------------
    def register_hook(self, hook: Union[Hook, Dict], priority: Any = None) -> None:
        """Register ``hook``; a config of mmengine's plain ``CheckpointHook`` becomes a
        :class:`CrashSafeCheckpointHook` with the same arguments."""
        if isinstance(hook, dict) and any(hook.get('type') is kind or hook.get('type') == kind
                                          for kind in _PLAIN_CHECKPOINT_HOOK):
            hook = dict(hook, type=CrashSafeCheckpointHook)
        super().register_hook(hook, priority)

    def register_hooks(self, default_hooks: Optional[Dict] = None,
                       custom_hooks: Optional[list] = None) -> None:
        """mmengine's hooks, then a :class:`ResumeValidationHook` (last) unless the config has
        one."""
        super().register_hooks(default_hooks, custom_hooks)
        if not any(isinstance(hook, ResumeValidationHook) for hook in self._hooks):
            self.register_hook(ResumeValidationHook())

    # -- running ------------------------------------------------------------------------------
    def train(self) -> nn.Module:
        """mmengine's training, holding the work dir's lock (a second training into it is
        refused: :class:`~hifuse_mm.engine.work_dir_lock.WorkDirLockedError`)."""
        with hold_work_dir(self.work_dir, warn=self.logger.warning), safe_local_loading():
            if self._config_dump_deferred:
                self._config_dump_deferred = False
                super().dump_config()
            return super().train()

    def dump_config(self) -> None:
        """mmengine's config dump into the work dir, except while another live training on
        this host holds the work dir (its dump stays; a training dumps once it holds it)."""
        if live_holder(self.work_dir) is not None:
            self._config_dump_deferred = True
            return
        super().dump_config()

    def val(self) -> dict:
        with safe_local_loading():
            return super().val()

    def test(self) -> dict:
        with safe_local_loading():
            return super().test()

    # -- loading ------------------------------------------------------------------------------
    def load_or_resume(self) -> None:
        """mmengine's, but ``--resume`` without a path follows ``last_checkpoint`` relative to
        the work dir, and falls back to the newest checkpoint there when it is empty or
        dangling (:func:`~hifuse_mm.engine.last_checkpoint.resolve_resume_checkpoint`)."""
        if self._has_loaded or not self._resume or self._load_from is not None:
            return super().load_or_resume()
        by_epoch = not isinstance(self._train_loop, IterBasedTrainLoop)
        resume_from = resolve_resume_checkpoint(self.work_dir, by_epoch=by_epoch,
                                                log=self.logger.warning)
        if resume_from is None:  # nothing to resume: mmengine starts afresh
            return super().load_or_resume()
        self.logger.info(f'Auto resumed from the latest checkpoint {resume_from}.')
        self._load_from = resume_from
        try:
            super().load_or_resume()
        finally:
            self._load_from = None

    def resume(self, filename: str, resume_optimizer: bool = True,
               resume_param_scheduler: bool = True,
               map_location: Union[str, Callable] = 'default') -> None:
        """mmengine's resume, as a resume scope: a checkpoint this account's runs signed may be
        unpickled fully (SECURITY.md)."""
        with resuming():
            super().resume(filename, resume_optimizer=resume_optimizer,
                           resume_param_scheduler=resume_param_scheduler,
                           map_location=map_location)
        self.resumed_checkpoint = str(filename)

    def load_checkpoint(self, filename: str, map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]) -> Any:  # noqa: B006
        """Load ``filename`` into the model, as mmengine does, but read safely and strictly.

        Raises:
            UntrustedCheckpointError: The file needs full unpickling and is not trusted.
            CheckpointMismatchError: Its weights do not fit the model (names the file).
        """
        with safe_local_loading():
            checkpoint = _load_checkpoint(filename, map_location=map_location)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        mismatch = compare_state_dict(model, checkpoint_state_dict(checkpoint, revise_keys))
        if mismatch:
            raise CheckpointMismatchError(mismatch, str(filename))
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict,
                                               revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    # -- saving -------------------------------------------------------------------------------
    def save_checkpoint(self, out_dir: str, filename: str,
                        file_client_args: Optional[dict] = None, save_optimizer: bool = True,
                        save_param_scheduler: bool = True, meta: Optional[dict] = None,
                        by_epoch: bool = True, backend_args: Optional[dict] = None) -> None:
        """mmengine's save (main process only), atomic for local folders, then signed."""
        super().save_checkpoint(
            out_dir, filename, file_client_args=file_client_args,
            save_optimizer=save_optimizer, save_param_scheduler=save_param_scheduler,
            meta=meta, by_epoch=by_epoch,
            backend_args=atomic_backend_args(out_dir, file_client_args, backend_args))
        path = Path(out_dir) / filename
        if not is_main_process() or not is_local_path(out_dir) or not path.is_file():
            return
        if sign_checkpoint(path) is None:
            self.logger.warning(f'could not create the checkpoint signing key; {path} is not '
                                'signed, so a --resume that needs full unpickling will ask '
                                'for --trust-checkpoint')
        remove_orphan_signatures(path.parent)
