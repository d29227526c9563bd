"""What mmengine's text log of a run tells about it: the environment block at its top and how
long the run took.

Every run (``tools/train.py``, ``tools/test.py``) writes ``<work_dir>/<YYYYmmdd_HHMMSS>/
<YYYYmmdd_HHMMSS>.log``. It starts with the "System environment" block (Python, CUDA
available, GPU names, PyTorch, TorchVision, OpenCV, MMEngine versions) and the "Runtime
environment" block (seed, deterministic, launcher, GPU number), one ``key: value`` per line.
Every log line starts with a time stamp: the first with the year (``2026/11/29 16:18:46``),
the others without (``11/29 16:18:47``); the year is taken from the first line, the folder
name, or the file's modification time.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Dict, List, Optional

_STAMP = re.compile(r'^(?:(\d{4})/)?(\d{2})/(\d{2}) (\d{2}):(\d{2}):(\d{2}) - ')
_ENTRY = re.compile(r'^ {4}([A-Za-z][\w .]*?): (.*)$')
#: Read at most this much of a log's head (the environment blocks are at the top).
HEAD_BYTES = 64 << 10
#: Read at most this much of a log's tail (for the last time stamp).
TAIL_BYTES = 64 << 10


@dataclass
class RunLog:
    """One run's log: ``environment`` (``{'PyTorch': '2.4.1', 'seed': '0', ...}``),
    ``start`` / ``end`` time stamps (None if unreadable), the file."""
    path: Path
    environment: Dict[str, str] = field(default_factory=dict)
    start: Optional[datetime] = None
    end: Optional[datetime] = None

    @property
    def duration(self) -> Optional[timedelta]:
        """Time between the first and the last log line."""
        if self.start is None or self.end is None or self.end < self.start:
            return None
        return self.end - self.start


def _stamp(line: str, year: int) -> Optional[datetime]:
    match = _STAMP.match(line)
    if match is None:
        return None
    y, month, day, hour, minute, second = match.groups()
    try:
        return datetime(int(y) if y else year, int(month), int(day), int(hour), int(minute),
                        int(second))
    except ValueError:
        return None


def read_run_log(path: Path) -> RunLog:
    """Parse one mmengine text log (a missing or unreadable file gives an empty record)."""
    log = RunLog(Path(path))
    try:
        with open(path, 'rb') as stream:
            head = stream.read(HEAD_BYTES).decode('utf-8', 'replace')
            stream.seek(0, 2)
            size = stream.tell()
            stream.seek(max(0, size - TAIL_BYTES))
            tail = stream.read().decode('utf-8', 'replace')
    except OSError:
        return log
    year = datetime.fromtimestamp(Path(path).stat().st_mtime).year
    lines = head.splitlines()
    for line in lines:
        log.start = _stamp(line, year)
        if log.start is not None:
            year = log.start.year
            break
    for line in lines:
        match = _ENTRY.match(line)
        if match and match.group(1) not in log.environment:
            log.environment[match.group(1)] = match.group(2).strip()
        elif line.startswith('----') and log.environment and 'seed' in log.environment:
            break
    for line in reversed(tail.splitlines()):
        stamp = _stamp(line, year)
        if stamp is not None:
            if log.start is not None and stamp < log.start:  # the year turned during the run
                stamp = stamp.replace(year=stamp.year + 1)
            log.end = stamp
            break
    return log


def run_logs(work_dir: Path) -> List[RunLog]:
    """The logs of every run of a work dir (``<timestamp>/<timestamp>.log``), oldest first."""
    logs = []
    for folder in sorted(p for p in Path(work_dir).glob('*') if p.is_dir()):
        log = folder / f'{folder.name}.log'
        if log.is_file():
            logs.append(read_run_log(log))
    return logs


def report_log(report_dir: Path) -> Optional[RunLog]:
    """The log of the test run that wrote a report folder (``<folder>/<folder name>.log``)."""
    path = Path(report_dir) / f'{Path(report_dir).name}.log'
    return read_run_log(path) if path.is_file() else None
