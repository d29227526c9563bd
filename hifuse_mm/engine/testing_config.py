"""The test config from a loaded config and the test tool's options (pure transforms).

:func:`configure_testing` is what ``tools/test.py`` applies, in MMPretrain 1.2's order: work dir
and launcher, the checkpoint, ``--amp`` (``test_cfg.fp16``), ``--show`` / ``--show-dir``
(:func:`enable_visualization`), ``--tta`` (:func:`add_flip_tta`), a ``MedicalMetrics`` in the
evaluators for the test report (:func:`ensure_medical_metrics`), ``--out`` of predictions
(:func:`add_dump_results`), the dataloader defaults and the shared tail
(:func:`~.run_config.prepare_run`).
"""
from __future__ import annotations

from typing import Optional

from mmengine.config import Config, ConfigDict

from ..evaluation import MedicalMetrics
from .run_config import RunConfigError, prepare_run, set_dataloader_defaults, set_work_dir


def enable_visualization(cfg: Config, *, show: bool = False, show_dir: Optional[str] = None,
                         interval: int = 1, wait_time: float = 2) -> None:
    """``--show`` / ``--show-dir``: turn on the ``visualization`` hook of ``default_hooks``.

    Raises:
        RunConfigError: the config has no ``visualization`` hook.
    """
    if 'visualization' not in cfg.get('default_hooks', {}):
        raise RunConfigError('--show/--show-dir need a `visualization` entry in '
                             'default_hooks (see configs/_base_/default_runtime.py)')
    cfg.default_hooks.visualization.update(
        enable=True, show=show, wait_time=wait_time, out_dir=show_dir, interval=interval)


def add_flip_tta(cfg: Config) -> None:
    """Wrap the model for test-time augmentation (horizontal flip unless the config has TTA)."""
    cfg.setdefault('tta_model', dict(type='AverageClsScoreTTA'))
    if 'tta_pipeline' not in cfg:
        pipeline = list(cfg.test_dataloader.dataset.pipeline)
        flips = [dict(type='RandomFlip', prob=1.0), dict(type='RandomFlip', prob=0.0)]
        cfg.tta_pipeline = pipeline[:-1] + [
            dict(type='TestTimeAug', transforms=[flips, [pipeline[-1]]])]
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


def _is_medical_metrics(metric_cfg: dict) -> bool:
    kind = metric_cfg.get('type')
    return kind in ('MedicalMetrics', 'mmpretrain.MedicalMetrics') or kind is MedicalMetrics


def ensure_medical_metrics(cfg: Config) -> None:
    """Make ``test_evaluator`` a list that includes a ``MedicalMetrics`` (the report needs it)."""
    evaluators = cfg.get('test_evaluator')
    if evaluators is None:
        return
    evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
    if not any(_is_medical_metrics(e) for e in evaluators):
        evaluators.append(dict(type='MedicalMetrics'))
    cfg.test_evaluator = evaluators


def add_dump_results(cfg: Config, out: str) -> None:
    """``--out`` of predictions: append ``AtomicDumpResults`` (mmengine's ``DumpResults``
    written atomically, never over a file) writing them to ``out``."""
    evaluators = cfg.test_evaluator
    evaluators = list(evaluators) if isinstance(evaluators, (list, tuple)) else [evaluators]
    cfg.test_evaluator = evaluators + [dict(type='AtomicDumpResults', out_file_path=out)]


def configure_testing(cfg: Config, *, config_file: str, checkpoint: str,
                      work_dir: Optional[str] = None, launcher: str = 'none', amp: bool = False,
                      show: bool = False, show_dir: Optional[str] = None, interval: int = 1,
                      wait_time: float = 2, tta: bool = False, out: Optional[str] = None,
                      out_item: Optional[str] = None, pin_memory: bool = True,
                      compile_model: bool = False, cfg_options: Optional[dict] = None,
                      skip_bad_images: bool = False) -> Config:
    """Turn ``cfg`` (loaded from ``config_file``) into the config testing ``checkpoint``.

    The options are those of ``tools/test.py`` (``pin_memory=False`` is ``--no-pin-memory``,
    ``compile_model`` ``--compile``); ``out`` with ``out_item`` None or ``'pred'`` adds
    :func:`add_dump_results` (metrics go to ``out`` after the run, see
    :func:`hifuse_mm.engine.runs.run_test_with_report`). Whether ``out`` exists already is the
    caller's check. Raises :class:`~.run_config.RunConfigError` for an option the config cannot
    take.
    """
    cfg.launcher = launcher
    set_work_dir(cfg, work_dir, config_file)
    cfg.load_from = checkpoint
    if amp:
        cfg.merge_from_dict({'test_cfg.fp16': True})
    if show or show_dir is not None:
        enable_visualization(cfg, show=show, show_dir=show_dir, interval=interval,
                             wait_time=wait_time)
    if tta:
        add_flip_tta(cfg)
    ensure_medical_metrics(cfg)
    if out is not None and out_item in (None, 'pred'):
        add_dump_results(cfg, out)
    set_dataloader_defaults(cfg, pin_memory=pin_memory, persistent_workers=None)
    prepare_run(cfg, launcher=launcher, compile_model=compile_model, cfg_options=cfg_options,
                skip_bad_images=skip_bad_images)
    return cfg
