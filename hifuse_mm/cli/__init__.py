"""Command-line front ends behind ``tools/train.py``, ``tools/test.py``, ``tools/kfold.py``,
``tools/seeds.py`` and ``tools/analysis_tools/report.py``.

They keep MMPretrain 1.2's CLI (same arguments, same meaning) and add what this stack needs:
each main first calls :func:`hifuse_mm.engine.install` (the run-safety layer, explicitly and
once per process), then applies the config transforms of :mod:`hifuse_mm.engine.run_config`,
:mod:`~hifuse_mm.engine.training_config` and :mod:`~hifuse_mm.engine.testing_config`
(``persistent_workers`` only with workers; gloo and CPU DDP for ``--launcher`` on CPU-only
hosts; a CPU-capable ``--amp``) and runs through :mod:`hifuse_mm.engine.runs` (the config's
``runner_type`` honoured). ``tools/demo.py`` reuses the same functions.

Run safety (SECURITY.md, :mod:`hifuse_mm.engine`): checkpoints load weights-only unless
``--trust-checkpoint`` (or a ``--resume`` of a checkpoint our training signed); every run gets
the hooks of :data:`hifuse_mm.engine.run_config.RUN_HOOKS` (exact resume, stop on a NaN/inf
loss, class count check, skipped-image report); ``--skip-bad-images`` leaves bad images out
instead of stopping; errors that say what to do are printed without a traceback (exit status 1,
:mod:`.errors`).

The test tool also writes a report into the run's timestamped log folder
(``<work_dir>/<YYYYmmdd_HHMMSS>/``, so an earlier run's report is never overwritten):
``metrics.json``, ``predictions.csv`` and the figures of
:data:`hifuse_mm.evaluation.report.REPORT_FILES`, with bootstrap confidence intervals for ``--bootstrap N``.

Before a run the mains check what would otherwise fail deep inside mmengine or torch with a
traceback (:mod:`.checks`): a missing or broken config, ``--launcher`` outside its launcher,
checkpoints that are missing or no PyTorch checkpoint, and (while the runner builds) a mistyped
config key or ``type``, named by its key path; ``--cfg-options`` pairs are validated as they
are parsed.

Modules: :mod:`.arguments` (the parsers), :mod:`.train`, :mod:`.test`, :mod:`.kfold` (the
mains), :mod:`.checks` (the checks before a run), :mod:`.errors` (``error: ...`` exits).

Python use::

    from hifuse_mm import cli, engine
    from hifuse_mm.engine.runs import run_test_with_report, run_train

    engine.install()
    runner = run_train(cli.train_config(cli.train_parser().parse_args(['configs/x.py', '--amp'])))
    args = cli.test_parser().parse_args(['configs/x.py', 'best.pth'])
    metrics, report_dir = run_test_with_report(cli.test_config(args), cli.test_report(args))
"""
from .arguments import LAUNCHERS, test_parser, train_parser
from .errors import CLEAR_ERRORS, clear_errors
from .test import test_config, test_main, test_report
from .train import train_config, train_main

__all__ = [
    'CLEAR_ERRORS', 'LAUNCHERS', 'clear_errors', 'test_config', 'test_main', 'test_parser',
    'test_report', 'train_config', 'train_main', 'train_parser'
]
