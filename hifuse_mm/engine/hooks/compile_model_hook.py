"""``--compile`` for ``tools/train.py`` / ``tools/test.py``: compile the model, fall back to eager.

mmengine's own ``compile=True`` compiles the runner's ``train_step`` / ``val_step`` /
``test_step`` and stops the run when compiling fails (no C++ compiler, an unsupported op). This
hook compiles the model's ``forward`` instead, through :func:`hifuse_mm.utils.speed.maybe_compile`:
on a failure it warns once and the run goes on eagerly. ``forward`` rather than ``train_step``
because a ``train_step`` that fails half way (after the optimizer stepped) could not be re-run
safely; the forward of a classifier has no side effects besides BatchNorm statistics, which
dynamo does not touch before a failed trace. The backward of a compiled forward is compiled too
(AOTAutograd).
"""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from ...utils.speed import maybe_compile


@HOOKS.register_module()
class CompileModelHook(Hook):
    """``torch.compile`` the model's forward before the run; eager on failure.

    Args:
        mode: ``torch.compile`` mode (None: its default).
        backend: ``torch.compile`` backend (None: ``'inductor'``).
        dynamic: ``torch.compile`` ``dynamic`` (None: automatic).
    """

    priority = 'VERY_HIGH'

    def __init__(self, mode: Optional[str] = None, backend: Optional[str] = None,
                 dynamic: Optional[bool] = None) -> None:
        self.kwargs = {k: v for k, v in dict(mode=mode, backend=backend,
                                             dynamic=dynamic).items() if v is not None}

    def before_run(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        maybe_compile(model, method='forward', **self.kwargs)
        runner.logger.info(f'torch.compile: model forward ({self.kwargs or "defaults"}); '
                           'falls back to eager if compiling fails')
