"""The split audit (hifuse_mm/datasets/prepare/audit.py, tools/dataset_converters/audit_splits.py).

The near-duplicate threshold is justified on the real COVID19-CT images (../shared/data/covid_ct,
skipped without it): near-duplicates of test images placed in train are all caught at the
default distance, and the rate of flagged pairs among the official split's distinct images is
measured and bounded (numbers in docs/data_and_splits.md).
"""
import io
import itertools
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip('imagehash')
from PIL import Image, ImageEnhance  # noqa: E402

from hifuse_mm.datasets.prepare import audit  # noqa: E402
from helpers import REPO, repo_env  # noqa: E402

SHARED_COVID = REPO.parent / 'shared' / 'data' / 'covid_ct'
SPLITS = ('train', 'val', 'test')


def test_hamming_pairs_matches_a_loop():
    rng = np.random.default_rng(0)
    for k in (1, 3):
        base = rng.integers(0, 2**63, size=(40, k), dtype=np.uint64)
        # some near copies: flip a few bits of earlier rows
        for i in range(20, 40):
            base[i] = base[i - 20] ^ np.uint64(int(rng.integers(0, 2**6)))
        hashes = [[int(v) for v in row] for row in base]
        for limit in (0, 3, 6):
            expected = []
            for i, j in itertools.combinations(range(len(hashes)), 2):
                d = min(bin(a ^ b).count('1') for a in hashes[i] for b in hashes[j])
                if d <= limit:
                    expected.append((i, j, d))
            assert sorted(audit.hamming_pairs(hashes, limit, block=7)) == expected
    assert audit.hamming_pairs([[0], [2**64 - 1]], 64) == [(0, 1, 64)]


def _texture(seed, size=(96, 80)):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.BILINEAR)


def _prepared(root, lists, classes=('a', 'b')):
    (root / 'meta').mkdir(parents=True)
    (root / 'meta' / 'classes.txt').write_text(''.join(c + '\n' for c in classes))
    for split, entries in lists.items():
        (root / 'meta' / f'{split}.txt').write_text(''.join(f'{p} {lab}\n' for p, lab in entries))


