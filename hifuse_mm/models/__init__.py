"""Models registered into MMPretrain's ``MODELS`` registry."""
from .backbones import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
