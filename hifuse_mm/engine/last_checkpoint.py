"""``<work_dir>/last_checkpoint``: written relative to the work dir, read with fallbacks.

mmengine writes the absolute path of the latest checkpoint into ``last_checkpoint`` and
``--resume`` reads it back as is, so a work dir that is moved or copied resumes from the old
place (or fails when that is gone), and an empty or dangling pointer is a traceback.
:class:`~hifuse_mm.engine.hooks.CrashSafeCheckpointHook` (in a
:class:`~hifuse_mm.engine.runner.HiFuseRunner` run) writes the path relative to the work dir
(:func:`pointer_text`) and the runner resolves it (:func:`resolve_resume_checkpoint`):

* a relative path is taken relative to the work dir; an absolute one (older runs, or
  checkpoints kept outside the work dir) as is, except that a pointer to another folder whose
  checkpoint of that name is in the work dir (the work dir was moved or copied) means the work
  dir's one;
* an empty pointer, or one naming a file that does not exist, falls back to the newest
  checkpoint in the work dir (``epoch_N.pth`` / ``iter_N.pth`` with the largest N, of the kind
  the run trains by), with a message; nothing is judged about the file here (signed or not:
  the loader's policy applies when it is loaded);
* no pointer and no checkpoint: ``None`` (mmengine's behaviour: the run starts afresh); a
  pointer that cannot be followed and no checkpoint to fall back to:
  :class:`NothingToResumeError`.

Standard library only.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, List, Optional, Tuple, Union

PathLike = Union[str, Path]
#: The pointer's name in the work dir (mmengine's).
POINTER_NAME = 'last_checkpoint'
_NUMBERED = {'epoch': re.compile(r'^epoch_(\d+)\.pth$'), 'iter': re.compile(r'^iter_(\d+)\.pth$')}


class NothingToResumeError(FileNotFoundError):
    """``--resume`` found a ``last_checkpoint`` it cannot follow and no checkpoint to resume
    instead (the message names the file and what to do)."""


def _is_remote(path: str) -> bool:
    return '://' in path


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def pointer_text(checkpoint: PathLike, work_dir: PathLike) -> str:
    """What ``last_checkpoint`` holds for ``checkpoint``: its path relative to ``work_dir``
    when it lies inside it, else the path as given."""
    text = str(checkpoint)
    if _is_remote(text):
        return text
    path, folder = Path(os.path.abspath(text)), Path(os.path.abspath(work_dir))
    return path.relative_to(folder).as_posix() if _inside(path, folder) else text


def read_pointer(work_dir: PathLike) -> Optional[str]:
    """The stripped text of ``work_dir/last_checkpoint``; None when there is none."""
    try:
        return (Path(work_dir) / POINTER_NAME).read_text(encoding='utf-8',
                                                         errors='surrogateescape').strip()
    except (FileNotFoundError, NotADirectoryError):
        return None


def pointed_checkpoint(work_dir: PathLike, text: str) -> str:
    """The checkpoint a non-empty pointer ``text`` names (may not exist): relative to
    ``work_dir``, or absolute; an absolute path to another folder whose file name is in
    ``work_dir`` means the work dir's file (the work dir was moved or copied)."""
    if _is_remote(text):
        return text
    folder = Path(os.path.abspath(work_dir))
    path = Path(text)
    if not path.is_absolute():
        return str(folder / path)
    local = folder / path.name
    if path.parent != folder and local.is_file():
        return str(local)
    return str(path)


def numbered_checkpoints(folder: PathLike, kind: str) -> List[Tuple[int, Path]]:
    """``(N, path)`` of ``folder``'s ``<kind>_N.pth`` files (kind: ``epoch`` or ``iter``),
    newest last."""
    pattern = _NUMBERED[kind]
    found = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return []
    for entry in entries:
        match = pattern.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def newest_checkpoint(folder: PathLike, by_epoch: bool = True) -> Optional[Path]:
    """The newest ``epoch_N.pth`` (``iter_N.pth`` when not ``by_epoch``) in ``folder``; the
    other kind when there is none of that one."""
    kinds = ('epoch', 'iter') if by_epoch else ('iter', 'epoch')
    for kind in kinds:
        found = numbered_checkpoints(folder, kind)
        if found:
            return found[-1][1]
    return None


def resolve_resume_checkpoint(work_dir: PathLike, by_epoch: bool = True,
                              log: Callable[[str], None] = lambda message: None
                              ) -> Optional[str]:
    """The checkpoint ``--resume`` (without a path) continues from (see the module docstring).

    ``log`` receives the message when the pointer was not followed as written.

    Raises:
        NothingToResumeError: The pointer is empty or dangling and the work dir holds no
            checkpoint to resume instead.
    """
    pointer = Path(work_dir) / POINTER_NAME
    text = read_pointer(work_dir)
    if text is None:
        newest = newest_checkpoint(work_dir, by_epoch)
        if newest is not None:
            log(f'{pointer} does not exist; resuming from the newest checkpoint in the work '
                f'dir, {newest}')
            return str(newest)
        return None
    if text:
        target = pointed_checkpoint(work_dir, text)
        if _is_remote(target) or os.path.isfile(target):
            if Path(text).is_absolute() and target != text:
                log(f'{pointer} names {text}, in another folder; resuming from the work '
                    f"dir's {target} (the work dir was moved or copied)")
            return target
        problem = f'names {text}, which does not exist'
    else:
        problem = 'is empty'
    newest = newest_checkpoint(work_dir, by_epoch)
    if newest is None:
        raise NothingToResumeError(
            f'--resume: {pointer} {problem}, and {work_dir} holds no epoch_*.pth or '
            'iter_*.pth checkpoint to resume instead. Give the checkpoint to resume '
            f'(--resume CHECKPOINT), or delete {pointer} to start the training afresh.')
    log(f'{pointer} {problem}; resuming from the newest checkpoint in the work dir, {newest}')
    return str(newest)


def checkpoint_path_from_pointer(work_dir: PathLike) -> Optional[str]:
    """The checkpoint ``work_dir/last_checkpoint`` names, resolved (for messages); None when
    the pointer is missing or empty."""
    text = read_pointer(work_dir)
    return pointed_checkpoint(work_dir, text) if text else None
