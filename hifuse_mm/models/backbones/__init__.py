from .hemf import HEMF
from .hifuse import HiFuse

__all__ = ['HiFuse', 'HEMF']
