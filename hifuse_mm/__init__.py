"""hifuse-mm: HiFuse and HEMF for MMPretrain.

Importing the package checks the OpenMMLab stack (:mod:`hifuse_mm.utils.stack`), registers every
model, dataset, metric and hook into MMPretrain's registries (so ``custom_imports=['hifuse_mm']``
in a config is all a run needs) and installs the run-safety layer of :mod:`hifuse_mm.engine`
(safe checkpoint loading, atomic saving, CPU gloo initialisation).
"""
from .utils.stack import check_stack as _check_stack

_check_stack()

from . import datasets, engine, evaluation, models  # noqa: E402,F401
from .version import __version__  # noqa: E402,F401

engine.install()
