"""The report's **Data** section: how the images were split, and whether the split leaks.

For the prepared folder a run was tested on (``test_dataloader.dataset.data_root`` of the config
the test dumped) it shows the split as a flow (source -> prepared folder -> train / val / test
with their image counts) and a table of the images per split and class, then what
``meta/split.json`` records (dataset, protocol, seed, options, the SHA-256 of the source index
files and of every list: CLAIM 2024 items 19 and 35, TRIPOD+AI 12a and 20a) and the split
audit (``meta/audit.json`` or ``meta/<fold>/audit.json``, written by
``tools/dataset_converters/audit_splits.py``: exact and near-duplicate images and shared
lesions / patients across splits: CLAIM 2024 item 20). A folder without ``split.json`` (the
demo's synthetic data, a hand-made folder) is described from its lists, their SHA-256 computed
now; what is missing is said in the section.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Sequence, Tuple

from ...datasets.splits import (CLASSES_TXT, META, SPLIT_JSON, SPLITS, DatasetError, read_index,
                                read_split_record)
from ...utils.classes_file import read_classes_file
from ...utils.file_hash import file_sha256
from .html import Html, code, details, esc, join, missing, paragraph, table, tag
from .run_context import RunContext

#: Written by the demo generator (hifuse_mm.datasets.demo) into its synthetic folder.
DEMO_MARKER = f'{META}/demo_dataset.json'
AUDIT_HINT = 'run python tools/dataset_converters/audit_splits.py DATA_DIR'


def _partition(context: RunContext) -> str:
    """The fold folder of the test list (``'fold1'`` for ``meta/fold1/test.txt``), or ''."""
    dataset = (context.config.get('test_dataloader') or {}).get('dataset') or {}
    ann_file = PurePosixPath(str(dataset.get('ann_file') or f'{META}/test.txt'))
    parts = ann_file.parts
    return '/'.join(parts[1:-1]) if len(parts) > 2 and parts[0] == META else ''


def _split_name(key: str) -> Tuple[str, str]:
    """``'fold1/train'`` -> ``('fold1', 'train')``; ``'test'`` -> ``('', 'test')``."""
    partition, _, split = key.rpartition('/')
    return partition, split


def _counts_from_lists(root: Path, classes: Sequence[str]) -> Dict[str, dict]:
    """``split.json``-style counts read from the lists themselves."""
    counts = {}
    lists = [*(root / META).glob('*.txt'), *(root / META).glob('*/*.txt')]
    lists = sorted((p for p in lists if p.stem in SPLITS),
                   key=lambda p: (p.parent.name != META, p.parent.name, SPLITS.index(p.stem)))
    for path in lists:
        partition = path.parent.name if path.parent.name != META else ''
        labels = Counter(sample.label for sample in read_index(path))
        key = f'{partition}/{path.stem}' if partition else path.stem
        counts[key] = dict(total=sum(labels.values()), per_class={
            name: labels.get(i, 0) for i, name in enumerate(classes)})
    return counts


def _flow(counts: Dict[str, dict], source: Html, prepared: Html) -> Html:
    """Source -> prepared folder -> one box per split (per partition)."""
    by_partition: Dict[str, List[str]] = {}
    for key in counts:
        partition, _ = _split_name(key)
        by_partition.setdefault(partition, []).append(key)
    rows = []
    for partition, keys in sorted(by_partition.items()):
        ordered = sorted(keys, key=lambda k: SPLITS.index(_split_name(k)[1])
                         if _split_name(k)[1] in SPLITS else 9)
        splits = ''.join(
            f'<div class="box"><b>{esc(_split_name(k)[1])}</b>'
            f'{esc(" (" + partition + ")") if partition else ""}<br>'
            f'{esc(counts[k].get("total", "?"))} images</div>' for k in ordered)
        rows.append(Html(f'<div class="flow"><div class="box">{source}</div>'
                         f'<div class="arrow">&rarr;</div><div class="box">{prepared}</div>'
                         f'<div class="arrow">&rarr;</div>{splits}</div>'))
    return join(rows)


def _counts_table(counts: Dict[str, dict], classes: Sequence[str]) -> Html:
    keys = list(counts)
    rows = [[name, *(counts[k].get('per_class', {}).get(name, 0) for k in keys)]
            for name in classes]
    rows.append(['all classes', *(counts[k].get('total', '') for k in keys)])
    return table(['class', *keys], rows, numeric=[False] + [True] * len(keys))


def _checksums(files: Dict[str, str], what: str) -> Html:
    rows = [[name, code(digest)] for name, digest in sorted(files.items())]
    return details(f'{what} ({len(rows)} files, SHA-256)', table(['file', 'SHA-256'], rows))


def _audit(root: Path, partitions: Sequence[str]) -> Html:
    """The audit result of every partition the folder has an audit for."""
    parts = []
    found = False
    for partition in partitions:
        path = root / META / partition / 'audit.json' if partition else root / META / 'audit.json'
        name = partition or 'the split'
        if not path.is_file():
            parts.append(missing(f'Split audit of {name}', f'no {path}', AUDIT_HINT))
            continue
        found = True
        try:
            audit = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            parts.append(tag('p', f'{path} cannot be read ({err}); {AUDIT_HINT} again',
                             class_='problem'))
            continue
        pairs = audit.get('cross_split_pairs', 0)
        overlap = len((audit.get('groups') or {}).get('overlap') or [])
        distance = (audit.get('hash') or {}).get('distance')
        groups = (audit.get('groups') or {}).get('file')
        text = (f'Split audit of {name} ({path}): '
                + ('OK: no image, near-duplicate' if audit.get('ok') else 'LEAK:')
                + (f' {pairs} cross-split image pair(s) (exact or perceptual-hash distance <= '
                   f'{distance}), {overlap} group(s) in more than one split'
                   if not audit.get('ok') else
                   f' (perceptual-hash distance <= {distance}) or group is shared between '
                   'splits')
                + (f'; groups from {groups}' if groups else
                   '; no groups file was given, so lesion / patient overlap was not checked'))
        unreadable = len(audit.get('unreadable') or [])
        if unreadable:
            text += f'; {unreadable} image(s) could not be read'
        parts.append(tag('p', text, class_='ok' if audit.get('ok') else 'problem'))
    if not found:
        parts.append(paragraph('Without an audit the report cannot say whether the same image '
                               '(or the same lesion / patient) sits in two splits.'))
    return join(parts)


def data_for_root(root: Path, contexts: Sequence[RunContext]) -> Html:
    """The Data block of one prepared folder used by ``contexts``."""
    names = ', '.join(c.label for c in contexts)
    parts: List[object] = [tag('h3', contexts[0].data_root() or str(root)),
                           paragraph(f'Test data of: {names}.')]
    try:
        record = read_split_record(root)
    except DatasetError as err:
        record = None
        parts.append(tag('p', str(err), class_='problem'))
    classes: List[str] = []
    if record and isinstance(record.get('classes'), list):
        classes = [str(c) for c in record['classes']]
    elif (root / CLASSES_TXT).is_file():
        classes = read_classes_file(root / CLASSES_TXT)
    if not classes:
        classes = contexts[0].classes
    if record:
        counts = record.get('counts') if isinstance(record.get('counts'), dict) else {}
        sources = record.get('source_files')
        source = Html(f'{esc(record.get("dataset", "dataset"))}<br>'
                      f'{len(sources) if isinstance(sources, dict) else 0} source index '
                      'file(s)')
        prepared = Html(f'protocol <b>{esc(record.get("protocol"))}</b><br>'
                        f'seed {esc(record.get("seed"))}, {len(classes)} classes')
    else:
        demo = root / DEMO_MARKER
        try:
            counts = _counts_from_lists(root, classes)
        except (OSError, DatasetError) as err:
            counts = {}
            parts.append(tag('p', f'the split lists cannot be read: {err}', class_='problem'))
        try:
            settings = json.loads(demo.read_text()) if demo.is_file() else None
        except (OSError, ValueError):
            settings = None
        if isinstance(settings, dict):
            source = Html('synthetic demo images<br>(hifuse_mm.datasets.demo)')
            prepared = Html(f'generated, seed {esc(settings.get("seed"))}<br>'
                            f'{esc(settings.get("image_size"))} px, {len(classes)} classes')
        else:
            source = Html('source images')
            prepared = Html(f'lists in {META}/<br>{len(classes)} classes')
        parts.append(missing(f'{SPLIT_JSON}', 'this folder was not written by a dataset '
                             'converter, so its protocol, seed and source checksums are not '
                             'recorded',
                             'prepare it with tools/dataset_converters/prepare_*.py'))
    if counts:
        parts += [tag('h4', 'Split flow'), _flow(counts, source, prepared),
                  tag('h4', 'Images per split and class'), _counts_table(counts, classes)]
    if record:
        options = record.get('options') if isinstance(record.get('options'), dict) else {}
        sources = record.get('source_files')
        rows = [['dataset', record.get('dataset')], ['protocol', record.get('protocol')],
                ['seed', record.get('seed')], ['image root', record.get('image_root')],
                *[[f'option {k}', v] for k, v in sorted(options.items())]]
        parts += [tag('h4', f'Protocol ({SPLIT_JSON})'),
                  table(['', ''], [[k, '' if v is None else str(v)] for k, v in rows]),
                  _checksums(sources if isinstance(sources, dict) else {},
                             'Source index files'),
                  _checksums(record['index_files'], 'Split lists')]
    else:
        lists = sorted(p for p in (root / META).rglob('*.txt'))
        parts.append(_checksums({p.relative_to(root).as_posix(): file_sha256(p) for p in lists},
                                'Split lists (SHA-256 computed now)'))
    partitions = sorted({_partition(c) for c in contexts if c.config is not None})
    parts += [tag('h4', 'Split audit'), _audit(root, partitions or [''])]
    return join(parts)


def _test_counts(context: RunContext) -> Optional[Html]:
    """Test images per class from the predictions (when the folder cannot be read)."""
    predictions = context.predictions()
    if predictions is None:
        return None
    counts = Counter(predictions.labels.tolist())
    return table(['class', 'test images'],
                 [[name, counts.get(i, 0)] for i, name in enumerate(predictions.classes)]
                 + [['all classes', len(predictions)]], numeric=[False, True])


def data_section(contexts: Sequence[RunContext]) -> Html:
    """The Data section's content for all runs (one block per prepared folder)."""
    by_root: Dict[Path, List[RunContext]] = {}
    parts: List[object] = []
    for context in contexts:
        root = context.data_root()
        if root is None:
            parts += [tag('h3', context.label),
                      missing('The split', 'the data folder is unknown: '
                              + (context.notes[0] if context.notes else 'no config'),
                              'test with tools/test.py, which dumps the config')]
            parts.append(_test_counts(context))
            continue
        path = Path(root)
        if not path.is_dir():
            parts += [tag('h3', context.label),
                      missing('The split', f'the data folder {root} (from the run\'s config) '
                              'is not found from here',
                              'build the report where the test ran, or where the data folder '
                              'is reachable under the same path')]
            parts.append(_test_counts(context))
            continue
        by_root.setdefault(path.resolve(), []).append(context)
    for root, members in by_root.items():
        parts.append(data_for_root(root, members))
    return join(parts)
