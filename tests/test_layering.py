"""The package layering of .importlinter (utils < models < converters < datasets | evaluation
< engine < deploy < apis < analysis < cli, no import cycles) holds for the code in this checkout."""
import subprocess
import sys

from helpers import REPO, repo_env

LINT = ('import sys\n'
        'from importlinter.cli import lint_imports\n'
        'sys.exit(lint_imports(config_filename=sys.argv[1], no_cache=True, no_logo=True))\n')


def test_import_contracts_are_kept():
    # A subprocess in the repository, so that the package analysed is this checkout's.
    proc = subprocess.run([sys.executable, '-c', LINT, str(REPO / '.importlinter')], cwd=REPO,
                          env=repo_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout
    assert 'Contracts: 3 kept, 0 broken.' in proc.stdout, proc.stdout
