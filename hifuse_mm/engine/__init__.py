"""Run safety: safe checkpoint loading, crash-safe saving, exact resume, fail-fast hooks.

* :mod:`~hifuse_mm.engine.safe_checkpoint` — weights-only loading by default, full unpickling
  only when trusted (:mod:`~hifuse_mm.engine.checkpoint_trust`; allowlist in
  :mod:`~hifuse_mm.engine.checkpoint_allowlist`);
* :mod:`~hifuse_mm.engine.atomic_io` — atomic checkpoint / ``last_checkpoint`` writes, signing;
* :mod:`~hifuse_mm.engine.state_dict_match` — a checkpoint that does not fit the model is an
  error naming the keys;
* :mod:`~hifuse_mm.engine.hooks` — ``EpochReseedHook`` (exact resume), ``NonFiniteLossHook``,
  ``ClassCountCheckHook``, ``BadImageReportHook``.

:func:`install` (called on ``import hifuse_mm`` for now) puts the first three in place, the CPU
gloo initialiser (:mod:`~hifuse_mm.engine.cpu_distributed`) and the warning filters
(:mod:`~hifuse_mm.engine.warning_filters`); it is idempotent. See SECURITY.md for the checkpoint
policy. :mod:`~hifuse_mm.engine.run_config` holds the config transforms the tools apply.
"""
from . import (atomic_io, cpu_distributed, run_config, safe_checkpoint, state_dict_match,
               warning_filters)
from .cpu_amp_optim_wrapper import CPUAwareAmpOptimWrapper
from .checkpoint_trust import (key_path, resuming, sign_checkpoint, trust_all_checkpoints,
                               verify_signature)
from .hooks import (BadImageReportHook, ClassCountCheckHook, ClassCountMismatchError,
                    EpochReseedHook, NonFiniteLossError, NonFiniteLossHook)
from .safe_checkpoint import UntrustedCheckpointError, load_checkpoint_file
from .state_dict_match import CheckpointMismatchError, StateDictMismatch, compare_state_dict

#: Hooks the tools add to every run (unless the config already has one of the type).
RUN_HOOKS = ('EpochReseedHook', 'NonFiniteLossHook', 'ClassCountCheckHook', 'BadImageReportHook')


def install() -> None:
    """Safe loading, atomic + signed saving, strict runner loading, CPU gloo init, warning
    filters (idempotent)."""
    warning_filters.install()
    safe_checkpoint.install()
    atomic_io.install()
    state_dict_match.install()
    cpu_distributed.install()


__all__ = [
    'BadImageReportHook', 'CPUAwareAmpOptimWrapper', 'CheckpointMismatchError', 'ClassCountCheckHook',
    'ClassCountMismatchError', 'EpochReseedHook', 'NonFiniteLossError', 'NonFiniteLossHook',
    'RUN_HOOKS', 'StateDictMismatch', 'UntrustedCheckpointError', 'compare_state_dict',
    'install', 'key_path', 'load_checkpoint_file', 'resuming', 'sign_checkpoint',
    'trust_all_checkpoints', 'verify_signature'
]
