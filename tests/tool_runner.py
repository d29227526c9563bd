"""Run the repository's tools for their tests: as a subprocess (exactly as a user does) or, for
the quick error-path checks, in-process through the tool's ``main(argv)`` (no interpreter start)."""
import contextlib
import importlib.util
import io
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

from helpers import REPO, TOOLS, repo_env  # noqa: F401  (REPO, TOOLS: re-exported)

TIMEOUT = 900


def run_tool(cwd: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``tools/<script>`` with this interpreter in ``cwd``; stdout and stderr kept apart."""
    return subprocess.run([sys.executable, str(TOOLS / script), *map(str, args)], cwd=cwd,
                          env=repo_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=TIMEOUT)


class ToolResult(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def call_tool(cwd: Path, script: str, *args: str, exits: bool = False) -> ToolResult:
    """Call ``main(argv)`` of ``tools/<script>`` in this process, in ``cwd``. With ``exits``, a
    ``SystemExit`` (argparse's usage errors) becomes the result, with its code and what the tool
    wrote, as the command line would see it; otherwise it propagates."""
    spec = importlib.util.spec_from_file_location(f'tool_{Path(script).stem}', TOOLS / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            code = module.main([str(a) for a in args])
        except SystemExit as exit_info:
            if not exits:
                raise
            code = exit_info.code
            if isinstance(code, str):  # what the interpreter does with sys.exit('message')
                print(code, file=sys.stderr)
                code = 1
            code = 0 if code is None else code
    return ToolResult(code, out.getvalue(), err.getvalue())


def ok(proc):
    """Assert the tool succeeded; show its output otherwise."""
    assert proc.returncode == 0, f'{getattr(proc, "args", "tool")} failed ' \
        f'({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}'
    return proc
