"""Errors that already say what to do become a one-line message and exit status 1."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from ..datasets import BadImageError, DatasetError
from ..engine import (CheckpointMismatchError, ClassCountMismatchError, NonFiniteLossError,
                      UntrustedCheckpointError)
from ..engine.last_checkpoint import NothingToResumeError
from ..engine.run_config import RunConfigError
from ..engine.runs import ReportExistsError
from ..engine.work_dir_lock import WorkDirLockedError

#: Errors whose message names the file or key and what to do: shown without a traceback.
CLEAR_ERRORS = (UntrustedCheckpointError, CheckpointMismatchError, NonFiniteLossError,
                BadImageError, ClassCountMismatchError, DatasetError, ReportExistsError,
                WorkDirLockedError, NothingToResumeError)


@contextmanager
def clear_errors() -> Iterator[None]:
    """Turn the errors that already say what to do into ``error: ...`` exits (status 1)."""
    try:
        yield
    except CLEAR_ERRORS as err:
        raise SystemExit(f'error: {err}') from None


@contextmanager
def config_errors() -> Iterator[None]:
    """Turn a flag the config cannot take (:class:`~hifuse_mm.engine.run_config.RunConfigError`)
    into an ``error: ...`` exit (status 1)."""
    try:
        yield
    except RunConfigError as err:
        raise SystemExit(f'error: {err}') from None
