"""What kind of file a checkpoint path holds, from its first bytes (nothing is unpickled).

:func:`checkpoint_problem` tells, before a run starts, whether a local file can be a PyTorch
checkpoint at all, so that the tools stop with one line that says what the file is instead of
a loader traceback (torch's own message for these cases advises ``weights_only=False``, i.e.
running the file's code; we never pass that on):

* ``torch.save``'s zip format (PyTorch >= 1.6) with its ``data.pkl``: fine;
* the legacy pickle format (``_use_new_zipfile_serialization=False``, pickle protocol 2 or 3):
  fine (loads weights-only);
* an empty file, a truncated zip, a zip that is no checkpoint, the legacy format pickled with
  protocol >= 4 (framed, which weights-only loading cannot read), the legacy ``.tar`` format of
  PyTorch < 0.4 (the same) and anything else: a problem, described.

Standard library only.
"""
from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path
from typing import Optional, Union

#: ``torch.serialization.MAGIC_NUMBER`` as the legacy format pickles it (a LONG1 of 10 bytes).
_LEGACY_MAGIC = b'\x8a\x0a' + (0x1950A86A20F9469CFC6C).to_bytes(10, 'little')
_ZIP_MAGIC = b'PK\x03\x04'


def is_remote(path: Union[str, Path]) -> bool:
    """Whether ``path`` names a remote file (``scheme://...``) rather than a local one."""
    return '://' in str(path)


def checkpoint_problem(path: Union[str, Path]) -> Optional[str]:
    """None if ``path`` looks like a loadable PyTorch checkpoint, else what is wrong with it
    (a phrase: ``'<path> <is ...>'``). Remote paths are not looked at (None)."""
    if is_remote(path):
        return None
    path = Path(os.path.expanduser(str(path)))
    if not path.exists():
        return f'{path} not found'
    if not path.is_file():
        return f'{path} is not a file'
    try:
        with open(path, 'rb') as stream:
            head = stream.read(32)
    except OSError as err:
        return f'{path} cannot be read ({err.strerror})'
    if not head:
        return f'{path} is empty (0 bytes): not a checkpoint (an interrupted copy or save?)'
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return (f'{path} is a damaged or truncated zip file (an incomplete download or '
                    'copy?): not a readable checkpoint')
        if not any(name == 'data.pkl' or name.endswith('/data.pkl') for name in names):
            return f'{path} is a zip archive but not a PyTorch checkpoint (no data.pkl in it)'
        return None
    if head[:1] == b'\x80' and head[2:14] == _LEGACY_MAGIC:
        return None
    if head[:1] == b'\x80' and head[2:3] == b'\x95' and head[11:23] == _LEGACY_MAGIC:
        return (f'{path} is a checkpoint in the legacy (PyTorch < 1.6) format pickled with '
                f'protocol {head[1]}, which cannot be loaded weights-only; re-save its '
                'state_dict with torch.save in a current PyTorch (where you trust the file) '
                'and use that')
    try:
        with tarfile.open(path, 'r:'):  # what torch.load tries for the legacy format
            is_tar = True
    except (tarfile.TarError, OSError):
        is_tar = False
    if is_tar:
        return (f'{path} is a checkpoint in the legacy .tar format of PyTorch < 0.4, which '
                'cannot be loaded without running code from it; re-save its state_dict with '
                'torch.save in a current PyTorch (where you trust the file) and use that')
    return (f'{path} is not a PyTorch checkpoint (neither the zip format of torch.save nor its '
            'legacy format)')
