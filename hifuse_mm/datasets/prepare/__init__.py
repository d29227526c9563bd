"""Offline preparation of the real datasets: official download -> prepared split folder.

Behind ``tools/dataset_converters/prepare_{isic2018,kvasir,covid19ct}.py`` (never imported at
training time):

* :mod:`.isic2018`, :mod:`.kvasir`, :mod:`.covid19ct` -- read a dataset's official layout and
  decide which image goes where (a :class:`SplitPlan`, :mod:`.plan`), with the per-class rules
  of :mod:`.allocation`; each also declares its converter's options;
* :func:`write_split` (:mod:`.write`) -- check the images (:mod:`.imagecheck`) and write the
  prepared folder; :func:`check_prepared` (:mod:`.check`) re-verifies one (``--check OUT``);
* :func:`converter_main` (:mod:`.cli`) -- the command line the three scripts share.

The layout written, and the reading the runtime datasets do, is :mod:`hifuse_mm.datasets.splits`.
"""
from .check import check_prepared
from .cli import converter_main
from .plan import SplitPlan, assign_units
from .write import write_split

__all__ = ['SplitPlan', 'assign_units', 'check_prepared', 'converter_main', 'write_split']
