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

    def prepare(self, image: np.ndarray, path: Optional[PathLike] = None) -> PreparedImage:
        """Run the test pipeline on a BGR ``[H, W, C]`` uint8 array (as :meth:`read` gives).

        Raises:
            InputSizeError: the pipeline's output sides are not multiples of
                :data:`SIZE_DIVISOR` (32).
        """
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
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
