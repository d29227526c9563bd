"""Split rules: how many units of one class go to each split, and which ones.

A *unit* is what must stay together in one split: an image, or all images of one lesion
(``--group-by-lesion``). Every rule works per class on that class's units:

1. sort the unit ids (so the input order, e.g. the file system's, never matters);
2. shuffle them with :func:`shuffled`, a ``random.Random`` seeded from the seed, a stage name
   and the class name (each class gets its own stream: adding or removing a class never
   changes another class's split; Python's ``random`` streams are stable across versions and
   machines);
3. cut the shuffled list with exact rational arithmetic (:class:`fractions.Fraction`): no
   float rounding can move an image from one split to another.

:func:`head_tail_counts` is the rule of the HEMF authors' notebook: train = the first
``ceil(r_train * n)``, test = the last ``floor(r_test * n)``, val = the rest.
"""
from __future__ import annotations

import math
import random
from fractions import Fraction
from typing import Dict, List, Sequence, Tuple, TypeVar, Union

T = TypeVar('T')
Ratio = Union[str, int, Fraction]


def as_fraction(ratio: Ratio, name: str = 'ratio') -> Fraction:
    """``ratio`` as an exact fraction in [0, 1]; ``'0.6'`` becomes 3/5 (never 0.59999...).

    Floats are refused: pass the decimal string so that the value is exact.
    """
    if isinstance(ratio, float):
        raise TypeError(f'{name}: pass {ratio!r} as a string or Fraction, not a float')
    value = Fraction(ratio)
    if not 0 <= value <= 1:
        raise ValueError(f'{name} must be in [0, 1], got {ratio!r}')
    return value


def ceil_part(ratio: Ratio, n: int) -> int:
    """``ceil(ratio * n)`` computed exactly."""
    return math.ceil(as_fraction(ratio) * n)


def floor_part(ratio: Ratio, n: int) -> int:
    """``floor(ratio * n)`` computed exactly."""
    return math.floor(as_fraction(ratio) * n)


def shuffled(ids: Sequence[T], seed: int, stage: str, class_name: str) -> List[T]:
    """The sorted ``ids`` in a seeded random order.

    Args:
        ids: Unit ids of one class (any order; they are sorted first).
        seed: The user's seed (``--seed``).
        stage: Names the use of the stream (e.g. ``'test'`` or ``'val'``), so that two
            shuffles of the same class are independent.
        class_name: The class, so every class gets its own stream.
    """
    order = sorted(ids)
    random.Random(f'hifuse-mm/{seed}/{stage}/{class_name}').shuffle(order)
    return order


def head_tail_counts(n: int, train: Ratio, test: Ratio) -> Tuple[int, int, int]:
    """``(train, val, test)`` sizes: ``ceil(train*n)``, the rest, ``floor(test*n)``."""
    n_train, n_test = ceil_part(train, n), floor_part(test, n)
    if n_train + n_test > n:
        raise ValueError(f'train {train} + test {test} exceed the {n} units of a class')
    return n_train, n - n_train - n_test, n_test


def head_tail_split(order: Sequence[T], train: Ratio, test: Ratio) -> Dict[str, List[T]]:
    """Cut an already shuffled list: train = head, test = tail, val = the middle."""
    n_train, n_val, n_test = head_tail_counts(len(order), train, test)
    return dict(train=list(order[:n_train]),
                val=list(order[n_train:n_train + n_val]),
                test=list(order[len(order) - n_test:]))


def carve(order: Sequence[T], fraction: Ratio, total: int) -> Tuple[List[T], List[T]]:
    """Take ``floor(fraction * total)`` units off the end of ``order``.

    Returns ``(kept, carved)``. ``total`` is the size the fraction refers to (e.g. the whole
    class when carving 10 % of the dataset out of its training part).
    """
    n = floor_part(fraction, total)
    if n > len(order):
        raise ValueError(f'cannot carve {n} units out of {len(order)}')
    return list(order[:len(order) - n]), list(order[len(order) - n:])


def halves(order: Sequence[T]) -> Tuple[List[T], List[T]]:
    """Two halves of a shuffled list; the first gets the extra unit when the size is odd."""
    middle = math.ceil(len(order) / 2)
    return list(order[:middle]), list(order[middle:])
