from .hef_neck import HEFNeck
from .hff_neck import HFFNeck

__all__ = ['HFFNeck', 'HEFNeck']
