"""The report's **Run facts**: what it takes to reproduce a run and to trust that the numbers
belong to it.

Per run: the config the test ran with (collapsible; it holds every ``--cfg-options``), the seed,
the SHA-256 of the tested checkpoint(s), the SHA-256 of the test list checked against
``meta/split.json``, the versions of hifuse-mm, torch, mmengine and mmpretrain and the device
(``environment`` of ``metrics.json``, else the test's log), the training time (from the
training logs next to the checkpoint) and the commands that reproduce the run. Facts a run
folder does not hold are marked as not available, with the reason.
"""
from __future__ import annotations

import platform
import shlex
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from ...datasets.splits import DatasetError, read_split_record
from ...utils.file_hash import file_sha256
from ...version import __version__
from .html import Html, code, details, join, missing, paragraph, pre, table, tag
from .mmengine_log import report_log, run_logs
from .run_context import ReportPart, RunContext

Progress = Callable[[str], None]
#: Versions recorded from a test log, by the name the report shows.
LOG_VERSIONS = (('python', 'Python'), ('torch', 'PyTorch'), ('torchvision', 'TorchVision'),
                ('mmengine', 'MMEngine'), ('opencv', 'OpenCV'))


def current_environment() -> Dict[str, str]:
    """Versions of the environment building the report (for runs that recorded none)."""
    import mmengine
    import mmpretrain
    import torch
    versions = {'hifuse-mm': __version__, 'python': platform.python_version(),
                'torch': torch.__version__, 'mmengine': mmengine.__version__,
                'mmpretrain': mmpretrain.__version__}
    return versions


def _duration(value: Optional[timedelta]) -> str:
    if value is None:
        return '–'
    seconds = int(value.total_seconds())
    return f'{seconds // 3600} h {seconds // 60 % 60:02d} min {seconds % 60:02d} s'


def _environment(part: ReportPart) -> tuple:
    """``(versions, device, source)`` of a test run."""
    recorded = part.content.get('environment')
    if isinstance(recorded, dict) and recorded:
        versions = {k: str(v) for k, v in recorded.items() if k not in ('device', 'platform')}
        device = str(recorded.get('device', '?'))
        if recorded.get('platform'):
            device += f'; {recorded["platform"]}'
        return versions, device, f'{part.folder}/metrics.json'
    log = report_log(part.folder)
    if log is None or not log.environment:
        return {}, None, None
    env = log.environment
    versions = {name: env[key].split(' ')[0] for name, key in LOG_VERSIONS if key in env}
    gpus = [f'{k}: {v}' for k, v in env.items() if k.startswith('GPU ') and k != 'GPU number']
    device = ('CUDA, ' + '; '.join(gpus)) if env.get('CUDA available') == 'True' and gpus \
        else 'CPU' if env.get('CUDA available') == 'False' else None
    return versions, device, str(log.path)


def _checkpoint_row(part: ReportPart, progress: Progress) -> List[str]:
    recorded = part.content.get('checkpoint')
    if not isinstance(recorded, str) or not recorded:
        return [part.name, '–', 'not available: metrics.json records no checkpoint']
    path = Path(recorded)
    if not path.is_file():
        return [part.name, recorded, 'not available: the file is not found from here']
    progress(f'SHA-256 of {recorded}')
    return [part.name, recorded, code(file_sha256(path))]


def _training(part: ReportPart) -> Dict[str, str]:
    """Seed and time of the training run behind the tested checkpoint."""
    recorded = part.content.get('checkpoint')
    if not isinstance(recorded, str) or not Path(recorded).is_file():
        return {}
    logs = [log for log in run_logs(Path(recorded).parent) if log.start is not None]
    if not logs:
        return {}
    durations = [log.duration for log in logs if log.duration is not None]
    seeds = sorted({log.environment['seed'] for log in logs if 'seed' in log.environment})
    facts = {'training logs': ', '.join(str(log.path) for log in logs),
             'training seed': ', '.join(seeds) or '–',
             'training time': _duration(sum(durations, timedelta())) + (
                 f' over {len(logs)} starts (resumed)' if len(logs) > 1 else '')}
    device = logs[0].environment.get('CUDA available')
    if device is not None:
        gpus = [v for k, v in logs[0].environment.items() if k.startswith('GPU ')
                and k != 'GPU number']
        facts['training device'] = ('CUDA: ' + '; '.join(gpus)) if device == 'True' else 'CPU'
    return facts


