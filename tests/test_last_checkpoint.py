"""``last_checkpoint`` relative to the work dir (hifuse_mm.engine.last_checkpoint): a moved or
copied work dir resumes from its own checkpoints; an empty or dangling pointer falls back to
the newest checkpoint with a message; the best checkpoint of a moved run is replaced in its new
place."""
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from mmengine.logging import MessageHub, MMLogger

from hifuse_mm import cli
from hifuse_mm.engine import CrashSafeCheckpointHook, load_checkpoint_file
from hifuse_mm.engine.last_checkpoint import (NothingToResumeError, pointer_text,
                                              resolve_resume_checkpoint)
from helpers import inside
from tiny_config import make_data, write_config




def _train(root: Path, work: str, *args: str) -> None:
    with inside(root):
        cli.train_main(['tiny.py', '--work-dir', work, *args])


def _files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _latest_log(work: Path) -> str:
    return sorted(work.glob('*/*.log'))[-1].read_text()


@pytest.fixture(scope='module')
def trained(tmp_path_factory) -> Path:
    """A finished one-epoch run (``<root>/first``, config ``<root>/tiny.py``); the tests work
    on copies of it."""
    root = tmp_path_factory.mktemp('pointer')
    write_config(root / 'tiny.py', make_data(root))
    _train(root, 'first')
    return root / 'first'


def test_moved_or_copied_work_dir_resumes_from_its_own_checkpoints(trained):
    root = trained.parent
    assert (trained / 'last_checkpoint').read_text() == 'epoch_1.pth'

    # A copy resumes from its own epoch 1 and leaves the original as it was.
    copy = root / 'copy'
    shutil.copytree(trained, copy)
    original = _files(trained)
    _train(root, 'copy', '--resume', '--cfg-options', 'train_cfg.max_epochs=2')
    assert f'Auto resumed from the latest checkpoint {copy / "epoch_1.pth"}' in \
        _latest_log(copy)
    assert load_checkpoint_file(copy / 'epoch_2.pth')['meta']['epoch'] == 2
    assert (copy / 'last_checkpoint').read_text() == 'epoch_2.pth'
    assert _files(trained) == original

    # A work dir moved elsewhere resumes in its new place.
    shutil.copytree(trained, root / 'to_move')
    moved = root / 'elsewhere' / 'moved'
    moved.parent.mkdir()
    shutil.move(root / 'to_move', moved)
    _train(root, str(moved), '--resume', '--cfg-options', 'train_cfg.max_epochs=2')
    assert f'Auto resumed from the latest checkpoint {moved / "epoch_1.pth"}' in \
        _latest_log(moved)
    assert load_checkpoint_file(moved / 'epoch_2.pth')['meta']['epoch'] == 2
    assert len(list(moved.glob('best_*.pth'))) == 1


def test_empty_or_dangling_pointer_falls_back_to_the_newest_checkpoint(trained):
    root = trained.parent
    work = root / 'pointers'
    shutil.copytree(trained, work)
    pointer = work / 'last_checkpoint'
    for text, problem in [('', 'is empty'),
                          ('epoch_7.pth', 'names epoch_7.pth, which does not exist')]:
        pointer.write_text(text)
        _train(root, 'pointers', '--resume')  # at its last epoch: resumes, nothing to train
        log = _latest_log(work)
        assert (f'{pointer} {problem}; resuming from the newest checkpoint in the work dir, '
                f'{work / "epoch_1.pth"}') in log
        assert f'Auto resumed from the latest checkpoint {work / "epoch_1.pth"}' in log

    # Nothing to fall back to: a one-line error naming the pointer and what to do.
    (work / 'epoch_1.pth').unlink()
    with inside(root), pytest.raises(SystemExit) as stopped:
        cli.train_main(['tiny.py', '--work-dir', 'pointers', '--resume'])
    assert str(stopped.value.code) == (
        f'error: --resume: {pointer} names epoch_7.pth, which does not exist, and {work} holds '
        'no epoch_*.pth or iter_*.pth checkpoint to resume instead. Give the checkpoint to '
        f'resume (--resume CHECKPOINT), or delete {pointer} to start the training afresh.')


