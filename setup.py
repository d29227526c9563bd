"""Packaging for hifuse-mm (HiFuse/HEMF medical image classifiers for MMPretrain)."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def read_version() -> str:
    """Read ``__version__`` without importing the package (and torch with it)."""
    namespace: dict = {}
    exec((HERE / 'hifuse_mm' / 'version.py').read_text(), namespace)
    return namespace['__version__']


# The OpenMMLab framework (mmengine, mmcv, mmpretrain) is deliberately NOT in install_requires.
# Two distributions provide each of its import packages: upstream OpenMMLab's (mmengine 0.10.7,
# mmcv-lite or the compiled mmcv 2.2, mmpretrain 1.2.0; no longer maintained) and the
# maintained OneDL forks (onedl-mmengine, onedl-mmcv, onedl-mmpretrain). Naming one of them here
# would make pip install it on top of the other, and the wheels overwrite each other's files.
# Pick one stack with an extra (docs/get_started.md):
#   pip install hifuse-mm[openmmlab]   -> upstream mmengine + mmcv-lite + mmpretrain
#                                         (what `make venv` installs)
#   pip install hifuse-mm[onedl]       -> the OneDL forks (`make venv-onedl`)
#   pip install hifuse-mm              -> keep the stack you already have (e.g. a compiled mmcv)
# `import hifuse_mm` checks the versions it finds (hifuse_mm/utils/stack.py, same ranges as
# below) and names these extras when one is missing or out of range.
OPENMMLAB = ['mmengine>=0.10.7,<0.11', 'mmcv-lite>=2.0.0,<2.4', 'mmpretrain>=1.2.0,<1.3']
# onedl-mmcv is published as a source distribution; pip builds it without torch in its isolated
# build environment, which gives the pure-Python package (no compiled mmcv.ops, like mmcv-lite).
ONEDL = ['onedl-mmengine>=0.10.12,<0.11', 'onedl-mmcv>=2.3.6,<2.4', 'onedl-mmpretrain>=1.3.6,<1.4']

setup(
    name='hifuse-mm',
    version=read_version(),
    description='HiFuse and HEMF medical image classifiers as an MMPretrain plugin',
    long_description=(HERE / 'README.md').read_text()
    if (HERE / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'tools', 'configs')),
    # The package itself needs 3.9 (pathlib.Path.is_relative_to); the test suite needs 3.11
    # (contextlib.chdir), and 3.11 is the only Python the project is tested on.
    python_requires='>=3.11',
    install_requires=[
        # First releases with what the code calls: torch.get_autocast_dtype and
        # torch.amp.is_autocast_available 2.4, torch.serialization.safe_globals 2.5,
        # torch.serialization.get_unsafe_globals_in_checkpoint (the safe checkpoint loader) 2.6.
        'torch>=2.6',
        'torchvision',
        'opencv-python-headless',
        'scikit-learn',
        'matplotlib>=3.5',  # matplotlib.colormaps
        # Our training checkpoints pickle numpy 2 types (numpy._core), which numpy 1 can't read.
        'numpy>=2',
    ],
    extras_require={
        'openmmlab': OPENMMLAB,
        'onedl': ONEDL,
        'tests': ['pytest', 'import-linter>=2.17'],  # .importlinter; tested with 2.17
        'cam': ['grad-cam>=1.5'],  # 1.5 dropped use_cuda; tested with 1.5.7
        'audit': ['imagehash>=4.3'],  # split audit; tested with 4.3.2
        # ONNX export and onnxruntime inference (hifuse_mm.deploy, tools/deployment/), imported
        # only when used; torch.onnx.export(dynamo=True) needs onnxscript. Tested with onnx
        # 1.23.2, onnxscript 0.7.2 (onnx-ir 1.1.0), onnxruntime 1.32.0.
        'deploy': ['onnx>=1.23', 'onnxscript>=0.7', 'onnxruntime>=1.32'],
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'Programming Language :: Python :: 3.11',
        'Topic :: Scientific/Engineering :: Medical Science Apps.',
        'Topic :: Scientific/Engineering :: Image Recognition',
    ],
    zip_safe=False,
)
