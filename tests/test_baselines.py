"""The comparison baselines (configs/baselines/): the papers' models from MMPretrain, trained from
scratch with exactly the HiFuse recipe.

Every leaf loads, shares everything but the model with configs/hifuse/hifuse-base_<dataset>.py
(the two demo leaves: with configs/hifuse/hifuse-tiny_demo.py),
builds from MMPretrain's registry and runs one forward pass (logits and loss) on CPU at a small
input. The ISIC 2018 leaves' parameter counts, converted to 1000 classes, are those of the
HiFuse paper's Table 4.
"""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope, WEIGHT_INITIALIZERS

import hifuse_mm  # noqa: F401  (registers our modules)
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from helpers import REPO

CONFIGS = REPO / 'configs'
MODELS_DIR = CONFIGS / '_base_' / 'models' / 'baselines'
DATASETS = {'isic2018': 7, 'kvasir': 8, 'covid19ct': 2}
# Backbone type (and arch) of each baseline in MMPretrain.
BASELINES = {
    'convnext-base': ('ConvNeXt', 'base'),
    'swin-base': ('SwinTransformer', 'base'),
    'vit-base-p16': ('VisionTransformer', 'b'),
    'vit-base-p32': ('VisionTransformer', 'b'),
    'deit-base': ('VisionTransformer', 'deit-base'),
    'conformer-base-p16': ('Conformer', 'base'),
    'vgg-19': ('VGG', None),
    'mlp-mixer-large-p16': ('MlpMixer', 'l'),
    't2t-vit-t24': ('T2T_ViT', None),
}
LEAVES = [f'{model}_{data}' for model in BASELINES for data in DATASETS]
# On the synthetic demo dataset with the demo recipe (the README's worked example).
DEMO_LEAVES = ['convnext-base_demo', 'vit-base-p32_demo']
RECIPES = {**{data: f'hifuse/hifuse-base_{data}.py' for data in DATASETS},
           'demo': 'hifuse/hifuse-tiny_demo.py'}
NUM_CLASSES = {**DATASETS, 'demo': 4}
# HiFuse paper, Table 4 (ImageNet-style 1000-class heads), in millions. Its ViT-B/16 and
# ViT-B/32 figures (86.86 M, 88.30 M) include 384 px position embeddings; the recipe's 224 px
# models have the standard 86.57 M and 88.22 M.
PAPER_PARAMS_M = {
    'convnext-base': 88.59, 'swin-base': 87.77, 'vit-base-p16': 86.57, 'vit-base-p32': 88.22,
    'deit-base': 86.57, 'conformer-base-p16': 83.29, 'vgg-19': 143.68,
    'mlp-mixer-large-p16': 208.20, 't2t-vit-t24': 64.00,
}
SMALL = 64  # forward-pass input size (VGG-19's classifier needs 224)


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """Tiny forward passes are fastest single-threaded, and much slower with threads fighting
    over a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _load(name: str) -> Config:
    return Config.fromfile(str(CONFIGS / 'baselines' / f'{name}.py'))


def _split(name: str):
    model, data = name.rsplit('_', 1)
    return model, data


def _walk(value):
    """Every dict nested in a config value."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk(item)


def _num_classes(model_cfg) -> int:
    part = model_cfg.backbone if model_cfg.backbone.type == 'VGG' else model_cfg.head
    return part.num_classes


def test_every_baseline_has_three_short_leaves():
    found = sorted(p.stem for p in (CONFIGS / 'baselines').glob('*.py'))
    assert found == sorted(LEAVES + DEMO_LEAVES)
    assert sorted(p.stem for p in MODELS_DIR.glob('*.py')) == sorted(BASELINES)
    for name in LEAVES + DEMO_LEAVES:
        model, data = _split(name)
        text = (CONFIGS / 'baselines' / f'{name}.py').read_text()
        assert f"'../_base_/models/baselines/{model}.py'" in text
        assert f"'../_base_/baselines/recipe_{data}.py'" in text
        assert len(text.splitlines()) <= 10


