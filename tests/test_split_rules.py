"""Split rules (hifuse_mm.datasets.prepare.allocation): exact ratios, HEMF counts, determinism."""
from fractions import Fraction

import pytest

from hifuse_mm.datasets.prepare.allocation import (as_fraction, carve, ceil_part, floor_part,
                                                   halves, head_tail_counts, head_tail_split,
                                                   shuffled)
from replicas import ISIC2018_COUNTS

# The HEMF paper's ISIC2018 test split (architecture notes, section 4).
HEMF_TEST = dict(AKIEC=98, BCC=154, BKL=329, DF=34, MEL=333, NV=2011, VASC=42)


def test_exact_arithmetic():
    assert as_fraction('0.6') == Fraction(3, 5)
    # 0.6 * 6705 is 4023 exactly; in floats 0.7 * 10 = 7.000000000000001 ceils to 8.
    assert ceil_part('0.6', 6705) == 4023 and floor_part('0.3', 6705) == 2011
    assert ceil_part('0.7', 10) == 7
    with pytest.raises(TypeError, match='string'):
        as_fraction(0.6)
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        as_fraction('1.5')


def test_hemf_counts_on_the_real_class_sizes():
    counts = {name: head_tail_counts(n, '0.6', '0.3') for name, n in ISIC2018_COUNTS.items()}
    assert {name: c[2] for name, c in counts.items()} == HEMF_TEST
    assert sum(c[2] for c in counts.values()) == 3001
    assert sum(c[0] for c in counts.values()) == 6012
    assert sum(c[1] for c in counts.values()) == 1002
    for name, (train, val, test) in counts.items():
        n = ISIC2018_COUNTS[name]
        assert train == -(-6 * n // 10) and test == 3 * n // 10 and train + val + test == n


def test_head_tail_split_partitions_the_order():
    order = list(range(11))
    parts = head_tail_split(order, '0.6', '0.3')
    # n = 11: train ceil(6.6) = 7, test floor(3.3) = 3, val the one left.
    assert parts == dict(train=list(range(7)), val=[7], test=[8, 9, 10])
    assert sorted(parts['train'] + parts['val'] + parts['test']) == order


def test_carve_and_halves():
    kept, carved = carve(list(range(10)), '0.25', 20)
    assert (kept, carved) == (list(range(5)), list(range(5, 10)))
    assert halves([1, 2, 3, 4, 5]) == ([1, 2, 3], [4, 5])
    with pytest.raises(ValueError, match='carve'):
        carve([1, 2], '1', 5)


def test_shuffled_is_seeded_sorted_and_per_class():
    ids = [f'img{i:03d}' for i in range(50)]
    first = shuffled(ids, 0, 'split', 'MEL')
    assert first == shuffled(list(reversed(ids)), 0, 'split', 'MEL')  # input order ignored
    assert sorted(first) == ids and first != ids
    assert shuffled(ids, 1, 'split', 'MEL') != first
    assert shuffled(ids, 0, 'split', 'NV') != first
    assert shuffled(ids, 0, 'val', 'MEL') != first
    # Python's seeded random streams are stable across versions and machines: pin them, so a
    # change of the shuffling (which would change every published split) cannot go unnoticed.
    assert first[:5] == ['img018', 'img014', 'img008', 'img025', 'img031']
