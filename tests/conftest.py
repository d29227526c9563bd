"""Session-wide test settings.

Training runs sign their checkpoints with a per-account key (hifuse_mm.engine.checkpoint_trust);
the tests use a key in a temporary folder instead of the user's ~/.config/hifuse_mm. Set here,
at collection time, so the tools' subprocesses inherit it too.
"""
import atexit
import os
import shutil
import tempfile

if 'HIFUSE_MM_TRUST_KEY' not in os.environ:
    _KEY_DIR = tempfile.mkdtemp(prefix='hifuse-test-key-')
    os.environ['HIFUSE_MM_TRUST_KEY'] = os.path.join(_KEY_DIR, 'checkpoint-signing.key')
    atexit.register(shutil.rmtree, _KEY_DIR, True)
