"""tools/dataset_converters/prepare_*.py on synthetic replicas of the official layouts.

The scripts are run as subprocesses where the command line itself is under test; the other
cases call the same entry point (``converter_main``) in-process, which is what each script runs.
The real COVID19-CT images (../shared/data/covid_ct) are used when present.
"""
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from hifuse_mm.datasets.isic2018 import ISIC2018_CLASSES
from hifuse_mm.datasets.kvasir import KVASIR_CLASSES
from hifuse_mm.datasets.prepare import converter_main, covid19ct, isic2018, kvasir
from helpers import REPO, repo_env
from replicas import (ISIC2018_COUNTS, image_bytes, make_covid19ct, make_isic2018, make_kvasir,
                      read_split, rebuild_ucsd_layout)

CONVERTERS = REPO / 'tools' / 'dataset_converters'
SHARED_COVID = REPO.parent / 'shared' / 'data' / 'covid_ct'
SPLITS = ('train', 'val', 'test')
META_FILES = ['meta/classes.txt', 'meta/split.json'] + [f'meta/{s}.txt' for s in SPLITS]


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CONVERTERS / f'prepare_{name}.py'), *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=repo_env(OMP_NUM_THREADS='1'), timeout=300)


def convert(module, *args, capsys=None):
    """Run a converter in-process; returns (exit status, stdout, stderr)."""
    status = converter_main(module, [str(a) for a in args])
    out, err = capsys.readouterr() if capsys is not None else ('', '')
    return status, out, err


def per_class(path: Path, classes) -> dict:
    counts = Counter(label for _, label in read_split(path))
    return {name: counts.get(i, 0) for i, name in enumerate(classes)}


# ---------------------------------------------------------------------------------------------
# ISIC 2018
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope='module')
def isic_full(tmp_path_factory) -> Path:
    """A replica with the real class counts (10015 tiny images)."""
    root = tmp_path_factory.mktemp('isic_full') / 'ISIC2018'
    make_isic2018(root)
    return root


def test_isic_hemf_cli_gives_3001_test_images(isic_full, tmp_path, capsys):
    out = tmp_path / 'isic2018'
    # (the split audit of these 10015 4x4-pixel images is not the subject: tests/test_split_audit)
    proc = run_script('isic2018', str(isic_full), str(out), '--protocol', 'hemf', '--no-audit')
    assert proc.returncode == 0, proc.stderr
    assert 'total   6012   1002   3001' in proc.stdout
    assert 'Split audit skipped (--no-audit)' in proc.stdout
    assert not (out / 'meta' / 'audit.json').exists()
    assert per_class(out / 'meta' / 'test.txt', ISIC2018_CLASSES) == dict(
        MEL=333, NV=2011, BCC=154, AKIEC=98, BKL=329, DF=34, VASC=42)
    info = json.loads((out / 'meta' / 'split.json').read_text())
    assert info['protocol'] == 'hemf' and info['seed'] == 0
    assert info['counts']['test']['total'] == 3001
    assert info['counts']['train']['per_class']['NV'] == 4023
    assert set(info['source_files']) == {'ISIC2018_Task3_Training_GroundTruth.csv'}
    assert (out / 'meta' / 'classes.txt').read_text().split() == list(ISIC2018_CLASSES)
    # Images are not copied or moved: OUT/source links to SRC, the lists point through it.
    assert (out / 'source').is_symlink() and (out / 'source').resolve() == isic_full.resolve()
    lines = read_split(out / 'meta' / 'train.txt')
    assert lines == sorted(lines)
    assert lines[0][0].startswith('source/ISIC2018_Task3_Training_Input/ISIC_')
    all_paths = [p for s in SPLITS for p, _ in read_split(out / 'meta' / f'{s}.txt')]
    assert len(all_paths) == len(set(all_paths)) == 10015

    # Same input, same seed -> byte-identical files, wherever OUT is.
    again = tmp_path / 'elsewhere' / 'again'
    assert converter_main(isic2018, [str(isic_full), str(again), '--protocol', 'hemf',
                                     '--no-audit']) == 0
    for name in META_FILES:
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    # Another seed: another split with the same counts.
    other = tmp_path / 'seed1'
    assert converter_main(isic2018, [str(isic_full), str(other), '--protocol', 'hemf',
                                     '--seed', '1', '--no-audit']) == 0
    assert (other / 'meta' / 'test.txt').read_bytes() != (out / 'meta' / 'test.txt').read_bytes()
    assert per_class(other / 'meta' / 'test.txt', ISIC2018_CLASSES) == \
        per_class(out / 'meta' / 'test.txt', ISIC2018_CLASSES)

    capsys.readouterr()  # (the runs above)
    status, stdout, err = convert(isic2018, '--check', out, '--no-audit', capsys=capsys)
    assert status == 0, err
    assert 'OK' in stdout


