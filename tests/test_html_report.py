"""The one-file HTML evaluation report (tools/analysis_tools/report.py, tools/test.py --html).

One tiny real run is tested once for the module: the narrow HiFuse trained by tools/train.py
on synthetic 32 px images (with a ``meta/split.json`` and a real split audit in the data folder;
the run is shared with tests/test_report_validation_choices.py, see ``trained_tiny`` in
tests/conftest.py), tested by the real
``tools/test.py --bootstrap --calibrate val --threshold val --html``.
The tests parse the HTML with ``html.parser`` and check every section, that every image is an
embedded PNG that decodes, that nothing is loaded from outside the file, the checklist, and
numbers against the run's own files; then what happens when parts are missing, for a k-fold
run, for two runs compared, and for a folder that is not a run.
"""
import base64
import csv
import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import TOOLS, repo_env
from hifuse_mm.analysis.html_report import HtmlReportOptions, build_html_report
from hifuse_mm.analysis.html_report import failures_section
from hifuse_mm.analysis.html_report.checklist import CLAIM_2024, TRIPOD_AI
from hifuse_mm.evaluation import LastEvaluation, evaluate_predictions, write_test_report
from hifuse_mm.utils.file_hash import file_sha256
from tool_runner import call_tool, ok

SECTIONS = ('data', 'results', 'failures', 'run-facts', 'checklist')
#: The cam extra (grad-cam) is part of `make venv`; without it the overlays are said missing.
HAS_CAM = importlib.util.find_spec('pytorch_grad_cam') is not None