def _test_list(context: RunContext) -> List[List[object]]:
    """SHA-256 of the test list(s) now, against ``split.json``."""
    root = context.data_root()
    if root is None or context.config is None:
        return []
    rows = []
    for part in context.detail:
        config_file = part.folder / 'vis_data' / 'config.py'
        ann = None
        if part is context.detail[0]:
            ann = ((context.config.get('test_dataloader') or {}).get('dataset') or {}).get(
                'ann_file')
        else:
            try:
                from mmengine.config import Config
                ann = Config.fromfile(str(config_file)).test_dataloader.dataset.get('ann_file')
            except Exception:  # noqa: BLE001 - a missing fact, not an error
                ann = None
        if not ann:
            continue
        path = Path(root) / ann
        if not path.is_file():
            rows.append([part.name, str(path), 'not available: not found from here'])
            continue
        digest = file_sha256(path)
        try:
            record = read_split_record(root)
        except DatasetError:
            record = None
        expected = (record or {}).get('index_files', {}).get(Path(ann).as_posix())
        check = ('matches meta/split.json' if expected == digest else
                 'DIFFERS from meta/split.json: the list was changed after it was prepared'
                 if expected else 'no meta/split.json record to compare with')
        rows.append([part.name, str(path), Html(f'{code(digest)} ({check})')])
    return rows


def _config_seed(context: RunContext) -> str:
    if context.config is None:
        return '–'
    randomness = context.config.get('randomness') or {}
    seed = randomness.get('seed')
    return ('not set in the config (mmengine drew one: see the training log)' if seed is None
            else str(seed)) + (', deterministic' if randomness.get('deterministic') else '')


def _quote(value: Any) -> str:
    return shlex.quote(str(value))


def commands(context: RunContext, report_argv: Optional[Sequence[str]] = None) -> List[str]:
    """The commands that reproduce the run (as far as its folders record them)."""
    run = context.run
    first = context.detail[0] if context.detail else None
    content = first.content if first else {}
    config = content.get('config') or (str(context.config_file) if context.config_file else
                                       'CONFIG')
    flags = []
    bootstrap = content.get('bootstrap') or {}
    if bootstrap.get('resamples'):
        flags += ['--bootstrap', str(bootstrap['resamples'])]
        if bootstrap.get('seed'):
            flags += ['--bootstrap-seed', str(bootstrap['seed'])]
    lines = []
    if run.kind == 'test':
        checkpoint = content.get('checkpoint') or 'CHECKPOINT'
        if content.get('temperature_scaling'):
            flags += ['--calibrate', 'val']
        threshold = content.get('threshold') or {}
        if threshold.get('target_specificity') is not None:
            flags += ['--target-specificity', str(threshold['target_specificity'])]
        elif threshold:
            flags += ['--threshold', 'val']
        train_dir = Path(checkpoint).parent if checkpoint != 'CHECKPOINT' else None
        test_flags = ' '.join(flags)
        lines.append('# 1. train as this run did'
                     + (f' (it used --work-dir {train_dir})' if train_dir else ''))
        lines.append(f'python tools/train.py {_quote(config)} --work-dir NEW_DIR')
        dumped = train_dir / Path(str(config)).name if train_dir else None
        if dumped is not None and dumped.is_file() and str(dumped) != str(config):
            lines += ['#    or exactly as trained: the config the training dumped (every '
                      '--cfg-options included)',
                      f'python tools/train.py {_quote(dumped)} --work-dir NEW_DIR']
        lines += ['# 2. test its best checkpoint (chosen on the validation split) as this run '
                  'was tested',
                  f'python tools/test.py {_quote(config)} NEW_DIR/best_*.pth --work-dir '
                  f'NEW_DIR/test {test_flags}',
                  '# test the tested checkpoint again (a new <timestamp>/ report folder)',
                  f'python tools/test.py {_quote(config)} {_quote(checkpoint)} --work-dir '
                  f'{_quote(first.folder.parent)} {test_flags}']
    else:
        tool = 'kfold' if run.kind == 'kfold' else 'seeds'
        option = '--folds' if run.kind == 'kfold' else '--seeds'
        values = run.folds if run.kind == 'kfold' else [f.replace('seed', '', 1)
                                                        for f in run.folds]
        lines += [f'# train and test every {"fold" if tool == "kfold" else "seed"}',
                  f'python tools/{tool}.py {_quote(config)} {option} '
                  + ' '.join(_quote(v) for v in values)
                  + f' --work-dir {_quote(run.source.parent)} ' + ' '.join(flags)]
    argv = report_argv or ['python', 'tools/analysis_tools/report.py', str(run.path)]
    lines += ['# this report', ' '.join(_quote(a) for a in argv)]
    return [line.rstrip() for line in lines]


