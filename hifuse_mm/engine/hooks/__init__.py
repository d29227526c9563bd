"""Hooks registered in MMPretrain's ``HOOKS`` (the tools add them to every run)."""
from .bad_image_report_hook import BadImageReportHook
from .class_count_check_hook import (ClassCountCheckHook, ClassCountMismatchError,
                                     check_class_count)
from .epoch_reseed_hook import EpochReseedHook, epoch_seed, reseed_all
from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook

__all__ = [
    'BadImageReportHook', 'ClassCountCheckHook', 'ClassCountMismatchError', 'EpochReseedHook',
    'NonFiniteLossError', 'NonFiniteLossHook', 'check_class_count', 'epoch_seed', 'reseed_all'
]
