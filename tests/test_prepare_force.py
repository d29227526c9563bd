"""``prepare_*.py --force`` swaps the new split in whole (issue 14, item 13), and file names
that are not UTF-8 are refused before anything is checked or written (item 8).

An interrupted re-run (here: the disk "fills up" on the third file written) leaves the old
lists and ``split.json`` exactly as they were, loadable and passing ``--check``; a run stopped
between the two renames of the swap is repaired by the next run.
"""
import builtins
import errno
import io
import os
import shutil
from pathlib import Path

import pytest

import hifuse_mm  # noqa: F401
from hifuse_mm.datasets import ISIC2018, ISIC2018_CLASSES
from hifuse_mm.datasets.prepare import converter_main, covid19ct, isic2018, kvasir, write
from replicas import make_covid19ct, make_isic2018, make_kvasir

PER_CLASS = {name: 10 for name in ISIC2018_CLASSES}
META_FILES = ['meta/classes.txt', 'meta/split.json', 'meta/train.txt', 'meta/val.txt',
              'meta/test.txt']


def convert(module, *args, capsys=None):
    status = converter_main(module, [str(a) for a in args])
    out, err = capsys.readouterr() if capsys is not None else ('', '')
    return status, out, err


def snapshot(out: Path) -> dict:
    return {name: (out / name).read_bytes() for name in META_FILES}


@pytest.fixture
def isic(tmp_path) -> Path:
    src = tmp_path / 'ISIC2018'
    make_isic2018(src, PER_CLASS)
    return src


