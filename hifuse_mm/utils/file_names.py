"""File names as text that can be written anywhere (CSV files, captions, the console).

On Linux a file name is bytes; Python reads names that are not valid UTF-8 with surrogate
escapes (the byte ``0xff`` becomes ``'\\udcff'``), which no UTF-8 writer accepts. The tools
write such names with each byte that is not UTF-8 as ``\\xNN`` (``b'\\xffscan.png'`` ->
``\\xffscan.png``), Python's ``backslashreplace``: readable and on one line. Names that are
valid UTF-8 are unchanged (so the form is ambiguous only for a name that itself holds a
backslash followed by ``x`` and two hex digits).
"""
from __future__ import annotations

from os import PathLike
from typing import Union


def printable_name(name: Union[str, 'PathLike[str]']) -> str:
    """``name`` (a path or any text holding one) with undecodable bytes written as ``\\xNN``."""
    text = str(name)
    try:
        raw = text.encode('utf-8', 'surrogateescape')
    except UnicodeEncodeError:  # lone surrogates that are not escaped bytes
        return text.encode('utf-8', 'backslashreplace').decode('utf-8')
    return raw.decode('utf-8', 'backslashreplace')
