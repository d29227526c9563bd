"""The ``classes.txt`` format: class names in label order, one per line."""
from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import List, Sequence, Union


def read_classes_file(path: Union[str, 'PathLike[str]']) -> List[str]:
    """The class names of a ``classes.txt``: its non-empty lines, stripped, in order."""
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def format_classes_file(classes: Sequence[str]) -> str:
    """The text of a ``classes.txt`` listing ``classes`` (one per line, newline-terminated)."""
    return ''.join(f'{name}\n' for name in classes)
