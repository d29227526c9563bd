"""Models registered into MMPretrain's ``MODELS`` registry."""
from . import fast_paths  # noqa: F401  (the fast-path switch)
from .backbones import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
