"""SHA-256 of a file, shared by the split records, signed checkpoints and published models."""
import hashlib
from os import PathLike
from typing import Union


def file_sha256(path: Union[str, PathLike]) -> str:
    """SHA-256 of a file's bytes, hex; read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()