def test_pointer_resolution(tmp_path):
    work, elsewhere = tmp_path / 'work', tmp_path / 'elsewhere'
    work.mkdir()
    elsewhere.mkdir()
    messages = []

    def resolve(text=None, by_epoch=True):
        if text is not None:
            (work / 'last_checkpoint').write_text(text)
        messages.clear()
        return resolve_resume_checkpoint(work, by_epoch=by_epoch, log=messages.append)

    assert resolve() is None and not messages  # nothing at all: mmengine starts afresh
    for name in ('epoch_9.pth', 'epoch_10.pth', 'iter_30.pth', 'best_f1_epoch_12.pth',
                 '.epoch_11.pth.tmp-1-ab'):
        (work / name).write_bytes(b'x')
    (elsewhere / 'epoch_10.pth').write_bytes(b'y')
    (elsewhere / 'epoch_3.pth').write_bytes(b'z')

    assert pointer_text(work / 'epoch_9.pth', work) == 'epoch_9.pth'
    assert pointer_text(work / 'sub' / 'epoch_9.pth', work) == 'sub/epoch_9.pth'
    assert pointer_text(elsewhere / 'epoch_3.pth', work) == str(elsewhere / 'epoch_3.pth')
    assert pointer_text('s3://bucket/run/epoch_3.pth', work) == 's3://bucket/run/epoch_3.pth'

    assert resolve('epoch_9.pth\n') == str(work / 'epoch_9.pth') and not messages
    # Absolute, as older runs wrote it: followed when it is the work dir's ...
    assert resolve(str(work / 'epoch_9.pth')) == str(work / 'epoch_9.pth') and not messages
    # ... taken to mean the work dir's file of that name when the work dir was moved/copied ...
    assert resolve(str(elsewhere / 'epoch_10.pth')) == str(work / 'epoch_10.pth')
    assert 'the work dir was moved or copied' in messages[0]
    # ... and followed elsewhere when the work dir has no such file (checkpoints kept apart).
    assert resolve(str(elsewhere / 'epoch_3.pth')) == str(elsewhere / 'epoch_3.pth')
    assert resolve('s3://bucket/run/epoch_3.pth') == 's3://bucket/run/epoch_3.pth'
    # Empty or dangling: the newest of the run's kind (by number, not by name).
    assert resolve('  \n') == str(work / 'epoch_10.pth') and 'is empty' in messages[0]
    assert resolve(str(tmp_path / 'gone' / 'epoch_4.pth')) == str(work / 'epoch_10.pth')
    assert 'which does not exist' in messages[0]
    assert resolve('', by_epoch=False) == str(work / 'iter_30.pth')
    (work / 'last_checkpoint').unlink()
    assert resolve() == str(work / 'epoch_10.pth') and 'does not exist' in messages[0]
    for path in work.glob('*_*.pth'):
        path.unlink()
    with pytest.raises(NothingToResumeError, match='is empty, and .* holds no epoch_'):
        resolve('')


def test_best_checkpoint_recorded_in_the_old_place_is_replaced_in_the_new(tmp_path):
    """The message hub of a moved run's checkpoint names its best checkpoint at the old place;
    the hook takes it to be the file of that name beside the checkpoints, so a better score
    replaces that file (and never deletes one elsewhere)."""
    old, new = tmp_path / 'old', tmp_path / 'new'
    old.mkdir()
    new.mkdir()
    for folder in (old, new):
        (folder / 'best_acc_epoch_1.pth').write_bytes(b'best')
    hub = MessageHub.get_instance('relocated-best')
    hub.update_info('best_ckpt', str(old / 'best_acc_epoch_1.pth'))
    hub.update_info('best_score', 0.5)
    saved = []
    runner = SimpleNamespace(
        work_dir=str(new), logger=MMLogger.get_current_instance(), message_hub=hub,
        epoch=2, iter=4,
        save_checkpoint=lambda out_dir, filename, *a, **k: saved.append(filename) or
        (Path(out_dir) / filename).write_bytes(b'newer'))
    hook = CrashSafeCheckpointHook(interval=1, save_best='acc', rule='greater')
    hook.before_train(runner)
    assert hook.best_ckpt_path == str(new / 'best_acc_epoch_1.pth')
    assert hub.get_info('best_ckpt') == str(new / 'best_acc_epoch_1.pth')
    hook._save_best_checkpoint(runner, dict(acc=0.9))
    assert saved == ['best_acc_epoch_2.pth']
    assert sorted(p.name for p in new.iterdir()) == ['best_acc_epoch_2.pth']
    assert (old / 'best_acc_epoch_1.pth').read_bytes() == b'best'
