"""Dataset helpers. :func:`make_demo_dataset` writes the synthetic demo dataset."""
from .demo import DEMO_CLASSES, make_demo_dataset, read_classes

__all__ = ['DEMO_CLASSES', 'make_demo_dataset', 'read_classes']
