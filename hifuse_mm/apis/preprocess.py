"""Turn images into model inputs the way the config's test pipeline does.

The pipeline is ``test_dataloader.dataset.pipeline`` (else ``test_pipeline``) from the config;
its image-loading step (``CheckedLoadImageFromFile``, or mmcv's ``LoadImageFromFile``) is
replaced by :func:`hifuse_mm.apis.images.read_image` (same decoder, same options) so that
in-memory arrays and files go the same way, then the model's data preprocessor normalises (and
converts BGR to RGB) exactly as in ``tools/test.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
import torch.nn as nn
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.registry import DefaultScope

from ..models.backbones.common import TwoBranchBackbone
from .images import PathLike, read_image

#: Both backbones need input sides that are multiples of this (their total downsampling).
SIZE_DIVISOR: int = TwoBranchBackbone.size_divisor


class InputSizeError(ValueError):
    """The config's test pipeline gives inputs the models cannot take."""


class ImageArrayError(ValueError):
    """An image array the models cannot take (dtype, shape, empty); the message says what to
    pass instead."""


#: What an in-memory image must be, for messages.
ARRAY_RULE = ('pass a BGR uint8 array [H, W, 3] as cv2.imread gives (or [H, W] / [H, W, 1] '
              'grayscale)')


def check_image_array(image: np.ndarray, color: bool = True,
                      name: str = 'image array') -> np.ndarray:
    """Validate an in-memory image; returns it as the file path would give it.

    Accepted: uint8 ``[H, W, 3]`` (BGR, as ``cv2.imread`` gives) and uint8 grayscale ``[H, W]`` /
    ``[H, W, 1]``, which (with ``color``, the configs' ``color_type='color'``) is replicated to
    3 channels, as a grayscale file is. Refused with :class:`ImageArrayError`: empty arrays, any
    other dtype (float arrays included: their scale, 0..1 or 0..255, is a guess; convert them
    yourself, e.g. ``(image * 255).round().astype(np.uint8)``), and other channel counts (4:
    drop the alpha channel, ``image[..., :3]``, as the file path does for RGBA files).
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f'{name}: expected a numpy array, got {type(image).__name__}; '
                        f'{ARRAY_RULE}')
    shape = tuple(image.shape)
    if image.ndim not in (2, 3):
        raise ImageArrayError(f'{name} has shape {shape} ({image.ndim} dimensions); {ARRAY_RULE}'
                              + ('; for a batch, pass a list of images' if image.ndim == 4
                                 else ''))
    if image.size == 0:
        raise ImageArrayError(f'{name} is empty (shape {shape}); {ARRAY_RULE}')
    if image.dtype != np.uint8:
        hint = ('; float arrays are refused because their scale (0..1 or 0..255) is a guess: '
                'convert it yourself, e.g. (image * 255).round().astype(np.uint8) for 0..1 '
                'values' if image.dtype.kind == 'f' else '')
        raise ImageArrayError(f'{name} has dtype {image.dtype} (shape {shape}); {ARRAY_RULE}'
                              f'{hint}')
    channels = 1 if image.ndim == 2 else shape[2]
    if channels not in (1, 3):
        hint = ('; drop the alpha channel with image[..., :3] (as is done for RGBA files)'
                if channels == 4 else '')
        raise ImageArrayError(f'{name} has {channels} channels (shape {shape}); {ARRAY_RULE}'
                              f'{hint}')
    if channels == 1 and color:
        return cv2.cvtColor(image.reshape(shape[:2]), cv2.COLOR_GRAY2BGR)
    return image


@dataclass
class PreparedImage:
    """One image after the test pipeline, before normalisation.

    Attributes:
        packed: ``[C, H, W]`` uint8 tensor, what ``PackInputs`` gives the data preprocessor.
        shown: ``[H, W, 3]`` uint8 RGB array of the same pixels, for display.
    """

    packed: torch.Tensor
    shown: np.ndarray


def test_pipeline_of(cfg: Config) -> List[dict]:
    """The config's test pipeline (a list of transform dicts)."""
    dataset = (cfg.get('test_dataloader') or {}).get('dataset') or {}
    pipeline = dataset.get('pipeline') or cfg.get('test_pipeline')
    if not pipeline:
        raise ValueError('the config has no test pipeline (test_dataloader.dataset.pipeline '
                         'or test_pipeline); it decides how images are resized for the model')
    return [dict(step) for step in pipeline]


