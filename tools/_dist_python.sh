# Sourced by dist_train.sh / dist_test.sh: pick the Python to launch with.
# $PYTHON if set; else the active virtualenv/conda env's python; else the repo's .venv; else python3.
_repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
    if [ -n "${VIRTUAL_ENV:-}" ] || [ -n "${CONDA_PREFIX:-}" ]; then
        PYTHON=python
    elif [ -x "$_repo_root/.venv/bin/python" ]; then
        PYTHON="$_repo_root/.venv/bin/python"
    else
        PYTHON=python3
    fi
fi
export PYTHONPATH="$_repo_root${PYTHONPATH:+:$PYTHONPATH}"
