"""Classify images from Python: ``Classifier(config, checkpoint).predict(images_or_paths)``.

Example::

    from hifuse_mm.apis import Classifier

    clf = Classifier('configs/hifuse/hifuse-tiny_isic2018.py', 'hifuse-tiny-1a2b3c4d.pth')
    for pred in clf.predict(['a.jpg', 'b.jpg']):
        print(pred.name, pred.score, dict(zip(clf.classes, pred.probabilities)))

An exported model (``tools/deployment/export_onnx.py``) runs the same way with onnxruntime,
without a config or checkpoint: ``Classifier.from_onnx('model.onnx')`` (an
:class:`OnnxClassifier`; its manifest ``model.json`` beside it gives the classes and the
preprocessing).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..deploy.onnx_backend import OnnxLogitsSession
from ..utils.speed import autocast_context, autocast_dtype, maybe_compile, warn_slow_precision
from .images import PathLike
from .model_loading import ConfigLike, LoadedModel, load_model
from .onnx_preprocess import manifest_preprocessor
from .preprocess import ImagePreprocessor, PreparedImage

ImageLike = Union[str, Path, np.ndarray]


def _checked_temperature(temperature: float) -> float:
    temperature = float(temperature)
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f'temperature must be a finite number > 0, got {temperature}')
    return temperature


@dataclass
class Prediction:
    """The model's answer for one image.

    Attributes:
        label: Index of the predicted class.
        name: Name of the predicted class.
        score: Probability of the predicted class.
        probabilities: Probability of every class, in label order (sums to 1).
    """

    label: int
    name: str
    score: float
    probabilities: np.ndarray


class Classifier:
    """A trained HiFuse / HEMF classifier for new images.

    Args:
        config: The config the checkpoint was trained with (file or object); its test pipeline
            decides how images are resized and cropped.
        checkpoint: Training checkpoint, published checkpoint or converted released weights.
        device: ``'cpu'``, ``'cuda'``...; None: CUDA when available.
        tta: Test-time augmentation: average the class probabilities of the image and its
            horizontal mirror (what ``tools/test.py --tta`` does with our configs).
        cfg_options: Config overrides, as ``--cfg-options`` gives them (e.g. another test
            pipeline input size).
        precision: ``'fp32'`` (default), or ``'bf16'`` / ``'fp16'`` autocast (mixed precision;
            bf16 is the fast one on CPUs with AMX / AVX512-BF16; see docs/benchmarks.md for
            how often it changes a prediction). Probabilities are always computed in fp32.
            fp16 on a CPU is emulated (tens of times slower than fp32): a ``RuntimeWarning``
            says so and suggests bf16.
        compile: ``torch.compile`` the backbone, neck and head; falls back to eager with a
            warning when compiling fails (:func:`hifuse_mm.utils.speed.maybe_compile`).
        trust_checkpoint: Allow full unpickling of a checkpoint that does not load
            weights-only; it can run code, so only for files you trust (SECURITY.md).
        temperature: Temperature scaling: probabilities are ``softmax(logits / temperature)``
            (each view's before the TTA average); a finite number > 0, e.g. the one
            :func:`hifuse_mm.evaluation.temperature.fit_temperature` fitted on the validation
            split. The default 1 leaves the probabilities unchanged; any value keeps the
            predicted class. :meth:`logits` are never scaled.
    """

    def __init__(self, config: ConfigLike, checkpoint: PathLike,
                 device: Optional[Union[str, torch.device]] = None, tta: bool = False,
                 cfg_options: Optional[dict] = None, precision: str = 'fp32',
                 compile: bool = False, trust_checkpoint: bool = False,
                 temperature: float = 1.0) -> None:
        self.temperature = _checked_temperature(temperature)
        self.loaded: LoadedModel = load_model(config, checkpoint, device, cfg_options,
                                              trust_checkpoint=trust_checkpoint)
        self.preprocessor = ImagePreprocessor(self.loaded.cfg,
                                              self.loaded.model.data_preprocessor)
        self.tta = tta
        self.precision = precision
        autocast_dtype(precision)  # validates the name early
        warn_slow_precision(self.loaded.device, precision)
        self._forward = self._logits_fp32
        if compile:
            maybe_compile(self, method='_forward')

    @classmethod
    def from_onnx(cls, model: PathLike, tta: bool = False, temperature: float = 1.0,
                  threads: Optional[int] = None) -> 'OnnxClassifier':
        """A classifier running an exported model with onnxruntime (CPU); see
        :class:`OnnxClassifier`."""
        return OnnxClassifier(model, tta=tta, temperature=temperature, threads=threads)

    @property
    def classes(self) -> Tuple[str, ...]:
        """Class names in label order."""
        return self.loaded.classes

    @property
    def model(self) -> torch.nn.Module:
        """The underlying MMPretrain ``ImageClassifier`` (eval mode)."""
        return self.loaded.model

    def read(self, path: PathLike) -> np.ndarray:
        """Read an image file as the config's pipeline does (BGR uint8); raises ImageReadError."""
        return self.preprocessor.read(path)

    def prepare(self, image: ImageLike, name: str = 'image array') -> PreparedImage:
        """Read (if a path) and transform one image for the model.

        An array must be uint8 ``[H, W, 3]`` BGR (or ``[H, W]`` grayscale);
        :class:`~hifuse_mm.apis.preprocess.ImageArrayError` (a ``ValueError``) otherwise, naming
        it as ``name``.
        """
        if isinstance(image, np.ndarray):
            return self.preprocessor.prepare(image, name=name)
        return self.preprocessor.prepare(self.read(image), path=image)

    def _logits_fp32(self, inputs: torch.Tensor) -> torch.Tensor:
        model = self.loaded.model
        return model.head(model.extract_feat(inputs))

    @torch.no_grad()
    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Class scores before softmax for a normalised ``[B, C, H, W]`` batch (fp32)."""
        with autocast_context(inputs.device, self.precision):
            return self._forward(inputs).float()

    def _scaled(self, logits: torch.Tensor) -> torch.Tensor:
        """fp32 ``logits / temperature`` (unchanged at temperature 1)."""
        logits = logits.float()
        return logits if self.temperature == 1.0 else logits / self.temperature

    @torch.no_grad()
    def probabilities(self, inputs: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``[B, num_classes]`` for a normalised batch (TTA if enabled)."""
        probs = self._scaled(self.logits(inputs)).softmax(dim=1)
        if self.tta:
            mirrored = self._scaled(self.logits(inputs.flip(-1))).softmax(dim=1)
            probs = (probs + mirrored) / 2
        return probs

    def predict_prepared(self, prepared: Sequence[PreparedImage]) -> List[Prediction]:
        """Predict images already passed through :meth:`prepare` (any mix of sizes)."""
        results: List[Optional[Prediction]] = [None] * len(prepared)
        by_shape: dict = {}
        for index, item in enumerate(prepared):
            by_shape.setdefault(tuple(item.packed.shape), []).append(index)
        for indices in by_shape.values():
            batch = self.preprocessor.batch([prepared[i] for i in indices])
            probs = self.probabilities(batch).cpu().numpy()
            for index, row in zip(indices, probs):
                label = int(row.argmax())
                results[index] = Prediction(label=label, name=self.classes[label],
                                            score=float(row[label]), probabilities=row)
        return results  # type: ignore[return-value]

    def predict(self, images: Union[ImageLike, Sequence[ImageLike]],
                batch_size: int = 16) -> List[Prediction]:
        """Classify images.

        Args:
            images: One or several image paths or BGR ``[H, W, 3]`` uint8 arrays (as
                ``cv2.imread`` / ``mmcv.imread`` give; ``[H, W]`` uint8 grayscale is
                replicated to 3 channels, as for a grayscale file). Float, 4-channel and empty
                arrays are refused (the error says what to pass): a float array's scale is a
                guess, so convert it yourself.
            batch_size: Images per forward pass.

        Returns:
            One :class:`Prediction` per image, in order.

        Raises:
            hifuse_mm.apis.ImageReadError: a path is not a readable image (use
                ``tools/infer.py`` to skip such files instead).
            hifuse_mm.apis.ImageArrayError: an array is not a uint8 image (names it, e.g.
                ``images[2]``, its shape and dtype, and says what to pass).
        """
        single = isinstance(images, (str, Path, np.ndarray))
        if single:
            images = [images]
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        names = ['image array' if single else f'images[{i}]' for i in range(len(images))]
        predictions: List[Prediction] = []
        for start in range(0, len(images), batch_size):
            chunk = [self.prepare(image, names[start + i])
                     for i, image in enumerate(images[start:start + batch_size])]
            predictions.extend(self.predict_prepared(chunk))
        return predictions


class OnnxClassifier(Classifier):
    """A :class:`Classifier` whose model is an exported ONNX file run by onnxruntime (CPU).

    Everything but the forward pass is the PyTorch classifier's: the preprocessing (the same
    :class:`~hifuse_mm.apis.ImagePreprocessor`, rebuilt from the manifest), the batching,
    softmax, temperature, TTA and :meth:`predict` / :meth:`predict_prepared`, so its
    predictions equal those of ``Classifier(config, checkpoint)`` to the gate's tolerance. No
    config, checkpoint or training package is read; the model runs in fp32.

    Args:
        model: The ``.onnx`` file; its manifest (same name, ``.json``) must be beside it and
            record the file's SHA-256.
        tta: Average the probabilities of the image and its horizontal mirror.
        temperature: As for :class:`Classifier`.
        threads: onnxruntime's intra-op threads (None: its default).

    Raises:
        hifuse_mm.deploy.ManifestError: no manifest, an invalid one, or one recording another
            file's checksum.
        hifuse_mm.deploy.OnnxModelError: onnxruntime cannot load the file.
        hifuse_mm.deploy.DeployDependencyError: onnxruntime is not installed.
    """

    def __init__(self, model: PathLike, tta: bool = False, temperature: float = 1.0,
                 threads: Optional[int] = None) -> None:
        self.temperature = _checked_temperature(temperature)
        self.model_path = Path(model)
        self.session = OnnxLogitsSession.from_file(self.model_path, threads=threads)
        self.manifest = self.session.manifest
        self.preprocessor = manifest_preprocessor(self.manifest, str(self.model_path))
        self.loaded = None
        self.tta = tta
        self.precision = 'fp32'
        self._forward = self._onnx_logits

    @property
    def classes(self) -> Tuple[str, ...]:
        """Class names in label order (from the manifest)."""
        return self.manifest.classes

    @property
    def model(self) -> None:
        """None: an ONNX classifier has no PyTorch module (see :attr:`session`)."""
        return None

    def _onnx_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session(inputs.detach().cpu().numpy()))

    @torch.no_grad()
    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """Class scores before softmax for a normalised ``[B, C, H, W]`` batch (fp32)."""
        return self._forward(inputs)