def fail_on_write(monkeypatch, folder: Path, after: int) -> list:
    """Make every open-for-writing below ``folder`` after the first ``after`` fail (disk full)."""
    real_open = builtins.open
    written = []

    def failing_open(file, mode='r', *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and any(c in mode for c in 'wax+') \
                and str(folder) in os.fspath(file):
            if len(written) >= after:
                raise OSError(errno.ENOSPC, 'No space left on device', os.fspath(file))
            written.append(os.fspath(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, 'open', failing_open)
    monkeypatch.setattr(io, 'open', failing_open)
    return written


def test_an_interrupted_force_rerun_leaves_the_old_split_intact(isic, tmp_path, monkeypatch,
                                                                capsys):
    out = tmp_path / 'out'
    assert convert(isic2018, isic, out, '--protocol', 'hemf', capsys=capsys)[0] == 0
    before = snapshot(out)
    written = fail_on_write(monkeypatch, out, after=2)
    try:
        status, _, err = convert(isic2018, isic, out, '--protocol', 'hemf', '--seed', '1',
                                 '--force', capsys=capsys)
    except OSError as escaped:  # (the converters before issue 14)
        status, err = 'raised', str(escaped)
    monkeypatch.undo()
    assert len(written) == 2, (status, err)  # it did fail midway
    assert snapshot(out) == before
    assert status == 1 and 'No space left on device' in err and 'Traceback' not in err
    assert 'was left as it was' in err
    assert sorted(p.name for p in out.iterdir()) == ['meta', 'source']  # no leftovers
    assert len(ISIC2018(data_root=str(out), ann_file='meta/train.txt')) == 42
    assert convert(isic2018, '--check', out, capsys=capsys)[0] == 0
    # Re-run after the "disk" is fixed: the same result as a fresh run.
    assert convert(isic2018, isic, out, '--protocol', 'hemf', '--seed', '1', '--force',
                   capsys=capsys)[0] == 0
    fresh = tmp_path / 'fresh'
    assert convert(isic2018, isic, fresh, '--protocol', 'hemf', '--seed', '1',
                   capsys=capsys)[0] == 0
    assert snapshot(out) == snapshot(fresh) != before


@pytest.mark.parametrize('exchange', [True, False], ids=['renameat2', 'two-renames'])
def test_force_keeps_other_files_in_meta(tmp_path, capsys, monkeypatch, exchange):
    if not exchange:  # where renameat2(RENAME_EXCHANGE) is missing: two renames
        monkeypatch.setattr(write, '_exchange', lambda first, second: False, raising=False)
    src = tmp_path / 'kvasir-src'
    make_kvasir(src, per_class=8)
    out = tmp_path / 'out'
    assert convert(kvasir, src, out, '--val-fraction', '0.25', capsys=capsys)[0] == 0
    (out / 'meta' / 'my-notes.md').write_text('mine')
    (out / 'meta' / 'fold1' / 'extra.csv').write_text('also mine')
    assert convert(kvasir, src, out, '--val-fraction', '0.5', '--force', capsys=capsys)[0] == 0
    assert (out / 'meta' / 'my-notes.md').read_text() == 'mine'
    assert (out / 'meta' / 'fold1' / 'extra.csv').read_text() == 'also mine'
    assert convert(kvasir, '--check', out, capsys=capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ['meta', 'source']


def test_a_run_stopped_between_the_two_renames_is_repaired(isic, tmp_path, capsys):
    out = tmp_path / 'out'
    assert convert(isic2018, isic, out, '--protocol', 'hemf', capsys=capsys)[0] == 0
    before = snapshot(out)
    # The state two plain renames leave when killed in between: the old split moved aside,
    # the new one complete beside it, no meta/.
    (out / 'meta').rename(out / '.prepare-meta.old')
    shutil.copytree(out / '.prepare-meta.old', out / '.prepare-meta.new')
    (out / '.prepare-meta.new' / 'train.txt').write_text('half written')
    with pytest.raises(FileNotFoundError, match=r'interrupted .*\.prepare-meta\.old.*Run the '
                       'converter again'):
        ISIC2018(data_root=str(out), ann_file='meta/train.txt')
    # The next run puts the old split back first, so without --force it is not overwritten.
    status, stdout, err = convert(isic2018, isic, out, '--protocol', 'hifuse', capsys=capsys)
    assert status == 1 and 'already holds a prepared split' in err
    assert 'is back in' in stdout
    assert snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == ['meta', 'source']


# -- item 8: file names that are not UTF-8 ------------------------------------------------------
def test_non_utf8_file_names_are_refused_before_anything_is_done(tmp_path, capsys):
    src = tmp_path / 'kvasir-src'
    make_kvasir(src, per_class=4)
    polyps = os.fsencode(src / 'polyps')
    shutil.copy(src / 'polyps' / 'polyps_000.jpg', os.fsdecode(polyps + b'/caf\xe9.jpg'))
    out = tmp_path / 'out'
    status, stdout, err = convert(kvasir, src, out, '--val-fraction', '0.5', capsys=capsys)
    assert status == 1 and 'Traceback' not in err
    assert '1 file name(s) are not valid UTF-8' in err and 'polyps/caf\\xe9.jpg' in err
    assert 'Rename them' in err and 'Nothing was written' in err
    assert 'Checking' not in stdout  # refused before the (slow) image check
    assert not out.exists()


def test_source_lists_that_are_not_utf8_are_clean_errors(tmp_path, capsys):
    covid = tmp_path / 'COVID-CT'
    make_covid19ct(covid, dict(COVID=dict(train=2, val=1, test=1),
                               NonCOVID=dict(train=2, val=1, test=1)))
    listing = covid / covid19ct.split_list_path('COVID', 'train')
    listing.write_bytes(listing.read_bytes() + b'caf\xe9.png\n')
    status, _, err = convert(covid19ct, covid, tmp_path / 'out', '--protocol', 'official',
                             capsys=capsys)
    assert status == 1 and f'{listing} is not UTF-8 text' in err
    isic = tmp_path / 'ISIC2018'
    make_isic2018(isic, PER_CLASS)
    csv = isic / isic2018.GROUND_TRUTH
    csv.write_bytes(csv.read_bytes() + b'ISIC_\xff,1.0,0.0,0.0,0.0,0.0,0.0,0.0\n')
    status, _, err = convert(isic2018, isic, tmp_path / 'out2', '--protocol', 'hemf',
                             capsys=capsys)
    assert status == 1 and f'{csv} is not UTF-8 text' in err


# -- item 5: the converters keep the lists inside SRC too ------------------------------------
def test_images_outside_src_are_refused_unless_allowed(tmp_path, capsys):
    covid = tmp_path / 'COVID-CT'
    make_covid19ct(covid, dict(COVID=dict(train=2, val=1, test=1),
                               NonCOVID=dict(train=2, val=1, test=1)))
    shutil.copy(next((covid / 'CT_COVID').iterdir()), tmp_path / 'outside.png')
    (tmp_path / 'outside.png').write_bytes((tmp_path / 'outside.png').read_bytes() + b'\0')
    listing = covid / covid19ct.split_list_path('COVID', 'train')
    listing.write_text(listing.read_text() + '../../outside.png\n')
    out = tmp_path / 'out'
    status, stdout, err = convert(covid19ct, covid, out, '--protocol', 'official', capsys=capsys)
    assert status == 1 and "1 listed image(s) lie outside" in err
    assert "CT_COVID/../../outside.png: a path with '..'" in err
    assert '--allow-outside-root' in err and 'Nothing was written' in err
    assert 'Checking' not in stdout and not out.exists()
    status, _, err = convert(covid19ct, covid, out, '--protocol', 'official',
                             '--allow-outside-root', capsys=capsys)
    assert status == 0, err

    src = tmp_path / 'kvasir-src'
    make_kvasir(src, per_class=4)
    shutil.move(src / 'polyps' / 'polyps_003.jpg', tmp_path / 'polyps_003.jpg')
    (src / 'polyps' / 'polyps_003.jpg').symlink_to(tmp_path / 'polyps_003.jpg')
    status, _, err = convert(kvasir, src, tmp_path / 'kv', '--val-fraction', '0.5',
                             capsys=capsys)
    assert status == 1 and 'polyps/polyps_003.jpg: a symlink that leads outside SRC' in err
