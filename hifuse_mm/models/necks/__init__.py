from .hff_neck import HFFNeck

__all__ = ['HFFNeck']
