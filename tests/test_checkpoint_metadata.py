"""Checkpoint metadata is data, never a path (issue 14, item 4).

Class names in a checkpoint's ``meta.dataset_meta.classes`` must be a list of strings; a string
(which a config may use as the path of a classes.txt) or anything else is refused by
``load_model``, ``Classifier`` and ``tools/infer.py`` with an error naming the checkpoint and
the key, and the file such a string names is never read. A config's own ``classes`` path is
still read (the user's config, as MMPretrain does).
"""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hifuse_mm.apis import Classifier, ModelLoadError, load_model
from hifuse_mm.datasets import DEMO_CLASSES
from tiny_config import NARROW_HIFUSE, inference_pipeline, write_config, write_narrow_checkpoint
from tool_runner import call_tool

SECRET = ['s3cret-line-one', 's3cret-line-two', 's3cret-line-three', 's3cret-line-four']


@pytest.fixture(scope='module')
def space(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('ckpt_meta')
    write_narrow_checkpoint(root, 32, config_name='narrow.py', checkpoint_name='weights.pt')
    # A file the checkpoint must not be able to read: as many lines as the model has classes.
    (root / 'secret.txt').write_text('\n'.join(SECRET) + '\n')
    cv2.imwrite(str(root / 'image.png'), np.full((40, 40, 3), 90, np.uint8))
    return root


def save_checkpoint(space: Path, name: str, meta) -> Path:
    path = space / f'{name}.pth'
    torch.save(dict(state_dict=torch.load(space / 'weights.pt', weights_only=True), meta=meta),
               path)
    return path


BAD_META = {
    'path_string': dict(dataset_meta=dict(classes='{secret}')),
    'numbers': dict(dataset_meta=dict(classes=[1, 2, 3, 4])),
    'dict': dict(dataset_meta=dict(classes={'a': 0, 'b': 1, 'c': 2, 'd': 3})),
    'nested': dict(dataset_meta=dict(classes=[['a'], 'b', 'c', 'd'])),
    'meta_string': dict(dataset_meta='{secret}'),
}


@pytest.mark.parametrize('case', sorted(BAD_META))
def test_load_model_refuses_class_names_that_are_not_a_list_of_strings(space, case):
    meta = {key: ({k: (v.format(secret=space / 'secret.txt') if isinstance(v, str) else v)
                   for k, v in value.items()} if isinstance(value, dict)
                  else value.format(secret=space / 'secret.txt'))
            for key, value in BAD_META[case].items()}
    checkpoint = save_checkpoint(space, case, meta)
    with pytest.raises(ModelLoadError) as info:
        load_model(space / 'narrow.py', checkpoint, device='cpu')
    message = str(info.value)
    assert str(checkpoint) in message and 'meta.dataset_meta' in message
    assert '\n' not in message and not any(line in message for line in SECRET)


def test_classifier_and_infer_refuse_a_path_in_the_checkpoint(space, tmp_path):
    checkpoint = save_checkpoint(space, 'infer_path',
                                 dict(dataset_meta=dict(classes=str(space / 'secret.txt'))))
    with pytest.raises(ModelLoadError, match=r'meta\.dataset_meta\.classes must be a list'):
        Classifier(space / 'narrow.py', checkpoint, device='cpu')
    out = tmp_path / 'predictions.csv'
    result = call_tool(tmp_path, 'infer.py', space / 'narrow.py', checkpoint,
                       space / 'image.png', '--out', out, '--device', 'cpu')
    assert result.returncode != 0
    assert 'meta.dataset_meta.classes' in result.stderr and str(checkpoint) in result.stderr
    assert 'Traceback' not in result.stderr
    shown = result.stdout + result.stderr + (out.read_text() if out.exists() else '')
    assert not any(line in shown for line in SECRET)


def test_good_names_and_the_configs_own_class_file_still_work(space, tmp_path):
    names = ['w', 'x', 'y', 'z']
    loaded = load_model(space / 'narrow.py',
                        save_checkpoint(space, 'good', dict(dataset_meta=dict(classes=names))),
                        device='cpu')
    assert loaded.classes == tuple(names)
    # No names in the checkpoint: the config's dataset classes (here the demo's).
    plain = load_model(space / 'narrow.py', save_checkpoint(space, 'plain', dict(epoch=1)),
                       device='cpu')
    assert plain.classes == DEMO_CLASSES
    # The user's own config may give the path of a classes.txt, as MMPretrain allows.
    (tmp_path / 'classes.txt').write_text('one\ntwo\nthree\nfour\n')
    classes_line = (f"test_dataloader = dict(dataset=dict(classes="
                    f"{str(tmp_path / 'classes.txt')!r}))\n")
    config = write_config(tmp_path / 'with_file.py',
                          body=NARROW_HIFUSE + inference_pipeline(32) + classes_line)
    from_file = load_model(config, save_checkpoint(space, 'plain', dict(epoch=1)), device='cpu')
    assert from_file.classes == ('one', 'two', 'three', 'four')


def test_checkpoint_classes_helper():
    from hifuse_mm.apis.model_loading import checkpoint_classes
    assert checkpoint_classes(None) is None
    assert checkpoint_classes({}) is None
    assert checkpoint_classes(dict(dataset_meta=dict(classes=('a', 'b')))) == ('a', 'b')
    with pytest.raises(ModelLoadError, match=r'ckpt\.pth: meta\.dataset_meta\.classes .* got a '
                       r'str'):
        checkpoint_classes(dict(dataset_meta=dict(classes='/etc/passwd')), 'ckpt.pth')
    with pytest.raises(ModelLoadError, match=r'ckpt\.pth: its `meta` is a list'):
        checkpoint_classes(['x'], 'ckpt.pth')
