"""Hooks registered in MMPretrain's ``HOOKS``. The tools add the run-safety hooks
(:data:`hifuse_mm.engine.RUN_HOOKS`) to every run; ``--compile`` adds ``CompileModelHook``;
``CrashSafeCheckpointHook`` is the checkpoint hook of our configs (and of every
:class:`~hifuse_mm.engine.runner.HiFuseRunner` run); every HiFuseRunner run also gets a
``ResumeValidationHook`` (a resume validates what the interrupted run did not)."""
from .bad_image_report_hook import BadImageReportHook
from .class_count_check_hook import (ClassCountCheckHook, ClassCountMismatchError,
                                     check_class_count)
from .compile_model_hook import CompileModelHook
from .crash_safe_checkpoint_hook import CrashSafeCheckpointHook
from .epoch_reseed_hook import EpochReseedHook, epoch_seed, reseed_all
from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .resume_validation_hook import ResumeValidationHook

__all__ = [
    'BadImageReportHook', 'ClassCountCheckHook', 'ClassCountMismatchError', 'CompileModelHook',
    'CrashSafeCheckpointHook', 'EpochReseedHook', 'NonFiniteLossError', 'NonFiniteLossHook',
    'ResumeValidationHook', 'check_class_count', 'epoch_seed', 'reseed_all'
]