def facts_for_run(context: RunContext, progress: Progress,
                  report_argv: Optional[Sequence[str]] = None) -> Html:
    """The Run facts block of one run."""
    parts: List[object] = [tag('h3', context.label)]
    rows: List[List[object]] = [['results', str(context.run.source)],
                                ['kind', context.run.kind]]
    first = context.detail[0] if context.detail else None
    if first is not None:
        rows.append(['config file (as given to the test)', str(first.content.get('config'))])
    rows.append(['seed (randomness in the config)', _config_seed(context)])
    versions, device, source = _environment(first) if first else ({}, None, None)
    training = _training(first) if first else {}
    for key, value in training.items():
        rows.append([key, value])
    if versions:
        rows.append([f'versions (from {source})',
                     ', '.join(f'{k} {v}' for k, v in versions.items())])
    rows.append(['device of the test', device or 'not available: no environment in '
                 'metrics.json and no test log'])
    rows.append(['report built with', ', '.join(f'{k} {v}' for k, v in
                                                 current_environment().items())
                 + f' on {platform.platform()} (Python {sys.version.split()[0]})'])
    parts.append(table(['fact', 'value'], rows, class_='facts'))
    if not versions:
        parts.append(missing('The versions the test ran with', 'neither metrics.json nor the '
                             "test's log records them", 'the report shows the versions it was '
                             'built with instead'))
    if not training:
        parts.append(missing('Training seed and time', "the training logs next to the tested "
                             'checkpoint are not found from here',
                             'build the report where the run was trained'))
    parts += [tag('h4', 'Checkpoints'),
              table(['report', 'checkpoint', 'SHA-256'],
                    [_checkpoint_row(p, progress) for p in context.parts], class_='facts')]
    test_lists = _test_list(context)
    parts.append(tag('h4', 'Test list'))
    parts.append(
        table(['report', 'list', 'SHA-256'], test_lists, class_='facts') if test_lists
        else missing('The test list checksum', 'the data folder or the config is not found '
                     'from here'))
    parts += [tag('h4', 'Commands that reproduce the run'), pre('\n'.join(commands(
        context, report_argv)))]
    if context.config_file is not None and context.config_file.is_file():
        parts.append(details(f'Config the test ran with ({context.config_file})',
                             pre(context.config_file.read_text(errors='replace'))))
    else:
        parts.append(missing('The config', 'the report folder has no vis_data/config.py',
                             'test with tools/test.py, which dumps it'))
    return join(parts)


def environment_note() -> Html:
    """One line on where the versions come from."""
    return paragraph('Versions: those recorded by tools/test.py in metrics.json; older reports: '
                     "those in the test's log (PyTorch, MMEngine, ...; mmpretrain and hifuse-mm "
                     'are not in it).')
