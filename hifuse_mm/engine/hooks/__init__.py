"""Hooks registered in MMPretrain's ``HOOKS``. The tools add all but ``CompileModelHook`` to
every run; ``--compile`` adds that one."""
from .bad_image_report_hook import BadImageReportHook
from .class_count_check_hook import (ClassCountCheckHook, ClassCountMismatchError,
                                     check_class_count)
from .compile_model_hook import CompileModelHook
from .epoch_reseed_hook import EpochReseedHook, epoch_seed, reseed_all
from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook

__all__ = [
    'BadImageReportHook', 'ClassCountCheckHook', 'ClassCountMismatchError', 'CompileModelHook',
    'EpochReseedHook', 'NonFiniteLossError', 'NonFiniteLossHook', 'check_class_count', 'epoch_seed', 'reseed_all'
]
