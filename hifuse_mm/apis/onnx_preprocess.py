"""The preprocessing of an exported model: from a config to its manifest, and back.

:func:`preprocessing_of` reads what the PyTorch path does to an image from the config's test
pipeline and the model's data preprocessor (mean, std, ``to_rgb``, padding), for the manifest
(:class:`hifuse_mm.deploy.Preprocessing`). :func:`manifest_preprocessor` turns a manifest
back into an :class:`~hifuse_mm.apis.ImagePreprocessor`, the class the PyTorch
:class:`~hifuse_mm.apis.Classifier` uses, with the same mmcv transforms and MMPretrain's
``ClsDataPreprocessor``: an image reaches the ONNX model as it reaches the PyTorch one (the
export checks that the two give equal tensors).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import DefaultScope

from ..deploy.manifest import OnnxManifest, Preprocessing, describe_pipeline
from .images import PathLike
from .preprocess import ImagePreprocessor, InputSizeError, PreparedImage, test_pipeline_of

#: The data preprocessor the manifest can describe (MMPretrain's, which our configs use).
SUPPORTED_DATA_PREPROCESSOR = 'ClsDataPreprocessor'
_LOAD_STEPS = ('CheckedLoadImageFromFile', 'LoadImageFromFile', 'mmcv.LoadImageFromFile')


class PreprocessingRecordError(ValueError):
    """The config's preprocessing cannot be written into a manifest; the message says why."""


def _json_ready(value: Any, where: str) -> Any:
    """``value`` with tuples as lists, refused if JSON cannot hold it exactly."""
    if isinstance(value, (list, tuple)):
        return [_json_ready(item, where) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_ready(item, f'{where}.{key}') for key, item in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise PreprocessingRecordError(
        f'the test pipeline holds {where} = {value!r} (a {type(value).__name__}), which a JSON '
        'manifest cannot record; use plain numbers, strings and lists in the test pipeline')


def preprocessing_of(cfg: Config, data_preprocessor: nn.Module,
                     decode_args: Dict[str, Any]) -> Preprocessing:
    """What the PyTorch path does to an image, for the manifest.

    Args:
        cfg: The model's config (its test pipeline, ``default_scope``).
        data_preprocessor: The built model's ``data_preprocessor``.
        decode_args: :attr:`ImagePreprocessor.decode_args` of the config's preprocessor.

    Raises:
        PreprocessingRecordError: a data preprocessor other than MMPretrain's
            ``ClsDataPreprocessor``, or a pipeline value JSON cannot hold.
    """
    kind = type(data_preprocessor).__name__
    if kind != SUPPORTED_DATA_PREPROCESSOR:
        raise PreprocessingRecordError(
            f'the model\'s data preprocessor is {kind}; the ONNX manifest can describe '
            f'MMPretrain\'s {SUPPORTED_DATA_PREPROCESSOR} (mean, std, to_rgb) only')
    steps = test_pipeline_of(cfg)
    if steps and steps[0].get('type') in _LOAD_STEPS:
        steps = steps[1:]
    pipeline = [_json_ready(dict(step), f'test_pipeline[{index + 1}]')
                for index, step in enumerate(steps)]
    if getattr(data_preprocessor, '_enable_normalize', False):
        mean = [float(v) for v in data_preprocessor.mean.flatten().tolist()]
        std = [float(v) for v in data_preprocessor.std.flatten().tolist()]
    else:
        mean, std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    if len(mean) == 1:
        mean, std = mean * 3, std * 3
    return Preprocessing(
        decode={key: value for key, value in decode_args.items()},
        pipeline=pipeline, resize_rule=describe_pipeline(pipeline), mean=mean, std=std,
        to_rgb=bool(getattr(data_preprocessor, 'to_rgb', False)),
        pad_size_divisor=int(getattr(data_preprocessor, 'pad_size_divisor', 1)),
        pad_value=float(getattr(data_preprocessor, 'pad_value', 0.0)),
        scope=str(cfg.get('default_scope') or 'mmpretrain'))


class FixedSizePreprocessor(ImagePreprocessor):
    """An :class:`ImagePreprocessor` for a model exported at one input size: an image whose
    pipeline output has another size is refused (:class:`InputSizeError`, which
    ``tools/infer.py`` records as that file's error).

    Args:
        cfg, data_preprocessor: As for :class:`ImagePreprocessor`.
        height, width: The model's input size.
        model_name: The model, for messages.
    """

    def __init__(self, cfg: Config, data_preprocessor: nn.Module, height: int, width: int,
                 model_name: str = 'the model') -> None:
        super().__init__(cfg, data_preprocessor)
        self.height, self.width, self.model_name = height, width, model_name

    def prepare(self, image, path: Optional[PathLike] = None,
                name: str = 'image array') -> PreparedImage:
        prepared = super().prepare(image, path=path, name=name)
        height, width = prepared.packed.shape[-2:]
        if (height, width) != (self.height, self.width):
            shown = f'{Path(path).name}' if path is not None else name
            raise InputSizeError(
                f'{shown}: the preprocessing gives a {height}x{width} input, and '
                f'{self.model_name} was exported for {self.height}x{self.width} only; export '
                'the model with a test pipeline that resizes every image to one size (e.g. '
                'ResizeEdge + CenterCrop), or pass images of that size')
        return prepared


def manifest_config(preprocessing: Preprocessing) -> Config:
    """A config holding just the manifest's test pipeline (loading step included)."""
    steps: List[dict] = []
    if preprocessing.decode:
        steps.append(dict(type='LoadImageFromFile',
                          color_type=preprocessing.decode.get('color_type', 'color'),
                          imdecode_backend=preprocessing.decode.get('backend')))
    steps.extend(dict(step) for step in preprocessing.pipeline)
    return Config(dict(default_scope=preprocessing.scope, test_pipeline=steps))


def manifest_preprocessor(manifest: OnnxManifest,
                          model_name: str = 'the model') -> FixedSizePreprocessor:
    """The preprocessor a manifest describes: same transforms, same normalisation, and the
    model's input size enforced."""
    from mmpretrain.registry import MODELS

    prep = manifest.preprocessing
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        data_preprocessor = MODELS.build(dict(
            type=SUPPORTED_DATA_PREPROCESSOR, mean=list(prep.mean), std=list(prep.std),
            to_rgb=prep.to_rgb, pad_size_divisor=prep.pad_size_divisor,
            pad_value=prep.pad_value))
    return FixedSizePreprocessor(manifest_config(prep), data_preprocessor.eval(),
                                 manifest.height, manifest.width, model_name)

