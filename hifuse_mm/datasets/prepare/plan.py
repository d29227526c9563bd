"""What a converter decides: which image goes to which split (:class:`SplitPlan`).

A dataset's converter module (:mod:`.isic2018`, :mod:`.kvasir`, :mod:`.covid19ct`) reads its
official layout and returns a plan; :func:`~.write.write_split` checks and writes it.
:func:`assign_units` applies a per-class split rule (:mod:`.allocation`) to units (an image, or
all images of one lesion) so that a unit always lands in one split as a whole.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..splits import Sample


@dataclass
class SplitPlan:
    """Which image goes to which split: made by a converter module, written by
    :func:`~.write.write_split`.

    Attributes:
        dataset: Dataset name (``'isic2018'``, ...), recorded in ``split.json``.
        protocol: Protocol name (``'hemf'``, ``'official'``, ...).
        seed: The shuffling seed (``None`` when the protocol does not shuffle).
        classes: Class names in label order.
        partitions: ``{partition: {split: samples}}``. Partition ``''`` is written to
            ``meta/<split>.txt``, any other (``'fold1'``) to ``meta/<partition>/<split>.txt``.
            A partition must have all of :data:`hifuse_mm.datasets.splits.SPLITS`.
        source_files: Source index files to checksum, ``{name: path}`` (name relative to the
            source root where possible).
        options: Protocol settings to record (ratios, grouping, ...).
        notes: Things the user should know (printed, not errors).
    """
    dataset: str
    protocol: str
    seed: Optional[int]
    classes: Tuple[str, ...]
    partitions: Dict[str, Dict[str, List[Sample]]]
    source_files: Dict[str, Path] = field(default_factory=dict)
    options: Dict[str, object] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


#: ``rule(unit_ids, class_name) -> {split: unit_ids}``
SplitRule = Callable[[List[str], str], Dict[str, List[str]]]


def assign_units(units: Mapping[str, Mapping[str, Sequence[Sample]]],
                 classes: Sequence[str],
                 rule: SplitRule) -> Dict[str, List[Sample]]:
    """Split every class's units with ``rule`` and expand the units into their images.

    Args:
        units: ``{class name: {unit id: images of that unit}}``; a unit (an image or a lesion)
            always lands in one split as a whole.
        classes: Class names in the order the rule is applied.
        rule: ``rule(unit_ids, class_name) -> {split: unit_ids}``.
    Returns:
        ``{split: samples}`` for every split the rule produced.
    """
    result: Dict[str, List[Sample]] = {}
    for name in classes:
        by_unit = units.get(name, {})
        for split, ids in rule(list(by_unit), name).items():
            bucket = result.setdefault(split, [])
            for unit in ids:
                bucket.extend(by_unit[unit])
    return result
