"""The tools' rule for output files: never replace a user's file silently.

A tool refuses to write over an existing file unless the user passed ``--force``; names
derived from inputs keep the inputs' folder structure so files of the same name in different
folders do not collide.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterable, List, Sequence, Union


class OutputExistsError(FileExistsError):
    """An output file exists and ``--force`` was not given; the message says what to do."""


def check_new_files(paths: Iterable[Union[str, Path]], force: bool = False) -> None:
    """Raise :class:`OutputExistsError` if any of ``paths`` exists (unless ``force``)."""
    if force:
        return
    existing = [Path(p) for p in paths if Path(p).exists()]
    if not existing:
        return
    if len(existing) == 1:
        raise OutputExistsError(f'{existing[0]} exists; pass --force to overwrite it or choose '
                                'another output name')
    raise OutputExistsError(f'{len(existing)} output files exist already (e.g. {existing[0]}); '
                            'pass --force to overwrite them or choose another output folder')


def derived_paths(inputs: Sequence[Path], root: Path, out_dir: Path,
                  suffix: str = '_cam.png') -> List[Path]:
    """One output path per input: ``out_dir/<input path relative to root>`` with ``suffix``.

    ``root`` is the folder the inputs were found in (or a single input file). Inputs differing
    only in their extension (``a.jpg``, ``a.png``) keep the extension in the name.
    """
    root = Path(root)
    base = root if root.is_dir() else root.parent
    relative = [Path(p).relative_to(base) if Path(p).is_relative_to(base) else Path(Path(p).name)
                for p in inputs]
    plain = [rel.parent / f'{rel.stem}{suffix}' for rel in relative]
    counts = Counter(plain)
    return [Path(out_dir) / (name if counts[name] == 1
                             else rel.parent / f'{rel.stem}_{rel.suffix.lstrip(".")}{suffix}')
            for name, rel in zip(plain, relative)]
