"""Run safety: safe checkpoint loading, crash-safe saving, exact resume, fail-fast hooks.

Importing this package only registers names (the runner, hooks, optim wrapper and file backend
below); it changes nothing in mmengine or MMPretrain.

* :class:`~hifuse_mm.engine.runner.HiFuseRunner` (``runner_type =
  'mmpretrain.HiFuseRunner'`` in ``configs/_base_/default_runtime.py``) gives every run of our
  configs the behaviours below;
* :mod:`~hifuse_mm.engine.safe_checkpoint`: weights-only loading by default, full unpickling
  only when trusted (:mod:`~hifuse_mm.engine.checkpoint_trust`; allowlist in
  :mod:`~hifuse_mm.engine.checkpoint_allowlist`), for URLs and every other scheme too
  (:mod:`~hifuse_mm.engine.checkpoint_schemes`);
* :mod:`~hifuse_mm.engine.atomic_io`, :mod:`~hifuse_mm.engine.atomic_backend` and
  :class:`~hifuse_mm.engine.hooks.CrashSafeCheckpointHook`: atomic checkpoint /
  ``last_checkpoint`` writes, old checkpoints deleted after the new one is saved;
* :mod:`~hifuse_mm.engine.state_dict_match`: a checkpoint that does not fit the model is an
  error naming the keys;
* :mod:`~hifuse_mm.engine.work_dir_lock`: one training per work dir;
  :mod:`~hifuse_mm.engine.last_checkpoint`: ``last_checkpoint`` relative to the work dir, with
  fallbacks; :class:`~hifuse_mm.engine.hooks.ResumeValidationHook`: a resume validates the
  epoch the interrupted run saved but did not validate;
* :mod:`~hifuse_mm.engine.cpu_distributed` and
  :class:`~hifuse_mm.engine.cpu_amp_optim_wrapper.CPUAwareAmpOptimWrapper`: gloo and bf16 amp
  on CPU-only hosts;
* :mod:`~hifuse_mm.engine.hooks`: ``EpochReseedHook`` (exact resume), ``NonFiniteLossHook``,
  ``ClassCountCheckHook``, ``BadImageReportHook``.

:func:`install` is the explicit, process-wide opt-in our command-line tools call at start; the
few mmengine internals it and the runner change are all listed in
:mod:`~hifuse_mm.engine.mmengine_patches`. See SECURITY.md for the checkpoint policy.
:mod:`~hifuse_mm.engine.run_config`, :mod:`~hifuse_mm.engine.training_config` and
:mod:`~hifuse_mm.engine.testing_config` hold the config transforms the tools apply;
:mod:`~hifuse_mm.engine.runs` builds the runner and runs it (with the test report).
"""
from . import (atomic_backend, atomic_io, cpu_distributed, mmengine_patches, run_config,
               safe_checkpoint, state_dict_match, warning_filters)
from .checkpoint_trust import (key_path, resuming, sign_checkpoint, trust_all_checkpoints,
                               verify_signature)
from .cpu_amp_optim_wrapper import CPUAwareAmpOptimWrapper
from .hooks import (BadImageReportHook, ClassCountCheckHook, ClassCountMismatchError,
                    CrashSafeCheckpointHook, EpochReseedHook, NonFiniteLossError,
                    NonFiniteLossHook, ResumeValidationHook)
from .last_checkpoint import NothingToResumeError
from .runner import HiFuseRunner
from .safe_checkpoint import UntrustedCheckpointError, load_checkpoint_file
from .run_config import RUN_HOOKS  # hooks the tools add to every run
from .state_dict_match import CheckpointMismatchError, StateDictMismatch, compare_state_dict
from .work_dir_lock import WorkDirLockedError


def install() -> None:
    """The tools' process-wide opt-in (idempotent): mmengine loads every checkpoint, local or by
    URL / any scheme, with the safe loaders, mmengine's PyTorch-launcher initialiser uses gloo on
    CPU-only hosts, and the stack's known harmless warnings are filtered.

    Runs get the rest (strict loading, resume trust, crash-safe signed saving) from
    :class:`HiFuseRunner`; ``import hifuse_mm`` does not call this.
    """
    warning_filters.install()
    mmengine_patches.install_safe_local_loading()
    mmengine_patches.install_cpu_gloo_init()


__all__ = [
    'BadImageReportHook', 'CPUAwareAmpOptimWrapper', 'CheckpointMismatchError',
    'ClassCountCheckHook', 'ClassCountMismatchError', 'CrashSafeCheckpointHook',
    'EpochReseedHook', 'HiFuseRunner', 'NonFiniteLossError', 'NonFiniteLossHook',
    'NothingToResumeError', 'RUN_HOOKS', 'ResumeValidationHook', 'StateDictMismatch',
    'UntrustedCheckpointError', 'WorkDirLockedError', 'compare_state_dict', 'install',
    'key_path', 'load_checkpoint_file', 'resuming', 'sign_checkpoint', 'trust_all_checkpoints',
    'verify_signature'
]
