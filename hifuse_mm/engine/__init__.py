"""Run safety: safe checkpoint loading, crash-safe saving, exact resume, fail-fast hooks.

* :mod:`~hifuse_mm.engine.safe_checkpoint` — weights-only loading by default, full unpickling
  only when trusted (:mod:`~hifuse_mm.engine.checkpoint_trust`; allowlist in
  :mod:`~hifuse_mm.engine.checkpoint_allowlist`);
* :mod:`~hifuse_mm.engine.atomic_io` — atomic checkpoint / ``last_checkpoint`` writes, signing;
* :mod:`~hifuse_mm.engine.state_dict_match` — a checkpoint that does not fit the model is an
  error naming the keys;
* :mod:`~hifuse_mm.engine.hooks` — ``EpochReseedHook`` (exact resume), ``NonFiniteLossHook``,
  ``ClassCountCheckHook``, ``BadImageReportHook``.

:func:`install` (called by :func:`hifuse_mm.utils.compat.apply`, i.e. on ``import hifuse_mm``)
puts the first three in place; it is idempotent. See SECURITY.md for the checkpoint policy.
"""
from . import atomic_io, safe_checkpoint, state_dict_match
from .checkpoint_trust import (key_path, resuming, sign_checkpoint, trust_all_checkpoints,
                               verify_signature)
from .hooks import (BadImageReportHook, ClassCountCheckHook, ClassCountMismatchError,
                    EpochReseedHook, NonFiniteLossError, NonFiniteLossHook)
from .safe_checkpoint import UntrustedCheckpointError, load_checkpoint_file
from .state_dict_match import CheckpointMismatchError, StateDictMismatch, compare_state_dict

#: Hooks the tools add to every run (unless the config already has one of the type).
RUN_HOOKS = ('EpochReseedHook', 'NonFiniteLossHook', 'ClassCountCheckHook', 'BadImageReportHook')


def install() -> None:
    """Safe loading, atomic + signed saving, strict runner loading (idempotent)."""
    safe_checkpoint.install()
    atomic_io.install()
    state_dict_match.install()


__all__ = [
    'BadImageReportHook', 'CheckpointMismatchError', 'ClassCountCheckHook',
    'ClassCountMismatchError', 'EpochReseedHook', 'NonFiniteLossError', 'NonFiniteLossHook',
    'RUN_HOOKS', 'StateDictMismatch', 'UntrustedCheckpointError', 'compare_state_dict',
    'install', 'key_path', 'load_checkpoint_file', 'resuming', 'sign_checkpoint',
    'trust_all_checkpoints', 'verify_signature'
]
