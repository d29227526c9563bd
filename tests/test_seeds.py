"""tools/seeds.py end to end: one tiny training and test per seed, the summary, resuming, and
results_table's mean ± sd over the seeds."""
import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

from hifuse_mm.analysis import load_run
from hifuse_mm.cli.seeds import seeds_main
from helpers import TOOLS, inside, repo_env
from tiny_config import make_data, write_config


def _seeds(cwd: Path, *argv: str) -> str:
    proc = subprocess.run([sys.executable, str(TOOLS / 'seeds.py'), *argv], cwd=cwd,
                          env=repo_env(OMP_NUM_THREADS='1'), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return proc.stdout


def _checkpoints(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in sorted(folder.rglob('*.pth'))}


def test_seeds_end_to_end_and_resume(tmp_path):
    write_config(tmp_path / 'tiny.py', make_data(tmp_path))
    _seeds(tmp_path, 'tiny.py', '--seeds', '3', '5', '--work-dir', 'runs')
    runs = tmp_path / 'runs'
    summary = json.loads((runs / 'seeds.json').read_text())
    assert summary['seeds'] == [3, 5] and summary['folds'] == ['seed3', 'seed5']
    for seed in (3, 5):
        name = f'seed{seed}'
        # Each seed trained with its own randomness.seed (the config mmengine dumped).
        dumped, = (runs / name).glob('*/vis_data/config.py')
        assert Config.fromfile(str(dumped)).randomness.seed == seed
        report = Path(summary['runs'][name]['report_dir'])
        assert report.parent == runs / name / 'test'
        tested = json.loads((report / 'metrics.json').read_text())['metrics']
        assert tested == pytest.approx(summary['metrics'][name], nan_ok=True)
    for key, mean in summary['mean'].items():
        values = np.array([summary['metrics'][f'seed{s}'][key] for s in (3, 5)], float)
        if np.isfinite(values).all():
            assert mean == pytest.approx(values.mean())
            assert summary['std'][key] == pytest.approx(values.std(ddof=1))
    table = (runs / 'seeds.md').read_text()
    assert '| metric | seed3 | seed5 | mean | std |' in table
    assert 'over 2 seeds (ddof = 1)' in table

    # results_table reads it as mean ± sd over the seeds, tested on one and the same split.
    run = load_run(runs)
    assert run.kind == 'seeds' and run.folds == ['seed3', 'seed5']
    assert run.metrics['accuracy'] == pytest.approx(summary['mean']['medical/accuracy'])
    one = json.loads((Path(summary['runs']['seed3']['report_dir']) / 'metrics.json')
                     .read_text())
    assert run.num_samples == one['num_samples']
    proc = subprocess.run([sys.executable, str(TOOLS / 'analysis_tools' / 'results_table.py'),
                           str(runs)], cwd=tmp_path, env=repo_env(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert proc.returncode == 0, proc.stdout
    assert 'training seeds on the same test split' in proc.stdout

    # Resumable: with the summary removed, tested seeds are not run again; a seed whose test
    # report is gone is trained and tested again, the other is left alone.
    for name in ('seeds.json', 'seeds.md'):
        (runs / name).unlink()
    before = _checkpoints(runs / 'seed3')
    for report in (runs / 'seed5' / 'test').glob('*/metrics.json'):
        report.unlink()
    # (seeds.py's main in this process this time: tools/seeds.py ran as a subprocess above.)
    printed = io.StringIO()
    with inside(tmp_path), contextlib.redirect_stdout(printed):
        seeds_main(['tiny.py', '--seeds', '3', '5', '--work-dir', 'runs'])
    out = printed.getvalue()
    assert 'seed3: tested already' in out and 'seed5: tested already' not in out
    assert _checkpoints(runs / 'seed3') == before
    again = json.loads((runs / 'seeds.json').read_text())
    assert again['metrics']['seed3'] == pytest.approx(summary['metrics']['seed3'], nan_ok=True)


def test_seeds_refuses_repeats_and_existing_summaries(tmp_path):
    with pytest.raises(SystemExit, match='--seeds has repeats'):
        seeds_main(['x.py', '--seeds', '1', '1', '--work-dir', str(tmp_path / 'a')])
    (tmp_path / 'b').mkdir()
    (tmp_path / 'b' / 'seeds.md').write_text('mine')
    with pytest.raises(SystemExit, match='exist.*nothing was overwritten'):
        seeds_main(['x.py', '--work-dir', str(tmp_path / 'b')])
    assert (tmp_path / 'b' / 'seeds.md').read_text() == 'mine'
