"""Every ``tools/`` command the docs show is one that works.

The commands are discovered from README.md, SECURITY.md and docs/*.md (every ``tools/...py`` and
``tools/...sh`` they name, in commands or in prose), so the test follows the docs when tools are
added, moved or renamed. Each Python tool must exist and ``python tools/X.py --help`` must exit
0; each shell script must exist, parse, print its usage when given no arguments, and launch only
Python tools that exist (those are checked with ``--help`` too).

For speed, one subprocess runs every tool's ``--help`` in turn (``runpy``, as ``python X.py``
would, each with its own ``sys.argv`` and ``sys.path[0]``), so the framework is imported once; a
tool that fails there is rerun alone in a fresh ``python tools/X.py --help`` before it counts as
failed.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
from helpers import REPO

DOCS = [REPO / 'README.md', REPO / 'SECURITY.md', *sorted((REPO / 'docs').glob('*.md'))]
# `tools/...py` / `tools/...sh`, not preceded by a path character (so `analysis_tools/x.py`
# inside `tools/analysis_tools/x.py` is not matched twice, and `mmpretrain/tools/x.py` not at all).
TOOL_PATTERN = re.compile(r'(?<![\w/.$-])tools/[\w-][\w/.-]*?\.(?:py|sh)\b')
# What a shell script launches: "$(dirname ...)/train.py" and the like.
LAUNCHED_PATTERN = re.compile(r'/([\w-]+\.py)"')
MARKER = '@@HELP-RESULTS@@'

DRIVER = r'''
import contextlib, io, json, os, runpy, sys

results = {}
for path in sys.argv[1:]:
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [path, '--help']
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            runpy.run_path(path, run_name='__main__')
        code = 'returned without exiting'
    except SystemExit as exit_info:
        code = 0 if exit_info.code is None else exit_info.code
    except BaseException as error:  # noqa: B902 - report anything, keep going
        code = f'{type(error).__name__}: {error}'
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    text = out.getvalue()
    results[path] = {'code': code if isinstance(code, int) else str(code),
                     'output': text if len(text) < 6000 else text[:2000] + ' ... ' + text[-4000:]}
print(MARKER + json.dumps(results))
'''.replace('MARKER', repr(MARKER))


def _mentions() -> Dict[str, List[str]]:
    """tool path -> ['README.md:12', ...] where the docs name it."""
    found: Dict[str, List[str]] = {}
    for doc in DOCS:
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            for match in TOOL_PATTERN.finditer(line):
                found.setdefault(match.group(), []).append(
                    f'{doc.relative_to(REPO)}:{number}')
    return found


MENTIONS = _mentions()
SHELL_TOOLS = sorted(tool for tool in MENTIONS if tool.endswith('.sh'))


def _launched_by(script: str) -> List[str]:
    path = REPO / script
    if not path.is_file():
        return []
    folder = Path(script).parent
    return [str(folder / name) for name in LAUNCHED_PATTERN.findall(path.read_text())]


PYTHON_TOOLS = sorted({tool for tool in MENTIONS if tool.endswith('.py')}
                      | {tool for script in SHELL_TOOLS for tool in _launched_by(script)})


def _where(tool: str) -> str:
    return ', '.join(MENTIONS.get(tool, ['a script the docs name']))


@pytest.fixture(scope='module')
def help_results() -> Dict[str, dict]:
    """``--help`` of every existing Python tool, all in one subprocess."""
    tools = [tool for tool in PYTHON_TOOLS if (REPO / tool).is_file()]
    proc = subprocess.run([sys.executable, '-c', DRIVER, *tools], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARKER)]
    assert lines, f'the --help driver crashed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return json.loads(lines[-1][len(MARKER):])


def test_docs_name_the_main_tools():
    """The extraction works: the commands every reader needs are found."""
    for tool in ('tools/train.py', 'tools/test.py', 'tools/dist_train.sh'):
        assert tool in MENTIONS, tool


@pytest.mark.parametrize('tool', PYTHON_TOOLS)
def test_python_tool_help_exits_0(tool, help_results):
    assert (REPO / tool).is_file(), f'{_where(tool)} names {tool}, which does not exist'
    result = help_results[tool]
    if result['code'] != 0:
        # Confirm in a fresh process, exactly as the docs run it.
        proc = subprocess.run([sys.executable, tool, '--help'], cwd=REPO, capture_output=True,
                              text=True, timeout=300)
        result = {'code': proc.returncode, 'output': proc.stdout + proc.stderr}
    assert result['code'] == 0, (f'python {tool} --help (named in {_where(tool)}) exited '
                                 f'{result["code"]}:\n{result["output"]}')
    assert 'usage:' in result['output'].lower()


@pytest.mark.parametrize('script', SHELL_TOOLS)
def test_shell_tool_parses_and_prints_usage(script):
    path = REPO / script
    assert path.is_file(), f'{_where(script)} names {script}, which does not exist'
    syntax = subprocess.run(['bash', '-n', str(path)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    # Without arguments a launcher prints its usage and exits before starting anything.
    proc = subprocess.run(['bash', str(path)], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode != 0 and 'usage:' in (proc.stdout + proc.stderr).lower(), (
        f'bash {script} without arguments: exit {proc.returncode}\n{proc.stdout}{proc.stderr}')
    for tool in _launched_by(script):
        assert (REPO / tool).is_file(), f'{script} launches {tool}, which does not exist'


LINK_PATTERN = re.compile(r'\]\(([^)\s]+)\)')


def _anchors(doc: Path) -> set:
    """GitHub's heading anchors of a Markdown file (headings inside code blocks skipped)."""
    anchors, fenced = set(), False
    for line in doc.read_text().splitlines():
        if line.startswith('```'):
            fenced = not fenced
        elif not fenced and line.startswith('#'):
            title = line.lstrip('#').strip().lower()
            anchors.add(re.sub(r'[^\w\- ]', '', title).replace(' ', '-'))
    return anchors


@pytest.mark.parametrize('doc', DOCS, ids=lambda doc: str(doc.relative_to(REPO)))
def test_relative_links_resolve(doc):
    """Links to other pages, their sections and images work from wherever the page lives."""
    broken = []
    for target in LINK_PATTERN.findall(doc.read_text()):
        if re.match(r'[a-z]+://', target):
            continue
        path, _, anchor = target.partition('#')
        file = (doc.parent / path).resolve() if path else doc
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == '.md' and anchor not in _anchors(file):
            broken.append(target)
    assert not broken, f'{doc.relative_to(REPO)}: broken links {broken}'
