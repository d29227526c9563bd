from .hifuse import HiFuse

__all__ = ['HiFuse']