class ImagePreprocessor:
    """Read and transform images for a model built from ``cfg``.

    Args:
        cfg: The model's config (its test pipeline is used).
        data_preprocessor: The model's ``data_preprocessor`` module (normalisation, BGR->RGB).
    """

    def __init__(self, cfg: Config, data_preprocessor: nn.Module) -> None:
        steps = test_pipeline_of(cfg)
        self.decode_args: Dict[str, Any] = {}
        if steps[0].get('type') in ('CheckedLoadImageFromFile', 'LoadImageFromFile',
                                    'mmcv.LoadImageFromFile'):
            load = steps.pop(0)
            self.decode_args = dict(color_type=load.get('color_type', 'color'),
                                    backend=load.get('imdecode_backend'))
        with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmpretrain')):
            self.transforms = Compose(steps)
        self.data_preprocessor = data_preprocessor

    def read(self, path: PathLike) -> np.ndarray:
        """Read an image file with the pipeline's decoding options (BGR uint8)."""
        return read_image(path, **self.decode_args)

    def prepare(self, image: np.ndarray, path: Optional[PathLike] = None,
                name: str = 'image array') -> PreparedImage:
        """Run the test pipeline on a BGR ``[H, W, 3]`` uint8 array (as :meth:`read` gives).

        An array given without ``path`` (not from :meth:`read`) is validated first
        (:func:`check_image_array`; ``name`` names it in errors).

        Raises:
            ImageArrayError: not a uint8 [H, W, 3] / [H, W] array, or empty.
            InputSizeError: the pipeline's output sides are not multiples of
                :data:`SIZE_DIVISOR` (32).
        """
        if path is None:
            image = check_image_array(
                image, self.decode_args.get('color_type', 'color') == 'color', name)
        elif not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
            raise TypeError(f'expected an [H, W, C] image array, got {type(image).__name__}')
        results = dict(img=image, img_shape=image.shape[:2], ori_shape=image.shape[:2],
                       img_path=str(path) if path is not None else None)
        packed = self.transforms(results)['inputs']
        height, width = packed.shape[-2:]
        if height % SIZE_DIVISOR or width % SIZE_DIVISOR:
            name = f'{Path(path).name}: ' if path is not None else ''
            raise InputSizeError(
                f'{name}the config\'s test pipeline gives a {height}x{width} input; HiFuse and '
                f'HEMF need sides that are multiples of {SIZE_DIVISOR}. Add a resize/crop to '
                'the test pipeline (e.g. ResizeEdge + CenterCrop to 224).')
        return PreparedImage(packed=packed, shown=_display_rgb(packed))

    def batch(self, prepared: Sequence[PreparedImage]) -> torch.Tensor:
        """Normalise images of one size into a ``[B, C, H, W]`` float tensor on the model device."""
        shapes = {tuple(item.packed.shape) for item in prepared}
        if len(shapes) != 1:
            raise ValueError(f'a batch needs images of one size, got {sorted(shapes)}')
        data = self.data_preprocessor(dict(inputs=[item.packed for item in prepared]),
                                      training=False)
        return data['inputs']


def _display_rgb(packed: torch.Tensor) -> np.ndarray:
    """``[C, H, W]`` BGR (or gray) uint8 tensor -> ``[H, W, 3]`` RGB uint8 array."""
    array = packed.detach().cpu().numpy().transpose(1, 2, 0)
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    else:
        array = array[..., 2::-1]
    return np.ascontiguousarray(array.astype(np.uint8))