def test_synthetic_leaks_bad_images_and_groups(tmp_path, capsys):
    root = tmp_path / 'data'
    (root / 'img').mkdir(parents=True)
    for i in range(6):
        _texture(i).save(root / 'img' / f'{i}.png')
    (root / 'img' / 'copy.png').write_bytes((root / 'img' / '0.png').read_bytes())
    _texture(1).resize((86, 72)).save(root / 'img' / 'near.png')
    (root / 'img' / 'bad.png').write_bytes(b'not an image')
    lists = {'train': [('img/0.png', 0), ('img/1.png', 1), ('img/2.png', 0), ('img/bad.png', 1),
                       ('img/gone.png', 0)],
             'val': [],
             'test': [('img/copy.png', 0), ('img/near.png', 1), ('img/3.png', 0),
                      ('img/4.png', 1)]}
    _prepared(root, lists)
    groups = tmp_path / 'groups.csv'
    groups.write_text('image_id,lesion_id\n0,L0\n1,L1\n2,L2\n3,L2\n4,L4\ncopy,L5\nnear,L6\n'
                      'bad,L7\n')
    status = audit.main([str(root), '--groups', str(groups), '--workers', '2'])
    out = capsys.readouterr().out
    assert status == 1
    report = json.loads((root / 'meta' / 'audit.json').read_text())
    assert report['splits']['train'] == {'count': 5, 'per_class': {'a': 3, 'b': 2},
                                         'empty': False}
    assert report['splits']['val']['empty'] and 'split val is empty' in out
    assert sorted(b['path'] for b in report['unreadable']) == ['img/bad.png', 'img/gone.png']
    assert [(p['a']['path'], p['b']['path']) for p in report['exact_duplicates']] == [
        ('img/0.png', 'img/copy.png')]
    near = [(p['a']['path'], p['b']['path']) for p in report['near_duplicates']]
    assert ('img/1.png', 'img/near.png') in near
    assert report['cross_split_pairs'] == len(report['exact_duplicates']) + len(near)
    assert [r['path'] for r in report['groups']['missing']] == ['img/gone.png']
    assert [(g['group'], g['splits']) for g in report['groups']['overlap']] == [
        ('L2', ['train', 'test'])]
    assert 'EXACT DUPLICATE train:img/0.png == test:img/copy.png' in out
    assert 'GROUP OVERLAP L2' in out and 'img/gone.png' in out
    # no leak: exit 0 (the tool as a script); no lists: exit 2
    clean = tmp_path / 'clean'
    (clean / 'img').mkdir(parents=True)
    for i in range(3):
        _texture(10 + i).save(clean / 'img' / f'{i}.png')
    _prepared(clean, {'train': [('img/0.png', 0)], 'val': [('img/1.png', 1)],
                      'test': [('img/2.png', 0)]})
    tool = REPO / 'tools' / 'dataset_converters' / 'audit_splits.py'
    done = subprocess.run([sys.executable, str(tool), str(clean)], capture_output=True,
                          text=True, env=repo_env(OMP_NUM_THREADS='1'), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((clean / 'meta' / 'audit.json').read_text())['ok'] is True
    capsys.readouterr()
    assert audit.main([str(tmp_path / 'nothing')]) == 2  # what the script exits with
    assert 'no split lists' in capsys.readouterr().err


def test_degenerate_folder_counts_all_pairs_but_lists_a_few(tmp_path):
    root = tmp_path / 'blank'
    (root / 'img').mkdir(parents=True)
    for i in range(6):  # identical bytes: 9 cross-split exact pairs, 6 within
        Image.new('L', (32, 32), 128).save(root / 'img' / f'same{i}.png')
    for i in range(4):  # distinct bytes, flat pictures: near-duplicates of each other
        Image.new('L', (32 + i, 32), 0).save(root / 'img' / f'flat{i}.png')
    lists = {'train': [(f'img/same{i}.png', 0) for i in range(3)]
             + [('img/flat0.png', 0), ('img/flat1.png', 1)],
             'val': [('img/flat2.png', 0)],
             'test': [(f'img/same{i}.png', 1) for i in range(3, 6)] + [('img/flat3.png', 0)]}
    _prepared(root, lists)
    report = audit.audit_split(root, max_pairs=2)
    assert len(report['exact_duplicates']) == 2 and len(report['near_duplicates']) <= 2
    assert report['within_split']['exact_duplicate_pairs'] == 6
    # the near pairs counted independently: a loop over the hashes
    entries = [(split, path) for split, items in lists.items() for path, _ in items]
    hashes = [audit.perceptual_hash(root / path) for _, path in entries]
    cross = within = 0
    for (i, (si, pi)), (j, (sj, pj)) in itertools.combinations(enumerate(entries), 2):
        if ('same' in pi and 'same' in pj) or min(
                bin(a ^ b).count('1') for a in hashes[i] for b in hashes[j]) > 4:
            continue
        cross, within = (cross + 1, within) if si != sj else (cross, within + 1)
    assert cross >= 2  # the flat images at least
    assert report['within_split']['near_duplicate_pairs'] == within
    assert report['cross_split_pairs'] == 9 + cross
    assert report['pairs_truncated'] and not report['ok']


def _near_copies(image):
    """The issue's near-duplicates of ``image``: (name, suffix, PIL image or JPEG bytes)."""
    image = image.convert('RGB')
    w, h = image.size
    buffer = io.BytesIO()
    image.save(buffer, 'JPEG', quality=70)
    yield 'jpeg70', '.jpg', buffer.getvalue()
    yield 'resize90', '.png', image.resize((round(w * 0.9), round(h * 0.9)), Image.BILINEAR)
    dx, dy = round(w * 0.05), round(h * 0.05)
    yield 'crop5', '.png', image.crop((dx, dy, w - dx, h - dy))
    yield 'bright10', '.png', ImageEnhance.Brightness(image).enhance(1.1)
    small = image.resize((round(w * 0.9), round(h * 0.9)), Image.BILINEAR)
    sw, sh = small.size
    sx, sy = round(sw * 0.05), round(sh * 0.05)
    combined = ImageEnhance.Brightness(small.crop((sx, sy, sw - sx, sh - sy))).enhance(1.1)
    buffer = io.BytesIO()
    combined.save(buffer, 'JPEG', quality=70)
    yield 'all4', '.jpg', buffer.getvalue()


#: Bound asserted on the share of distinct-image pairs flagged at the default distance
#: (measured: 81 of 277,885 pairs, 0.029%, on the 746 official COVID19-CT images).
FALSE_POSITIVE_BOUND = 0.001


@pytest.mark.skipif(not SHARED_COVID.is_dir(), reason='real COVID19-CT data not present')
def test_threshold_on_real_covid_ct(tmp_path):
    root = tmp_path / 'covid'
    (root / 'meta').mkdir(parents=True)
    for split in SPLITS:
        (root / split).symlink_to(SHARED_COVID / split, target_is_directory=True)
        (root / 'meta' / f'{split}.txt').write_bytes(
            (SHARED_COVID / 'meta' / f'{split}.txt').read_bytes())
    (root / 'meta' / 'classes.txt').write_bytes(
        (SHARED_COVID / 'meta' / 'classes.txt').read_bytes())
    # false positives: every flagged pair among the official split's distinct images
    report = audit.audit_split(root, workers=2)
    n = sum(info['count'] for info in report['splits'].values())
    assert n == 746 and not report['unreadable'] and not report['exact_duplicates']
    flagged = report['within_split']['near_duplicate_pairs'] + len(report['near_duplicates'])
    rate = flagged / (n * (n - 1) // 2)
    print(f'flagged {flagged} of {n * (n - 1) // 2} distinct pairs: {rate:.5%}')
    assert rate < FALSE_POSITIVE_BOUND
    # near-duplicates of every 8th test image, placed in train: all caught
    tests = [line.rsplit(' ', 1) for line in
             (root / 'meta' / 'test.txt').read_text().splitlines()][::8]
    (root / 'dups').mkdir()
    expected = set()
    extra = []
    for number, (path, label) in enumerate(tests):
        with Image.open(root / path) as original:
            original.load()
            for name, suffix, copy in _near_copies(original):
                target = f'dups/{number}_{name}{suffix}'
                if isinstance(copy, bytes):
                    (root / target).write_bytes(copy)
                else:
                    copy.save(root / target)
                extra.append(f'{target} {label}\n')
                expected.add((target, path))
    with open(root / 'meta' / 'train.txt', 'a') as stream:
        stream.writelines(extra)
    report = audit.audit_split(root, workers=2)
    distance = {}
    for pair in report['near_duplicates']:
        distance[pair['a']['path'], pair['b']['path']] = pair['distance']
        distance[pair['b']['path'], pair['a']['path']] = pair['distance']
    missed = sorted(expected - set(distance))
    assert not missed, missed
    largest = {}
    for copy, original in expected:
        kind = copy.rsplit('_', 1)[1].split('.')[0]
        largest[kind] = max(largest.get(kind, 0), distance[copy, original])
    print(f'caught {len(expected)} of {len(expected)}; largest distance per edit: {largest}')
    assert max(largest.values()) <= audit.DEFAULT_HASH_DISTANCE
    assert len(expected) == 5 * len(tests) >= 100


# ---------------------------------------------------------------------------------------------
# The converters run the audit (and --check re-runs it)
# ---------------------------------------------------------------------------------------------
def _kvasir_source(root, per_class=4):
    from hifuse_mm.datasets.kvasir import KVASIR_CLASSES
    for k, name in enumerate(KVASIR_CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            _texture(100 + 10 * k + i).save(root / name / f'{i}.png')
    return KVASIR_CLASSES


def test_converters_audit_every_list_set_and_check_finds_new_leaks(tmp_path, capsys,
                                                                    monkeypatch):
    from hifuse_mm.datasets.prepare import converter_main, kvasir
    src, out = tmp_path / 'kvasir', tmp_path / 'prepared'
    _kvasir_source(src)
    assert converter_main(kvasir, [str(src), str(out), '--protocol', '2fold',
                                   '--val-fraction', '0.5']) == 0
    stdout = capsys.readouterr().out
    # one audit per list set: meta/*.txt (= fold1) and each fold, all clean
    for where in ('meta', 'meta/fold1', 'meta/fold2'):
        record = json.loads((out / where / 'audit.json').read_text())
        assert record['ok'] and record['cross_split_pairs'] == 0
        assert sum(v['count'] for v in record['splits'].values()) == 32
    assert record['partition'] == 'fold2'
    assert 'Split audit: OK: 0 cross-split pair(s)' in stdout
    assert 'Split audit (fold2): OK' in stdout
    capsys.readouterr()
    assert converter_main(kvasir, ['--check', str(out)]) == 0
    assert 'split audit as recorded' in capsys.readouterr().out

    # A test image replaced by a resized copy of a training image: the lists and their
    # checksums are unchanged, only the audit sees it.
    lists = {s: (out / 'meta' / f'{s}.txt').read_text().split('\n')[0].split()[0]
             for s in ('train', 'test')}
    train_img, test_img = (out / lists['train']), (out / lists['test'])
    with Image.open(train_img) as image:
        image.resize((88, 74)).save(test_img, format='PNG')
    assert converter_main(kvasir, ['--check', str(out)]) == 1
    captured = capsys.readouterr()
    assert 'does not record' in captured.err and lists['test'] in captured.err
    assert 'WARNING: Split audit: LEAK' in captured.out
    assert converter_main(kvasir, ['--check', str(out), '--no-audit']) == 0
    capsys.readouterr()

    # --force --no-audit: the old records (of the old lists) are not carried into the new meta
    assert converter_main(kvasir, [str(src), str(out), '--protocol', '2fold', '--force',
                                   '--no-audit', '--seed', '3', '--val-fraction', '0.5']) == 0
    assert not list(out.glob('meta/**/audit.json'))
    assert 'Split audit skipped (--no-audit)' in capsys.readouterr().out

    # Without imagehash the converter stops before writing and names --no-audit.
    def missing():
        raise audit.DatasetError('the split audit needs the imagehash package')
    monkeypatch.setattr(audit, '_imagehash', missing)
    fresh = tmp_path / 'fresh'
    assert converter_main(kvasir, [str(src), str(fresh), '--protocol', '2fold',
                                   '--val-fraction', '0.5']) == 1
    assert 'or pass --no-audit' in capsys.readouterr().err and not fresh.exists()