class Page(HTMLParser):
    """What the tests look at in a report: sections, images, links, scripts, table rows."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections, self.images, self.urls, self.tags = [], [], [], []
        self.rows, self._row, self._cell, self._in_cell = [], None, [], False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == 'section':
            self.sections.append(attrs.get('id'))
        if tag == 'img':
            self.images.append(attrs)
        for key in ('src', 'href', 'action', 'srcset', 'data', 'poster'):
            if key in attrs:
                self.urls.append(attrs[key])
        if tag == 'tr':
            self._row = []
        if tag in ('td', 'th'):
            self._in_cell, self._cell = True, []

    def handle_endtag(self, tag):
        if tag in ('td', 'th') and self._row is not None:
            self._row.append(''.join(self._cell).strip())
            self._in_cell = False
        if tag == 'tr' and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._in_cell:
            self._cell.append(data)


def _decoded_images(page: Page):
    """Every <img> as a decoded PIL image (asserts each is an embedded PNG or JPEG)."""
    images = []
    for attrs in page.images:
        src = attrs.get('src', '')
        match = re.fullmatch(r'data:image/(png|jpeg);base64,([A-Za-z0-9+/=]+)', src)
        assert match, f'image not embedded as a data: URI: {src[:80]}'
        data = base64.b64decode(match.group(2), validate=True)
        assert data[:8] == b'\x89PNG\r\n\x1a\n' or data[:3] == b'\xff\xd8\xff'
        image = Image.open(io.BytesIO(data))
        image.load()
        assert image.width > 10 and image.height > 10
        assert attrs.get('alt')
        images.append(image)
    return images


def _offline(text: str, page: Page) -> None:
    """Nothing outside the file: only data: URIs and in-page anchors, no scripts or links."""
    for url in page.urls:
        assert url.startswith(('data:', '#')), f'external reference {url[:80]}'
    assert not {'script', 'link', 'iframe', 'object', 'embed', 'base'} & set(page.tags)
    style = ''.join(re.findall(r'<style>(.*?)</style>', text, re.S))
    assert 'url(' not in style and '@import' not in style


@pytest.fixture(scope='module')
def tested(trained_tiny):
    """Test the shared tiny training run (tests/conftest.py) with bootstrap / calibrate /
    threshold / --html; returns the workspace, the report folder, the checkpoint and the split
    record."""
    root, checkpoint = trained_tiny.root, trained_tiny.checkpoint
    proc = subprocess.run([sys.executable, str(TOOLS / 'test.py'), 'tiny.py',
                           str(checkpoint.relative_to(root)), '--work-dir', 'tested',
                           '--bootstrap', '20', '--calibrate', 'val', '--threshold', 'val',
                           '--html'], cwd=root, env=repo_env(OMP_NUM_THREADS='1'),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    report_dir, = (root / 'tested').glob('*/metrics.json')
    assert not re.search(r'^report: ', proc.stdout, re.M)  # progress goes to stderr
    assert re.search(r'report: .*: failure analysis of \d+ images', proc.stderr)
    assert HAS_CAM == bool(re.search(r'report: Grad-CAM of test: batch 1/\d', proc.stderr))
    return root, report_dir.parent, checkpoint, trained_tiny.record


def test_html_flag_writes_a_complete_offline_report(tested):
    root, report_dir, checkpoint, record = tested
    text = (report_dir / 'report.html').read_text()
    page = Page(text)
    assert page.sections == list(SECTIONS)
    _offline(text, page)
    images = _decoded_images(page)
    content = json.loads((report_dir / 'metrics.json').read_text())
    # Every optional part is there: nothing is reported missing.
    missing = [text[text.rfind('>', 0, i) + 1:text.find('<', i)]
               for i in (m.start() for m in re.finditer('not available', text))]
    assert len(missing) == (0 if HAS_CAM else 1), missing
    assert HAS_CAM or 'the grad-cam package is not installed' in missing[0]
    # 5 figures (confusion, ROC, PR, reliability before / after) + the failure galleries.
    with open(report_dir / 'predictions.csv') as stream:
        rows = list(csv.DictReader(stream))
    wrong = sum(r['label'] != r['prediction'] for r in rows)
    right = len(rows) - wrong
    assert len(images) == 5 + min(8, wrong) + min(8, right)
    shown = min(8, wrong) + min(8, right)
    assert text.count('right: Grad-CAM of the predicted class') == (shown if HAS_CAM else 0)
    # Grad-CAM thumbnails are input | overlay, two panels of PANEL pixels side by side.
    width = 2 * failures_section.PANEL + 4 if HAS_CAM else failures_section.PANEL
    assert all(image.width == width for image in images[5:])

    cells = {row[0]: row[1:] for row in page.rows if row}
    accuracy = content['metrics']['medical/accuracy']
    low, high = content['bootstrap']['accuracy']['low'], content['bootstrap']['accuracy']['high']
    assert cells['accuracy'] == [f'{accuracy:.4f}', f'{low:.4f} – {high:.4f}']
    assert cells['all classes'] == ['12', '12', '12']  # train / val / test, from split.json
    assert cells['protocol'] == ['tiny-protocol'] and cells['seed'] == ['7']
    assert 'Split audit of the split' in text and 'OK: no image' in text
    temperature = content['temperature_scaling']['temperature']
    assert f'T = {temperature:.3f}, fitted on the validation split' in text
    threshold_rows = [r for r in page.rows if len(r) == 10 and r[0] == 'test']
    assert len(threshold_rows) == len(content['threshold']['classes'])
    # Run facts: the checkpoint's SHA-256 and the test list checked against split.json.
    assert file_sha256(checkpoint) in text
    assert f'{record["index_files"]["meta/test.txt"]}</code> (matches meta/split.json)' in text
    assert 'training time' in cells and re.fullmatch(r'\d+ h \d\d min \d\d s',
                                                      cells['training time'][0])
    assert re.search(rf'tools/test.py tiny.py {checkpoint.relative_to(root)} --work-dir '
                     r'\S*tested --bootstrap 20 --calibrate val --threshold val\n', text)
    assert "mmpretrain" in cells[f'versions (from {report_dir}/metrics.json)'][0]
    # The checklist: every CLAIM 2024 and TRIPOD+AI item once, each with a status.
    claim = [r for r in page.rows if len(r) == 4 and r[0].isdigit() and int(r[0]) <= 44]
    numbers = [r[0] for r in page.rows if len(r) == 4 and r[2] in (
        'filled by this report', 'partly filled', 'author must supply')]
    assert numbers == [n for n, _, _ in CLAIM_2024] + [n for n, _, _ in TRIPOD_AI]
    assert len(CLAIM_2024) == 44 and len(TRIPOD_AI) == 52
    status = {r[0]: r[2] for r in claim[:44]}
    assert status['39'] == 'filled by this report'  # failure analysis
    assert status['31'] == ('partly filled' if HAS_CAM else 'author must supply')  # Grad-CAM
    assert status['29'] == 'filled by this report'  # bootstrap intervals
    assert status['44'] == 'author must supply'  # funding


def _strip(report_dir: Path, target: Path) -> Path:
    """A copy of the report folder without predictions, config, intervals or choices."""
    shutil.copytree(report_dir, target)
    (target / 'predictions.csv').unlink()
    (target / 'report.html').unlink()
    shutil.rmtree(target / 'vis_data')
    content = json.loads((target / 'metrics.json').read_text())
    for key in ('bootstrap', 'temperature_scaling', 'threshold', 'environment'):
        content.pop(key)
    (target / 'metrics.json').write_text(json.dumps(content))
    return target


def test_missing_parts_are_said_not_fatal(tested, tmp_path):
    root, report_dir, _, _ = tested
    stripped = _strip(report_dir, tmp_path / 'stripped' / '20260101_000000')
    result = ok(call_tool(root, 'analysis_tools/report.py', str(stripped), '--out',
                          str(tmp_path / 'r.html')))
    assert 'report: ' in result.stderr and 'Wrote' in result.stdout
    text = (tmp_path / 'r.html').read_text()
    page = Page(text)
    assert page.sections == list(SECTIONS)
    _offline(text, page)
    # The report folder's own PNGs stand in for the figures it cannot re-draw.
    assert len(_decoded_images(page)) == 4
    for note in ('95% intervals not available: the test ran without --bootstrap',
                 'Re-drawn figures not available', 'The reliability diagram after temperature '
                 'scaling not available', 'Validation-chosen thresholds not available',
                 'Temperature scaling not available', 'The failure analysis not available',
                 'The config not available', 'The split not available: the data folder is '
                 'unknown'):
        assert note in text, note
    assert 'partly filled' in text and 'Results</a>: no intervals' in text


def test_without_the_cam_extra_thumbnails_stay(tested, monkeypatch):
    _, report_dir, _, _ = tested
    real = failures_section.importlib.util.find_spec
    monkeypatch.setattr(failures_section.importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'pytorch_grad_cam' else real(name, *a))
    messages = []
    text = build_html_report([report_dir], HtmlReportOptions(failures=2), messages.append)
    assert 'Grad-CAM overlays not available: the grad-cam package is not installed' in text
    images = _decoded_images(Page(text))
    assert len(images) == 5 + 4 and all(i.width == failures_section.PANEL for i in images[5:])
    assert not any('Grad-CAM' in m for m in messages)
    assert 'Explainability methods' in text and 'no Grad-CAM overlays in this report' in text


def test_two_runs_are_compared(tested, tmp_path):
    root, report_dir, _, _ = tested
    copy = tmp_path / 'again' / report_dir.name
    shutil.copytree(report_dir, copy)
    text = build_html_report([report_dir, copy], HtmlReportOptions(
        labels=['first', 'second'], cam=False, resamples=50, failures=1), lambda m: None)
    page = Page(text)
    assert [r[0] for r in page.rows if r and r[0] in ('first', 'second')][:2] == \
        ['first', 'second']
    assert 'first (A) vs second (B)' in text
    accuracy = next(r for r in page.rows if r and r[0] == 'Accuracy')
    # Identical predictions: no discordant image, A - B = 0, McNemar p = 1.
    assert accuracy[3] == '+0.0000' and accuracy[5] == '1.0000'
    assert 'McNemar exact (b = 0, c = 0)' in accuracy[6]


def test_kfold_run_pools_the_folds(tmp_path):
    classes = ['a', 'b', 'c']
    folds, accuracies = ['fold1', 'fold2'], []
    for k, fold in enumerate(folds):
        rng = np.random.default_rng(k)
        labels = np.arange(30) % 3
        logits = rng.normal(size=(30, 3))
        logits[np.arange(30), labels] += 1.5
        scores = np.round(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 6)
        evaluation = evaluate_predictions(labels, scores, classes=classes)
        last = LastEvaluation(evaluation, labels, scores.argmax(1), scores,
                              [f'{fold}/{i}.png' for i in range(30)])
        write_test_report(last, tmp_path / 'kf' / fold / 'test' / '20260101_000000',
                          {f'medical/{m}': v for m, v in evaluation.summary.items()},
                          extra=dict(config='cfg.py', checkpoint='missing.pth'))
        accuracies.append(evaluation.summary['accuracy'])
    mean = {'medical/accuracy': float(np.mean(accuracies))}
    std = {'medical/accuracy': float(np.std(accuracies, ddof=1))}
    (tmp_path / 'kf' / 'kfold.json').write_text(json.dumps(dict(
        config='cfg.py', folds=folds, mean=mean, std=std, metrics={})))
    text = build_html_report([tmp_path / 'kf'], HtmlReportOptions(cam=False), lambda m: None)
    page = Page(text)
    row = next(r for r in page.rows if r and r[0] == 'accuracy')
    assert row[1] == f'{mean["medical/accuracy"]:.4f} ± {std["medical/accuracy"]:.4f}'
    assert row[2:] == [f'{a:.4f}' for a in accuracies]
    assert 'pooled over the folds' in text
    support = [int(r[-1]) for r in page.rows if r and r[0] in classes and len(r) == 8]
    assert sum(support) == 60  # the pooled per-class table counts every test image once
    assert len(_decoded_images(page)) >= 4


def test_not_a_run_and_existing_out(tested, tmp_path):
    root, report_dir, _, _ = tested
    (tmp_path / 'empty').mkdir()
    out = tmp_path / 'r.html'
    result = call_tool(tmp_path, 'analysis_tools/report.py', 'empty', '--out', str(out))
    assert result.returncode == 1 and not out.exists()
    assert result.stderr.startswith('error: empty holds no test results')
    assert len(result.stderr.strip().splitlines()) == 1 and 'Traceback' not in result.stderr
    out.write_text('mine')
    result = call_tool(root, 'analysis_tools/report.py', str(report_dir), '--out', str(out),
                       '--no-cam', '--failures', '0')
    assert result.returncode == 1 and 'exists; pass --force' in result.stderr
    assert out.read_text() == 'mine'
    ok(call_tool(root, 'analysis_tools/report.py', str(report_dir), '--out', str(out),
                 '--no-cam', '--failures', '0', '--force'))
    assert out.read_text().startswith('<!DOCTYPE html>')
    with pytest.raises(SystemExit) as exit_info:
        call_tool(root, 'analysis_tools/report.py', str(report_dir), '--out', 'x.txt')
    assert exit_info.value.code == 2


def test_html_flag_needs_the_test_report(tmp_path):
    from hifuse_mm.cli.test import add_html_flag, test_main
    from hifuse_mm.cli.arguments import test_parser
    assert add_html_flag(test_parser()).parse_args(['c.py', 'k.pth', '--html']).html
    with pytest.raises(SystemExit) as exit_info:
        test_main(['c.py', 'k.pth', '--html', '--no-report'])
    assert str(exit_info.value.code) == 'error: --html builds on the test report; drop ' \
        '--no-report'
