"""What the datasets check in a split list (issue 14, items 5, 8 and 9).

* Entries stay inside the dataset folder: absolute paths, ``..`` and symlinks that lead outside
  are refused (list file and line named) unless ``allow_outside_root=True``; the converters'
  ``source`` link to the download counts as inside.
* Errors never echo a list's text (a binary, huge or secret file given as a list).
* Labels are ASCII digits; lines are UTF-8 (file names that are not UTF-8 are refused cleanly).
* Duplicate lines and images listed in two splits are refused (``allow_duplicates=True``: a
  warning); ``meta/split.json``'s checksums are verified (``verify_checksums=False`` skips it).
"""
import logging
import shutil
from pathlib import Path

import pytest
from mmengine.logging import MMLogger

import hifuse_mm  # noqa: F401
from hifuse_mm.datasets import ISIC2018, ISIC2018_CLASSES, MedicalImageDataset, make_demo_dataset
from hifuse_mm.datasets.base import SplitListError
from hifuse_mm.datasets.prepare import converter_main, isic2018
from replicas import make_isic2018

PER_CLASS = {name: 5 for name in ISIC2018_CLASSES}


@pytest.fixture
def demo(tmp_path) -> Path:
    """A small hand-made folder (the demo generator's: no split.json)."""
    return make_demo_dataset(tmp_path / 'demo', num_per_class=(2, 1, 1), image_size=16)


@pytest.fixture(scope='module')
def prepared_once(tmp_path_factory) -> Path:
    """A converter-prepared ISIC2018 folder: lists through OUT/source -> SRC, split.json."""
    root = tmp_path_factory.mktemp('isic_prepared')
    make_isic2018(root / 'ISIC2018', PER_CLASS)
    assert converter_main(isic2018, [str(root / 'ISIC2018'), str(root / 'out'),
                                     '--protocol', 'hemf']) == 0
    return root / 'out'


@pytest.fixture
def prepared(prepared_once, tmp_path) -> Path:
    """A copy of the prepared folder to change (its ``source`` link still points to SRC)."""
    out = tmp_path / 'out'
    shutil.copytree(prepared_once, out, symlinks=True)
    return out


def demo_set(root: Path, split: str = 'train', **kwargs) -> MedicalImageDataset:
    return MedicalImageDataset(data_root=str(root), ann_file=f'meta/{split}.txt', **kwargs)


def isic_set(root: Path, split: str = 'train', **kwargs) -> ISIC2018:
    return ISIC2018(data_root=str(root), ann_file=f'meta/{split}.txt', **kwargs)


def append(path: Path, *lines: str) -> int:
    """Append lines to a list; returns the number of the first one appended."""
    before = path.read_text().splitlines()
    path.write_text('\n'.join(before + list(lines)) + '\n')
    return len(before) + 1


def one_line(message: str) -> bool:
    return '\n' not in message and len(message) < 2000


# -- item 5: entries stay inside the dataset folder ---------------------------------------------
def test_absolute_and_dotdot_entries_are_refused_unless_allowed(demo, tmp_path):
    outside = tmp_path / 'elsewhere' / 'round-brown' / 'x.png'
    outside.parent.mkdir(parents=True)
    shutil.copy(next((demo / 'train' / 'round-brown').glob('*.png')), outside)
    listing = demo / 'meta' / 'train.txt'
    good = listing.read_text()
    number = append(listing, f'{outside} 0')
    with pytest.raises(SplitListError) as info:
        demo_set(demo)
    message = str(info.value)
    assert str(listing) in message and f'line {number}: an absolute path' in message
    assert 'allow_outside_root=True' in message and one_line(message)
    assert str(outside) not in message  # the entry's text is not echoed
    assert len(demo_set(demo, allow_outside_root=True)) == 9

    listing.write_text(good)
    number = append(listing, '../elsewhere/round-brown/x.png 0')
    with pytest.raises(SplitListError, match=rf"train\.txt: 1 line\(s\) .*line {number}: a path "
                       r"with '\.\.'.*allow_outside_root=True"):
        demo_set(demo)
    assert len(demo_set(demo, allow_outside_root=True)) == 9


