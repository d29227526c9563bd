"""``ClassCountCheckHook``: the model's number of classes must match the dataset's.

A config whose ``model.head.num_classes`` differs from the dataset's class list trains or tests
without any error in MMPretrain (labels beyond the head crash later inside the loss, or a head
with too many outputs silently predicts classes that do not exist). This hook compares them
before training, validation and testing and stops with a message naming the config key, the
dataset and what to change.
"""
from __future__ import annotations

from typing import Any, Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop
from mmpretrain.registry import HOOKS


class ClassCountMismatchError(ValueError):
    """``model.head.num_classes`` differs from the dataset's number of classes."""


def _model_classes(runner: Any) -> Optional[int]:
    model = runner.model
    while is_model_wrapper(model) or (hasattr(model, 'module') and
                                      not hasattr(model, 'head')):
        model = model.module
    head = getattr(model, 'head', None)
    return getattr(head, 'num_classes', None)


def check_class_count(runner: Any, loop_name: str) -> None:
    """Raise :class:`ClassCountMismatchError` if the loop's dataset disagrees with the head."""
    loop = getattr(runner, f'_{loop_name}_loop', None)
    if not isinstance(loop, BaseLoop):
        return
    dataset = loop.dataloader.dataset
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    num_classes = _model_classes(runner)
    if classes is None or num_classes is None or len(classes) == num_classes:
        return
    root = getattr(dataset, 'data_root', '') or ''
    raise ClassCountMismatchError(
        f'model.head.num_classes = {num_classes} but the {loop_name} dataset '
        f'({type(dataset).__name__}, data_root {root!r}) has {len(classes)} classes: '
        f'{list(classes)}. Set model.head.num_classes={len(classes)} (and '
        f'data_preprocessor.num_classes={len(classes)}) in the config, or fix the dataset\'s '
        'classes (classes= in the config, meta/classes.txt).')


@HOOKS.register_module()
class ClassCountCheckHook(Hook):
    """Check the head's ``num_classes`` against the dataset before train / val / test."""

    priority = 'VERY_HIGH'

    def before_train(self, runner: Any) -> None:
        check_class_count(runner, 'train')
        check_class_count(runner, 'val')

    def before_val(self, runner: Any) -> None:
        check_class_count(runner, 'val')

    def before_test(self, runner: Any) -> None:
        check_class_count(runner, 'test')