def test_isic_hifuse_protocol(isic_full, tmp_path, capsys):
    out = tmp_path / 'hifuse'
    status, stdout, _ = convert(isic2018, isic_full, out, '--protocol', 'hifuse', '--no-audit',
                                capsys=capsys)
    assert status == 0
    info = json.loads((out / 'meta' / 'split.json').read_text())
    for name, n in ISIC2018_COUNTS.items():
        counts = {s: info['counts'][s]['per_class'][name] for s in SPLITS}
        # 70/30 stratified (train part ceil(0.7 n), test floor(0.3 n)), val floor(0.1 n) of the
        # class carved from the 70.
        assert counts['test'] == 3 * n // 10
        assert counts['val'] == n // 10
        assert counts['train'] == -(-7 * n // 10) - n // 10
    assert info['counts']['test']['total'] == 3001
    # The test split does not depend on the validation fraction.
    out2 = tmp_path / 'hifuse_val20'
    status, _, _ = convert(isic2018, isic_full, out2, '--protocol', 'hifuse',
                           '--val-fraction', '0.2', '--no-audit', capsys=capsys)
    assert status == 0
    assert (out2 / 'meta' / 'test.txt').read_bytes() == (out / 'meta' / 'test.txt').read_bytes()
    assert json.loads((out2 / 'meta' / 'split.json').read_text())['counts']['val']['total'] \
        == sum(n // 5 for n in ISIC2018_COUNTS.values())


def test_isic_group_by_lesion_keeps_lesions_together(tmp_path, capsys):
    counts = dict(MEL=120, NV=300, BCC=60, AKIEC=40, BKL=90, DF=20, VASC=25)
    src = tmp_path / 'ISIC2018'
    info = make_isic2018(src, counts, lesion_sizes=(1, 3, 2, 5, 1, 4))
    lesion_of = {image: lesion for image, (_, lesion) in info.items()}

    def lesions_in_two_splits(out: Path) -> list:
        split_of_lesion = defaultdict(set)
        for split in SPLITS:
            for path, _ in read_split(out / 'meta' / f'{split}.txt'):
                split_of_lesion[lesion_of[Path(path).stem]].add(split)
        return [lesion for lesion, splits in split_of_lesion.items() if len(splits) > 1]

    # An image-level split leaks lesions into several splits (why the option exists) ...
    status, _, _ = convert(isic2018, src, tmp_path / 'by_image', '--protocol', 'hemf',
                           capsys=capsys)
    assert status == 0 and lesions_in_two_splits(tmp_path / 'by_image')
    # ... the lesion-level split does not, for both protocols.
    for protocol in ('hemf', 'hifuse'):
        out = tmp_path / f'by_lesion_{protocol}'
        status, _, err = convert(isic2018, src, out, '--protocol', protocol,
                                 '--group-by-lesion', src / 'HAM10000_metadata.csv',
                                 capsys=capsys)
        assert status == 0, err
        assert lesions_in_two_splits(out) == []
        split_json = json.loads((out / 'meta' / 'split.json').read_text())
        assert split_json['options']['unit'] == 'lesion'
        assert 'HAM10000_metadata.csv' in split_json['source_files']
        assert sum(split_json['counts'][s]['total'] for s in SPLITS) == sum(counts.values())
        # Stratified by the lesion's class: every class is in train and test.
        assert all(min(split_json['counts'][s]['per_class'].values()) > 0
                   for s in ('train', 'test'))


def test_isic_lesion_metadata_errors(tmp_path, capsys):
    src = tmp_path / 'ISIC2018'
    make_isic2018(src, dict(MEL=6, NV=6, BCC=6, AKIEC=6, BKL=6, DF=6, VASC=6),
                  lesion_sizes=(2, ))
    meta = src / 'HAM10000_metadata.csv'
    lines = meta.read_text().splitlines()
    # Put an NV image into a MEL lesion: one lesion, two classes.
    nv = next(i for i, line in enumerate(lines) if ',nv,' in line)
    meta.write_text('\n'.join(lines[:nv] + [lines[nv].replace(lines[nv].split(',')[0],
                                                              lines[1].split(',')[0])]
                              + lines[nv + 1:]) + '\n')
    status, _, err = convert(isic2018, src, tmp_path / 'out', '--protocol', 'hemf',
                             '--group-by-lesion', meta, capsys=capsys)
    assert status == 1 and 'has images of two classes' in err
    status, _, err = convert(isic2018, src, tmp_path / 'out', '--protocol', 'hemf',
                             '--group-by-lesion', tmp_path / 'nope.csv', capsys=capsys)
    assert status == 1 and 'nope.csv not found' in err
    assert not (tmp_path / 'out').exists()


@pytest.fixture()
def isic_small(tmp_path) -> Path:
    src = tmp_path / 'ISIC2018'
    make_isic2018(src, dict(MEL=10, NV=20, BCC=10, AKIEC=10, BKL=10, DF=10, VASC=10))
    return src


def test_refuses_to_overwrite_without_force(isic_small, tmp_path, capsys):
    out = tmp_path / 'out'
    assert convert(isic2018, isic_small, out, '--protocol', 'hemf', capsys=capsys)[0] == 0
    before = {n: (out / n).read_bytes() for n in META_FILES}
    status, _, err = convert(isic2018, isic_small, out, '--protocol', 'hifuse', capsys=capsys)
    assert status == 1 and '--force' in err and 'already holds a prepared split' in err
    assert {n: (out / n).read_bytes() for n in META_FILES} == before
    status, _, _ = convert(isic2018, isic_small, out, '--protocol', 'hifuse', '--force',
                           capsys=capsys)
    assert status == 0
    assert json.loads((out / 'meta' / 'split.json').read_text())['protocol'] == 'hifuse'
    # A real folder where the source link would go is never replaced, even with --force.
    other = tmp_path / 'other'
    (other / 'source').mkdir(parents=True)
    (other / 'source' / 'mine.txt').write_text('user data')
    status, _, err = convert(isic2018, isic_small, other, '--protocol', 'hemf', '--force',
                             capsys=capsys)
    assert status == 1 and 'is not a link' in err
    assert (other / 'source' / 'mine.txt').read_text() == 'user data'


def test_missing_unreadable_and_duplicate_images(isic_small, tmp_path, capsys):
    out = tmp_path / 'out'
    assert convert(isic2018, isic_small, out, '--protocol', 'hemf', capsys=capsys)[0] == 0
    images = isic_small / isic2018.INPUT_DIR
    train = [Path(p).name for p, _ in read_split(out / 'meta' / 'train.txt')]
    test = [Path(p).name for p, _ in read_split(out / 'meta' / 'test.txt')]

    (images / train[0]).unlink()
    (images / train[1]).write_bytes(b'')
    (images / train[2]).write_bytes(b'definitely not a JPEG')
    (images / test[0]).write_bytes((images / train[3]).read_bytes())
    fresh = tmp_path / 'fresh'
    status, _, err = convert(isic2018, isic_small, fresh, '--protocol', 'hemf', capsys=capsys)
    assert status == 1
    assert '1 listed image(s) do not exist' in err and train[0] in err
    assert '2 image(s) cannot be decoded' in err
    assert f'{train[1]}: empty file' in err and train[2] in err
    assert 'identical images (same bytes) are in different splits' in err
    assert train[3] in err and test[0] in err
    assert 'Nothing was written' in err and not fresh.exists()

    # --check finds the same problems in the folder prepared before the damage.
    status, _, err = convert(isic2018, '--check', out, capsys=capsys)
    assert status == 1
    assert 'do not exist' in err and 'cannot be decoded' in err and 'different splits' in err


def test_check_detects_edited_lists_and_source(isic_small, tmp_path, capsys):
    out = tmp_path / 'out'
    assert convert(isic2018, isic_small, out, '--protocol', 'hemf', capsys=capsys)[0] == 0
    assert convert(isic2018, '--check', out, capsys=capsys)[0] == 0
    val = out / 'meta' / 'val.txt'
    lines = val.read_text().splitlines()
    val.write_text('\n'.join(lines[1:]) + '\n')
    status, _, err = convert(isic2018, '--check', out, capsys=capsys)
    assert status == 1 and 'val.txt was changed after it was prepared' in err
    assert 'per-class counts differ' in err
    val.write_text('\n'.join(lines) + '\n')
    assert convert(isic2018, '--check', out, capsys=capsys)[0] == 0
    csv = isic_small / isic2018.GROUND_TRUTH
    csv.write_text(csv.read_text() + '\n')
    status, _, err = convert(isic2018, '--check', out, capsys=capsys)
    assert status == 1 and 'GroundTruth.csv changed since the split was prepared' in err
    status, _, err = convert(isic2018, '--check', tmp_path, capsys=capsys)
    assert status == 1 and 'split.json not found' in err


def test_bad_ground_truth_is_reported_with_file_and_line(tmp_path, capsys):
    src = tmp_path / 'ISIC2018'
    make_isic2018(src, dict(MEL=3, NV=3, BCC=3, AKIEC=3, BKL=3, DF=3, VASC=3))
    csv = src / isic2018.GROUND_TRUTH
    lines = csv.read_text().splitlines()
    lines[3] = lines[3].replace('0.0', '1.0', 1)
    csv.write_text('\n'.join(lines) + '\n')
    status, _, err = convert(isic2018, src, tmp_path / 'out', '--protocol', 'hemf',
                             capsys=capsys)
    assert status == 1
    assert f'{csv}:4' in err and 'exactly one class' in err
    status, _, err = convert(isic2018, tmp_path, tmp_path / 'out', '--protocol', 'hemf',
                             capsys=capsys)
    assert status == 1 and 'GroundTruth.csv not found' in err
    status, _, err = convert(isic2018, src, tmp_path / 'out', capsys=capsys)
    assert status == 1 and '--protocol is required' in err


# ---------------------------------------------------------------------------------------------
# Kvasir
# ---------------------------------------------------------------------------------------------
def test_kvasir_two_folds(tmp_path, capsys):
    download = tmp_path / 'download'
    paths = make_kvasir(download / 'kvasir-dataset-v2', per_class=21)
    (download / 'kvasir-dataset-v2' / 'polyps' / 'Thumbs.db').write_text('x')
    out = tmp_path / 'kvasir'
    status, stdout, err = convert(kvasir, download, out, '--val-fraction', '0.2',
                                  capsys=capsys)
    assert status == 0, err
    assert 'using the class folders in' in stdout and 'non-image' in stdout

    def split(fold, name):
        return {p: label for p, label in read_split(out / 'meta' / fold / f'{name}.txt')}

    everything = {f'source/kvasir-dataset-v2/{p}' for p in paths}
    f1 = {s: split('fold1', s) for s in SPLITS}
    f2 = {s: split('fold2', s) for s in SPLITS}
    for fold in (f1, f2):
        assert set().union(*fold.values()) == everything
        assert sum(len(v) for v in fold.values()) == len(everything)  # disjoint
    # Fold 2 swaps the halves; each fold's val comes out of its own training half.
    assert set(f1['test']) == set(f2['train']) | set(f2['val'])
    assert set(f2['test']) == set(f1['train']) | set(f1['val'])
    # Stratified: 21 per class -> halves of 11 and 10, val floor(0.2 * half).
    for name in KVASIR_CLASSES:
        assert per_class(out / 'meta' / 'fold1' / 'test.txt', KVASIR_CLASSES)[name] == 10
        assert per_class(out / 'meta' / 'fold2' / 'test.txt', KVASIR_CLASSES)[name] == 11
        assert per_class(out / 'meta' / 'fold1' / 'val.txt', KVASIR_CLASSES)[name] == 2
        assert per_class(out / 'meta' / 'fold2' / 'val.txt', KVASIR_CLASSES)[name] == 2
    # Labels follow the sorted class folders.
    assert all(KVASIR_CLASSES[label] == Path(p).parent.name for p, label in f1['train'].items())
    # meta/{train,val,test}.txt are fold1's lists (the configs' default).
    for s in SPLITS:
        assert (out / 'meta' / f'{s}.txt').read_bytes() == \
            (out / 'meta' / 'fold1' / f'{s}.txt').read_bytes()
    info = json.loads((out / 'meta' / 'split.json').read_text())
    assert set(info['counts']) == {*SPLITS, *(f'fold{i}/{s}' for i in (1, 2) for s in SPLITS)}
    assert info['options']['folds'] == ['fold1', 'fold2']
    assert convert(kvasir, '--check', out, capsys=capsys)[0] == 0


def test_kvasir_errors(tmp_path, capsys):
    src = tmp_path / 'kv'
    make_kvasir(src, per_class=4)
    # 4 per class -> training halves of 2 -> floor(0.1 * 2) = 0 validation images.
    status, _, err = convert(kvasir, src, tmp_path / 'out', capsys=capsys)
    assert status == 1 and "split 'fold1/val' is empty" in err
    (src / 'esophagitis').rename(tmp_path / 'moved')
    status, _, err = convert(kvasir, src, tmp_path / 'out', capsys=capsys)
    assert status == 1 and "missing: ['esophagitis']" in err


# ---------------------------------------------------------------------------------------------
# COVID19-CT
# ---------------------------------------------------------------------------------------------
REAL_COUNTS = dict(COVID=dict(train=191, val=60, test=98),
                   NonCOVID=dict(train=234, val=58, test=105))


def test_covid_official_and_random_on_a_replica(tmp_path, capsys):
    src = tmp_path / 'COVID-CT'
    make_covid19ct(src, REAL_COUNTS, unlisted=2)
    out = tmp_path / 'official'
    status, stdout, err = convert(covid19ct, src, out, '--protocol', 'official', capsys=capsys)
    assert status == 0, err
    assert '2 image(s) in CT_COVID are in no split list' in stdout
    info = json.loads((out / 'meta' / 'split.json').read_text())
    assert {s: info['counts'][s]['total'] for s in SPLITS} == dict(train=425, val=118, test=203)
    assert {s: info['counts'][s]['per_class']['COVID'] for s in SPLITS} == \
        dict(train=191, val=60, test=98)
    assert info['seed'] is None and len(info['source_files']) == 6
    names = [p for p, _ in read_split(out / 'meta' / 'train.txt')]
    assert any('%' in p for p in names) and all(p.startswith('source/CT_') for p in names)

    out = tmp_path / 'random'
    status, _, err = convert(covid19ct, src, out, '--protocol', 'random', capsys=capsys)
    assert status == 0, err
    info = json.loads((out / 'meta' / 'split.json').read_text())
    # 349 + 2 COVID and 397 + 2 NonCOVID images: 0.6 (ceil) / rest / 0.25 (floor).
    assert info['counts']['test']['per_class'] == dict(COVID=87, NonCOVID=99)
    assert info['counts']['train']['per_class'] == dict(COVID=211, NonCOVID=240)
    assert info['counts']['val']['per_class'] == dict(COVID=53, NonCOVID=60)


def test_covid_list_errors(tmp_path, capsys):
    src = tmp_path / 'COVID-CT'
    names = make_covid19ct(src, dict(COVID=dict(train=3, val=2, test=2),
                                     NonCOVID=dict(train=3, val=2, test=2)))
    listed = src / covid19ct.split_list_path('COVID', 'test')
    listed.write_text(listed.read_text() + 'gone.png\n' + names['COVID']['train'][0] + '\n')
    status, _, err = convert(covid19ct, src, tmp_path / 'out', '--protocol', 'official',
                             capsys=capsys)
    assert status == 1
    assert f'CT_COVID/{names["COVID"]["train"][0]} is listed in both train and test' in err
    listed.write_text(listed.read_text().replace(names['COVID']['train'][0] + '\n', ''))
    status, _, err = convert(covid19ct, src, tmp_path / 'out', '--protocol', 'official',
                             capsys=capsys)
    assert status == 1 and 'do not exist' in err and 'CT_COVID/gone.png' in err
    (src / covid19ct.split_list_path('NonCOVID', 'val')).unlink()
    status, _, err = convert(covid19ct, src, tmp_path / 'out', '--protocol', 'official',
                             capsys=capsys)
    assert status == 1 and 'valCT_NonCOVID.txt not found' in err


@pytest.mark.skipif(not SHARED_COVID.is_dir(), reason='real COVID19-CT data not present')
def test_covid_official_on_the_real_images(tmp_path, capsys):
    src = tmp_path / 'COVID-CT'
    assert rebuild_ucsd_layout(SHARED_COVID, src) == 746
    out = tmp_path / 'covid19ct'
    # The rebuilt layout links to the shared images, outside SRC: refused unless allowed.
    status = converter_main(covid19ct, [str(src), str(out), '--protocol', 'official'])
    assert status == 1 and not out.exists()
    proc = run_script('covid19ct', str(src), str(out), '--protocol', 'official',
                      '--allow-outside-root')
    assert proc.returncode == 0, proc.stderr
    info = json.loads((out / 'meta' / 'split.json').read_text())
    assert {s: info['counts'][s]['total'] for s in SPLITS} == dict(train=425, val=118, test=203)
    assert {s: info['counts'][s]['per_class']['COVID'] for s in SPLITS} == \
        dict(train=191, val=60, test=98)
    # The same images as the shared copy's own official split (by original file name).
    original = {}
    for line in (SHARED_COVID / 'meta' / 'original_names.tsv').read_text().splitlines()[1:]:
        new, orig = line.split('\t')[:2]
        original[orig] = new
    for split in SPLITS:
        ours = {original[p[len('source/'):]] for p, _ in read_split(out / 'meta' / f'{split}.txt')}
        theirs = {p for p, _ in read_split(SHARED_COVID / 'meta' / f'{split}.txt')}
        assert ours == theirs
    # The converter audited the official split: the near-duplicate CT slices it holds across
    # splits are a warning (the split is kept as published) and recorded in meta/audit.json.
    record = json.loads((out / 'meta' / 'audit.json').read_text())
    assert record['cross_split_pairs'] == len(record['near_duplicates']) > 0
    assert not record['exact_duplicates'] and not record['ok']
    assert 'WARNING: Split audit: LEAK: ' in proc.stdout
    # --check re-runs the audit and finds exactly what was recorded.
    capsys.readouterr()  # (the runs above)
    status, stdout, err = convert(covid19ct, '--check', out, capsys=capsys)
    assert status == 0, err
    assert 'split audit as recorded' in stdout


def test_unique_image_bytes_helper():
    assert image_bytes() != image_bytes()


def test_duplicate_grouping():
    from hifuse_mm.datasets.prepare.imagecheck import duplicate_groups, split_leaks
    groups = duplicate_groups({'a': 'h1', 'b': 'h2', 'c': 'h1', 'd': 'h1', 'e': None, 'f': None})
    assert groups == [['a', 'c', 'd']]
    leaking, within = split_leaks(groups, {'a': 'train', 'c': 'test', 'd': 'train'})
    assert (leaking, within) == ([['a', 'c', 'd']], [])
    leaking, within = split_leaks(groups, {'a': 'val', 'd': 'val'})
    assert (leaking, within) == ([], [['a', 'd']])
