"""hifuse-mm: HiFuse and HEMF for MMPretrain.

Importing the package checks the OpenMMLab stack (:mod:`hifuse_mm.utils.stack`) and registers
every model, dataset, transform, metric, hook and the ``HiFuseRunner`` into MMPretrain's
registries under names of its own (so ``custom_imports=['hifuse_mm']`` in a config is all a
run needs). It changes nothing else in the process: runs of our configs get the run-safety
layer from their ``runner_type`` (``HiFuseRunner``, :mod:`hifuse_mm.engine`), and our tools
call :func:`hifuse_mm.engine.install` for the process-wide part.
"""
from .utils.stack import check_stack as _check_stack

_check_stack()

from . import datasets, engine, evaluation, models  # noqa: E402,F401
from .version import __version__  # noqa: E402,F401
