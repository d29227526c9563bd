"""hifuse-mm: HiFuse and HEMF for MMPretrain.

Importing the package applies the stack's compatibility fixes
(:mod:`hifuse_mm.utils.compat`, which installs the run-safety layer of :mod:`hifuse_mm.engine`:
safe checkpoint loading, atomic saving) and registers every model, dataset and
metric into MMPretrain's registries, so ``custom_imports=['hifuse_mm']`` in a
config is all a run needs.
"""
from .utils import compat as _compat

_compat.apply()

from . import datasets, engine, evaluation, models  # noqa: E402,F401
from .version import __version__  # noqa: E402,F401
