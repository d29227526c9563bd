"""Packaging for hifuse-mm (HiFuse/HEMF medical image classifiers for MMPretrain)."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def read_version() -> str:
    """Read ``__version__`` without importing the package (and torch with it)."""
    namespace: dict = {}
    exec((HERE / 'hifuse_mm' / 'version.py').read_text(), namespace)
    return namespace['__version__']


# MMCV is deliberately NOT in install_requires. Both 'mmcv-lite' (pure Python, all MMPretrain's
# classifiers need) and the full, compiled 'mmcv' install the same import package `mmcv`; listing
# either one by name would make pip install it on top of the other and the two wheels would
# overwrite each other's files. MMPretrain itself follows the same rule (mmcv is only in its
# `mim` extra) and checks `2.0.0 <= mmcv < 2.4.0` at import time. Pick one:
#   pip install hifuse-mm[lite]        -> mmcv-lite (recommended, what `make venv` installs)
#   pip install hifuse-mm[full]        -> full mmcv (needs a CUDA/C++ build toolchain)
#   or keep the mmcv you already have.
MMCV_SPEC = '>=2.0.0,<2.4'

setup(
    name='hifuse-mm',
    version=read_version(),
    description='HiFuse and HEMF medical image classifiers as an MMPretrain plugin',
    long_description=(HERE / 'README.md').read_text()
    if (HERE / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'tools', 'configs')),
    python_requires='>=3.9',
    install_requires=[
        'torch>=2.0',
        'torchvision',
        'mmengine>=0.10.7,<1.0',
        'mmpretrain>=1.2.0,<1.3',
        'opencv-python-headless',
        'scikit-learn',
        'matplotlib',
        'numpy>=2',
    ],
    extras_require={
        'lite': [f'mmcv-lite{MMCV_SPEC}'],
        'full': [f'mmcv{MMCV_SPEC}'],
        'tests': ['pytest'],
        'cam': ['grad-cam>=1.5'],  # 1.5 dropped use_cuda; tested with 1.5.7
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Medical Science Apps.',
        'Topic :: Scientific/Engineering :: Image Recognition',
    ],
    zip_safe=False,
)
