"""Checks the tools make before a run starts, each failing with one ``error: ...`` line (exit
status 1) that names the file, option or key and says what to do, instead of a traceback from
deep inside mmengine or torch:

* :func:`read_config`: the config file exists and loads (a missing ``_base_``, a syntax error);
* :func:`check_launcher`: ``--launcher pytorch|slurm|mpi`` only inside what launches it
  (``tools/dist_train.sh``, ``tools/slurm_train.sh``, ``mpirun``);
* :func:`check_checkpoints`: every local checkpoint the run will load (``tools/test.py``'s
  CHECKPOINT, ``--resume FILE``, ``load_from``, ``init_cfg=dict(type='Pretrained')``) exists and
  is a PyTorch checkpoint, by its first bytes
  (:func:`hifuse_mm.engine.checkpoint_format.checkpoint_problem`);
* :func:`config_key_errors`: while the runner builds from the config, a mistyped key (an
  argument the class does not take) or an unknown ``type`` becomes one line naming its key
  path.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from mmengine.config import Config

from ..engine.checkpoint_format import checkpoint_problem, is_remote
from ..engine.run_config import iter_key_paths, suggest_key

#: What each launcher needs in the environment, and what starts a run that way.
LAUNCHER_NEEDS = {
    'pytorch': (('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
                'start it with tools/dist_{tool}.sh CONFIG ... NUM_PROCESSES (or python -m '
                'torch.distributed.run), or leave out --launcher for one process'),
    'slurm': (('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
              'start it with tools/slurm_train.sh (srun), or leave out --launcher'),
    'mpi': (('OMPI_COMM_WORLD_LOCAL_RANK', 'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE'),
            'start it with mpirun, or leave out --launcher'),
}


def read_config(path: str) -> Config:
    """``Config.fromfile(path)``; a missing or broken config file is an ``error:`` exit."""
    if not Path(path).is_file():
        raise SystemExit(f'error: config file {path} ' +
                         ('is a folder, not a file' if Path(path).is_dir() else 'not found'))
    try:
        return Config.fromfile(path)
    except FileNotFoundError as err:
        missing = err.filename or str(err).split('"')[1 if '"' in str(err) else 0]
        raise SystemExit(f'error: config {path}: {missing} not found (a _base_ file or a file '
                         'it reads)') from None
    except SyntaxError as err:
        raise SystemExit(f'error: config {path}: invalid Python at line {err.lineno}: '
                         f'{err.msg}') from None
    except NameError as err:
        raise SystemExit(f'error: config {path}: {err}') from None
    except KeyError as err:
        raise SystemExit(f'error: config {path}: it refers to {err} which its _base_ configs '
                         'do not define') from None


def check_launcher(launcher: str, tool: str = 'train') -> None:
    """``--launcher`` other than ``none`` only where the launcher set up the processes."""
    if launcher not in LAUNCHER_NEEDS:
        return
    needed, how = LAUNCHER_NEEDS[launcher]
    missing = [name for name in needed if name not in os.environ]
    if missing:
        raise SystemExit(f'error: --launcher {launcher} needs the environment its launcher '
                         f'sets ({", ".join(missing)} not set); ' + how.format(tool=tool))


def checkpoints_of(cfg: Config, load_from_label: str = 'load_from') -> List[Tuple[str, str]]:
    """``(label, path)`` of the checkpoints a run of ``cfg`` loads from files it names:
    ``load_from`` and every ``init_cfg=dict(type='Pretrained', checkpoint=...)``."""
    found = []
    if isinstance(cfg.get('load_from'), (str, Path)):
        found.append((load_from_label, str(cfg.load_from)))
    for key, value in iter_key_paths(cfg._cfg_dict):
        if isinstance(value, dict) and str(value.get('type', '')).rpartition('.')[2] \
                == 'Pretrained' and isinstance(value.get('checkpoint'), (str, Path)):
            found.append((f'{key}.checkpoint', str(value['checkpoint'])))
    return found


def check_checkpoints(cfg: Config, load_from_label: str = 'load_from') -> None:
    """Every local checkpoint of :func:`checkpoints_of` exists and is a PyTorch checkpoint;
    otherwise an ``error:`` exit saying what the file is (nothing of it is unpickled)."""
    for label, path in checkpoints_of(cfg, load_from_label):
        if is_remote(path):
            continue
        problem = checkpoint_problem(path)
        if problem is not None:
            raise SystemExit(f'error: {label}: {problem}')


_UNKNOWN_TYPE = re.compile(r"([\w.]+) is not in the ([\w:.]+) registry")
_UNKNOWN_ARGUMENT = re.compile(
    r"(?:(\w+)\.)?(\w+)\(\) got an unexpected keyword argument '(\w+)'")
_LOOPS = {'EpochBasedTrainLoop': 'train_cfg', 'IterBasedTrainLoop': 'train_cfg',
          'ValLoop': 'val_cfg', 'TestLoop': 'test_cfg'}


def _type_name(value: Any) -> str:
    return value.__name__ if isinstance(value, type) else str(value).rpartition('.')[2]


def config_key_problem(cfg: Config, err: BaseException) -> Optional[str]:
    """The one-line message for an error building from ``cfg`` that a config key caused (an
    unknown ``type``, an argument the class does not take), naming the key path; None for
    any other error."""
    message = str(err.args[0]) if err.args else ''
    if isinstance(err, KeyError):
        match = _UNKNOWN_TYPE.search(message)
        if match:
            name, registry = match.groups()
            paths = [key for key, value in iter_key_paths(cfg._cfg_dict)
                     if key.rpartition('.')[2] == 'type' and isinstance(value, str)
                     and _type_name(value) == _type_name(name)]
            if paths:
                return (f'{paths[0]}: {name!r} is not in the {registry} registry (a typo, or '
                        'the module that registers it is missing from custom_imports?)')
    if isinstance(err, TypeError):
        matches = _UNKNOWN_ARGUMENT.findall(message)
        if matches:
            cls, method, argument = matches[-1]
            if not cls:
                cls, method = method, '__init__'
            holders: Dict[str, Any] = {key: value for key, value in iter_key_paths(cfg._cfg_dict)
                                       if isinstance(value, dict) and argument in value}
            chosen = [key for key, value in holders.items()
                      if _type_name(value.get('type', '')) == cls or _LOOPS.get(cls) == key]
            if not chosen and len(holders) == 1:
                chosen = list(holders)
            if chosen:
                path = f'{chosen[0]}.{argument}'
                taker = cls if method == '__init__' else f'{cls}.{method}'
                return (f'{path}: {taker} takes no argument {argument!r}'
                        f'{suggest_key(cfg, path)}; fix the key in the config or --cfg-options')
    return None


@contextmanager
def config_key_errors(cfg: Config) -> Iterator[None]:
    """Turn an error that a key of ``cfg`` caused while the run builds into an ``error:``
    exit naming the key path (:func:`config_key_problem`); other errors pass unchanged."""
    try:
        yield
    except (KeyError, TypeError) as err:
        problem = config_key_problem(cfg, err)
        if problem is None:
            raise
        raise SystemExit(f'error: {problem}') from None