@pytest.mark.parametrize('name', LEAVES + DEMO_LEAVES)
def test_recipe_is_the_hifuse_recipe(name):
    model, data = _split(name)
    cfg = _load(name)
    hifuse = Config.fromfile(str(CONFIGS / RECIPES[data]))
    ours = {k: v for k, v in cfg.to_dict().items() if k != 'model'}
    theirs = {k: v for k, v in hifuse.to_dict().items() if k != 'model'}
    assert ours == theirs  # data, splits, pipelines, evaluator, schedule, runtime

    backbone_type, arch = BASELINES[model]
    assert cfg.model.type == 'ImageClassifier'
    assert cfg.model.backbone.type == backbone_type
    if arch is not None:
        assert cfg.model.backbone.arch == arch
    assert _num_classes(cfg.model) == NUM_CLASSES[data] == len(cfg.classes)
    # From scratch, plain cross-entropy, no batch augmentation, no stochastic depth / dropout.
    dicts = list(_walk(cfg.model.to_dict()))
    assert not any(d.get('type') == 'Pretrained' or 'checkpoint' in d for d in dicts)
    assert cfg.load_from is None
    assert cfg.model.head.loss == dict(type='CrossEntropyLoss', loss_weight=1.0)
    assert 'train_cfg' not in cfg.model
    assert all(d.get('drop_path_rate', 0.0) == 0.0 and d.get('drop_rate', 0.0) == 0.0
               for d in dicts)
    # Every weight initialiser named in the config builds (the runner applies them).
    for init in (d.get('init_cfg') for d in dicts if d.get('init_cfg')):
        for item in init if isinstance(init, list) else [init]:
            WEIGHT_INITIALIZERS.build(dict(item))


def _build(cfg: Config, small: bool):
    model_cfg = copy.deepcopy(cfg.model)
    backbone = model_cfg.backbone
    if small and backbone.type == 'MlpMixer':
        backbone.img_size = SMALL           # token-mixing MLPs are sized for one input size
    if small and backbone.type == 'SwinTransformer':
        backbone.pad_small_map = True       # 64 px maps are smaller than the 7 x 7 window
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(dict(model_cfg, data_preprocessor=cfg.data_preprocessor))


def _paper_params_m(model: torch.nn.Module, num_classes: int) -> float:
    """Parameters with the classifier(s) widened to 1000 classes, in millions."""
    per_class = sum(m.in_features + 1 for m in model.modules()
                    if isinstance(m, torch.nn.Linear) and m.out_features == num_classes)
    params = sum(p.numel() for p in model.parameters())
    return (params + (1000 - num_classes) * per_class) / 1e6


@pytest.mark.parametrize('name', LEAVES + DEMO_LEAVES)
def test_builds_and_runs_a_forward_pass(name):
    model_name, data = _split(name)
    cfg = _load(name)
    num_classes = NUM_CLASSES[data]
    torch.manual_seed(0)
    model = _build(cfg, small=True).eval()
    for part in ('backbone', 'head'):
        assert type(getattr(model, part)).__module__.startswith('mmpretrain.models')

    size = 224 if model_name == 'vgg-19' else SMALL
    inputs = torch.rand(2, 3, size, size)
    samples = [DataSample().set_gt_label(k) for k in (0, num_classes - 1)]
    with torch.no_grad():
        feats = model.extract_feat(inputs)
        logits = model.head(feats)
        loss = model.head.loss(feats, samples)['loss']
    outputs = logits if isinstance(logits, (tuple, list)) else [logits]  # Conformer: two heads
    for out in outputs:
        assert out.shape == (2, num_classes)
        assert torch.isfinite(out).all()
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0

    if data == 'isic2018':
        if model_name == 'mlp-mixer-large-p16':  # count it at its real 224 px size
            with DefaultScope.overwrite_default_scope('mmpretrain'), torch.device('meta'):
                model = MODELS.build(cfg.model)
        assert _paper_params_m(model, num_classes) == pytest.approx(
            PAPER_PARAMS_M[model_name], abs=0.015)
