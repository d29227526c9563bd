"""Build the one-file HTML report of one or more runs and write it without overwriting anything.

Sections (each a ``<section id=...>``): ``data`` (the split and its audit), ``results``
(metrics with intervals, per-class table, figures, operating points, validation choices; for
several runs first the comparison table and the paired tests), ``failures`` (most confident
errors, least confident correct cases, Grad-CAM overlays), ``run-facts`` (config, seed,
checksums, versions, device, training time, commands) and ``checklist`` (CLAIM 2024 and
TRIPOD+AI). A part a run lacks is a visible "not available: why (how to get it)" note in its
section, never a failure; a folder that is not a run raises
:class:`~hifuse_mm.analysis.RunResultError` before anything is written.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from ...utils.atomic_files import atomic_write_text
from ...utils.output_files import check_new_files
from ...version import __version__
from .checklist import Coverage, checklist_section
from .comparison_section import comparison_section
from .data_section import data_section
from .failures_section import failures_for_run
from .html import Html, join, page, paragraph, section, tag
from .mmengine_log import report_log
from .results_section import results_for_run
from .run_context import RunContext, load_context, unique_labels
from .run_facts import environment_note, facts_for_run

Progress = Callable[[str], None]
SECTIONS = (('data', 'Data'), ('results', 'Results'), ('failures', 'Failure analysis'),
            ('run-facts', 'Run facts'), ('checklist', 'Reporting checklist'))


def print_progress(message: str) -> None:
    """Default progress: one line on stderr."""
    print(f'report: {message}', file=sys.stderr, flush=True)


@dataclass
class HtmlReportOptions:
    """What the report shows.

    Attributes:
        title: Page title (default: the runs' names).
        labels: Names of the runs (default: their config names).
        failures: Images in each of the two failure galleries.
        cam: Add Grad-CAM overlays when the ``cam`` extra is installed.
        device: Device of the Grad-CAM model (None: CUDA if available).
        trust_checkpoint: Allow full unpickling of a checkpoint that does not load weights-only.
        resamples: Paired-bootstrap rounds of the comparison of several runs.
        seed: Seed of that bootstrap.
        argv: The command that builds the report (shown in the run facts).
    """
    title: Optional[str] = None
    labels: Optional[Sequence[str]] = None
    failures: int = 8
    cam: bool = True
    device: Optional[str] = None
    trust_checkpoint: bool = False
    resamples: int = 10000
    seed: int = 0
    argv: Optional[Sequence[str]] = None


def load_contexts(runs: Sequence[Path], labels: Optional[Sequence[str]] = None
                  ) -> List[RunContext]:
    """Load every run (raises :class:`~hifuse_mm.analysis.RunResultError` for a non-run)."""
    if not runs:
        raise ValueError('no run folders given')
    if labels is not None and len(labels) != len(runs):
        raise ValueError(f'{len(labels)} labels for {len(runs)} runs')
    contexts = [load_context(Path(run), labels[i] if labels else None)
                for i, run in enumerate(runs)]
    if labels is None:
        unique_labels(contexts)
    return contexts


def _coverage(contexts: Sequence[RunContext]) -> Coverage:
    coverage = Coverage(several=len(contexts) > 1)
    for context in contexts:
        run = context.run
        parts = context.detail
        coverage.intervals |= bool(run.ci) or (run.kind != 'test' and len(run.folds) > 1)
        coverage.repeated |= run.kind != 'test' and len(run.folds) > 1
        coverage.failures |= context.predictions() is not None
        coverage.thresholds |= any(p.content.get('threshold') for p in parts)
        coverage.temperature |= any(p.content.get('temperature_scaling') for p in parts)
        coverage.config |= context.config is not None
        coverage.versions |= any(p.content.get('environment') or (
            report_log(p.folder) is not None) for p in parts)
        root = context.data_root()
        if root and Path(root).is_dir():
            meta = Path(root) / 'meta'
            coverage.split_record |= (meta / 'split.json').is_file()
            coverage.audit |= (meta / 'audit.json').is_file() or any(meta.glob('*/audit.json'))
    return coverage


def build_html_report(runs: Sequence[Path], options: Optional[HtmlReportOptions] = None,
                      progress: Progress = print_progress) -> str:
    """The report of ``runs`` as one HTML document (a string)."""
    options = options or HtmlReportOptions()
    contexts = load_contexts(runs, options.labels)
    names = ', '.join(c.label for c in contexts)
    progress(f'building the report of {names}')
    title = options.title or f'Evaluation report: {names}'

    data = data_section(contexts)
    results: List[object] = []
    if len(contexts) > 1:
        results.append(comparison_section(contexts, options.resamples, options.seed, progress))
    results += [results_for_run(c, progress) for c in contexts]
    failures: List[object] = [paragraph(
        f'Confidence = the probability of the predicted class. Most confident errors: the '
        f'wrong predictions with the highest confidence; least confident correct cases: the '
        f'right ones with the lowest ({options.failures} each).')]
    coverage = _coverage(contexts)
    for context in contexts:
        block, with_cam = failures_for_run(context, options.failures, options.cam,
                                           options.device, options.trust_checkpoint, progress)
        failures.append(block)
        coverage.cam |= with_cam
    facts = [environment_note()] + [facts_for_run(c, progress, options.argv) for c in contexts]
    body = join([
        section('data', 'Data', data),
        section('results', 'Results', join(results)),
        section('failures', 'Failure analysis', join(failures)),
        section('run-facts', 'Run facts', join(facts)),
        section('checklist', 'Reporting checklist', checklist_section(coverage)),
    ])
    subtitle = Html(tag('p', f'{len(contexts)} run(s): {names}. Built '
                        f'{time.strftime("%Y-%m-%d %H:%M:%S")} by hifuse-mm {__version__} '
                        '(tools/analysis_tools/report.py); one self-contained file, nothing is '
                        'loaded from the network.', class_='meta'))
    progress('assembling the page')
    return page(title, subtitle, SECTIONS, body)


def write_html_report(runs: Sequence[Path], out: Path,
                      options: Optional[HtmlReportOptions] = None, force: bool = False,
                      progress: Progress = print_progress) -> Path:
    """Build the report and write it to ``out`` atomically; an existing ``out`` is refused
    (:class:`~hifuse_mm.utils.output_files.OutputExistsError`) unless ``force``."""
    out = Path(out)
    check_new_files([out], force=force)
    document = build_html_report(runs, options, progress)
    atomic_write_text(out, document, exclusive=not force)
    progress(f'wrote {out} ({out.stat().st_size / 1e6:.1f} MB)')
    return out