def test_symlinks_that_leave_the_folder_are_refused(demo, tmp_path):
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    shutil.copy(next((demo / 'train' / 'round-brown').glob('*.png')), elsewhere / 'x.png')
    (demo / 'train' / 'round-brown' / 'link.png').symlink_to(elsewhere / 'x.png')
    (demo / 'linked_dir').symlink_to(elsewhere, target_is_directory=True)
    # A link that stays inside the folder is fine.
    (demo / 'train' / 'round-brown' / 'inside.png').symlink_to(
        next((demo / 'val' / 'round-brown').glob('*.png')))
    listing = demo / 'meta' / 'train.txt'
    first = append(listing, 'train/round-brown/link.png 0', 'linked_dir/x.png 0',
                   'train/round-brown/inside.png 0')
    with pytest.raises(SplitListError) as info:
        demo_set(demo)
    message = str(info.value)
    assert f'2 line(s) name an image outside {demo}' in message
    assert f'line {first}: a symlink that leads outside it' in message
    assert f'line {first + 1}: a symlink that leads outside it' in message
    assert 'inside.png' not in message and str(elsewhere) not in message
    assert len(demo_set(demo, allow_outside_root=True)) == 11


def test_the_converters_source_link_counts_as_inside(prepared, prepared_once):
    assert (prepared / 'source').is_symlink()
    dataset = isic_set(prepared)
    assert len(dataset) == 3 * 7
    assert all('/source/' in dataset.get_data_info(i)['img_path'] for i in range(len(dataset)))


# -- errors never echo a file's contents -------------------------------------------------------
def test_a_binary_huge_or_private_file_given_as_a_list_is_not_echoed(demo):
    listing = demo / 'meta' / 'train.txt'
    listing.write_bytes(b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe Tok7Zq 1\n')
    with pytest.raises(SplitListError) as info:
        demo_set(demo)
    assert f'{listing}:1: ' in str(info.value) and 'PNG' not in str(info.value)
    listing.write_bytes(b'Tok7Zq\xff\xfebytes 0\n')
    with pytest.raises(SplitListError, match=r'train\.txt:1: not UTF-8 text') as info:
        demo_set(demo)
    assert 'Tok7Zq' not in str(info.value)
    listing.write_text('aws_secret_access_key = hunter2hunter2\n')
    with pytest.raises(SplitListError, match=r'train\.txt:1: expected "relative/path label"'
                       ) as info:
        demo_set(demo)
    assert 'hunter2' not in str(info.value) and 'aws_secret' not in str(info.value)
    listing.write_bytes(b'x' * 200_000)
    with pytest.raises(SplitListError, match=r'train\.txt:1: line longer than 8192 bytes'
                       ) as info:
        demo_set(demo)
    assert 'xxxx' not in str(info.value) and one_line(str(info.value))


# -- item 9: strict labels --------------------------------------------------------------------
@pytest.mark.parametrize('label', ['３', '٣', '²', '1.0', '+1', '1_0'])
def test_labels_are_ascii_digits_only(demo, label):
    listing = demo / 'meta' / 'train.txt'
    lines = listing.read_text().splitlines()
    lines[2] = lines[2].rpartition(' ')[0] + ' ' + label
    listing.write_text('\n'.join(lines) + '\n')
    with pytest.raises(SplitListError) as info:
        demo_set(demo)
    message = str(info.value)
    assert f'{listing}:3: expected "relative/path label"' in message
    assert 'not a whole number in ASCII digits' in message and label not in message


# -- item 8: file names that are not UTF-8 ------------------------------------------------------
def test_a_list_naming_a_non_utf8_file_fails_cleanly(demo):
    name = b'train/round-brown/caf\xe9.png'
    (demo / 'train' / 'round-brown').joinpath(name.decode('utf-8', 'surrogateescape')
                                              .rpartition('/')[2]).write_bytes(b'')
    listing = demo / 'meta' / 'train.txt'
    listing.write_bytes(listing.read_bytes() + name + b' 0\n')
    with pytest.raises(SplitListError, match=r'train\.txt:9: not UTF-8 text.*not UTF-8 are not '
                       r'supported \(rename'):
        demo_set(demo)


# -- item 9: duplicates, overlaps, checksums ----------------------------------------------------
def test_duplicate_lines_are_refused_or_warned(demo):
    listing = demo / 'meta' / 'train.txt'
    lines = listing.read_text().splitlines()
    number = append(listing, lines[1], './' + lines[4])
    with pytest.raises(SplitListError) as info:
        demo_set(demo)
    message = str(info.value)
    assert f'line {number} repeats line 2' in message
    assert f'line {number + 1} repeats line 5' in message
    assert 'allow_duplicates=True' in message and 'Remove the duplicates' in message

    seen = []
    logger = MMLogger.get_current_instance()
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    try:
        assert len(demo_set(demo, allow_duplicates=True)) == 10
    finally:
        logger.removeHandler(handler)
    assert any(f'line {number} repeats line 2' in text for text in seen)


def test_an_image_in_two_splits_is_refused(demo):
    val = demo / 'meta' / 'val.txt'
    train_line = (demo / 'meta' / 'train.txt').read_text().splitlines()[0]
    number = append(val, train_line)
    with pytest.raises(SplitListError, match=rf'line 1 is also line {number} of .*val\.txt.*leaks'):
        demo_set(demo, 'train')
    with pytest.raises(SplitListError, match=rf'line {number} is also line 1 of .*train\.txt'):
        demo_set(demo, 'val')
    assert len(demo_set(demo, 'val', allow_duplicates=True)) == 5
    # Lists outside the train/val/test naming have no siblings to compare with.
    shutil.copy(val, demo / 'meta' / 'extra.txt')
    assert len(demo_set(demo, 'extra')) == 5


def test_lists_that_differ_from_split_json_are_refused(prepared):
    assert len(isic_set(prepared)) == 21
    val = prepared / 'meta' / 'val.txt'
    test = prepared / 'meta' / 'test.txt'
    # An interrupted --force of an old converter: val.txt from another split, the rest old.
    val_lines = val.read_text().splitlines()
    val.write_text('\n'.join(val_lines[1:]) + '\n')
    with pytest.raises(SplitListError) as info:
        isic_set(prepared, 'train')
    message = str(info.value)
    assert f'{val} was changed after it was prepared' in message
    assert 'meta/split.json' in message and str(test) not in message
    assert ('prepare_isic2018.py SRC ' in message and '--protocol hemf --seed 0 --force'
            in message)
    assert 'verify_checksums=False' in message and one_line(message)
    assert len(isic_set(prepared, 'val', verify_checksums=False)) == 6
    # A missing list that split.json records is reported too.
    val.write_text('\n'.join(val_lines) + '\n')
    assert len(isic_set(prepared, 'val')) == 7
    test.unlink()
    with pytest.raises(SplitListError, match=r'test\.txt is missing \(listed in meta/split\.json'):
        isic_set(prepared, 'train')
    # A split.json that is not JSON is refused with what to do.
    (prepared / 'meta' / 'split.json').write_bytes(b'\xff\x00 not json')
    with pytest.raises(SplitListError, match=r'split\.json is not valid JSON.*--force'):
        isic_set(prepared, 'train')


def test_a_config_classes_path_is_read_as_a_class_file(prepared, tmp_path):
    classes = tmp_path / 'classes.txt'
    classes.write_text('\n'.join(ISIC2018_CLASSES) + '\n')
    assert len(isic_set(prepared, classes=str(classes))) == 21
    classes.write_text('\n'.join(reversed(ISIC2018_CLASSES)) + '\n')
    with pytest.raises(SplitListError, match='differs from the official order'):
        isic_set(prepared, classes=str(classes))
    with pytest.raises(FileNotFoundError, match=r'classes= .*nope\.txt not found'):
        isic_set(prepared, classes=str(tmp_path / 'nope.txt'))
