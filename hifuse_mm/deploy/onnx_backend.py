"""Run an exported model with onnxruntime on the CPU: a normalised batch in, logits out.

:class:`OnnxLogitsSession` is what the PyTorch path's ``model.head(model.extract_feat(x))`` is
for a :class:`~hifuse_mm.apis.Classifier`: it takes the ``[B, 3, H, W]`` float32 batch that the
data preprocessor gives and returns ``[B, num_classes]`` logits. Softmax, temperature, TTA and
the CSV are the Classifier's (:meth:`hifuse_mm.apis.Classifier.from_onnx`). A model exported
with a fixed batch of 1 is run image by image; a dynamic-batch one in one call.

:meth:`OnnxLogitsSession.from_file` reads the manifest beside the model
(:mod:`hifuse_mm.deploy.manifest`) and checks the model's SHA-256 on the very bytes it hands
to onnxruntime.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .dependencies import import_deploy_module
from .manifest import OnnxManifest, check_model_sha256, read_manifest

PathLike = Union[str, Path]


class OnnxModelError(ValueError):
    """onnxruntime cannot load the model file, or the graph does not have the inputs and
    outputs its manifest describes; the message names the file."""


class OnnxLogitsSession:
    """An onnxruntime CPU session over an exported classifier.

    Args:
        model: The ``.onnx`` file, or its bytes.
        height, width: The input size the graph was exported for.
        batch: The graph's fixed batch size, or None for a dynamic batch dimension.
        input_name, output_name: The graph's tensor names.
        threads: onnxruntime's intra-op threads (None: its default, the physical cores).
        name: What to call the model in messages (default: the file name).
    """

    def __init__(self, model: Union[PathLike, bytes], height: int, width: int,
                 batch: Optional[int] = None, input_name: str = 'images',
                 output_name: str = 'logits', threads: Optional[int] = None,
                 name: Optional[str] = None) -> None:
        ort = import_deploy_module('onnxruntime', 'ONNX inference')
        self.name = name or (str(model) if not isinstance(model, bytes) else 'the ONNX model')
        self.height, self.width, self.batch = height, width, batch
        self.input_name, self.output_name = input_name, output_name
        #: The manifest the model was loaded with (:meth:`from_file`), else None.
        self.manifest: Optional[OnnxManifest] = None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(source, sess_options=options,
                                                providers=['CPUExecutionProvider'])
        except Exception as err:  # noqa: BLE001  (onnxruntime raises its own error classes)
            raise OnnxModelError(f'{self.name}: onnxruntime cannot load the model '
                                 f'({type(err).__name__}: {err}); export it again with '
                                 'tools/deployment/export_onnx.py') from err
        self._check_signature()

    @classmethod
    def from_file(cls, model_path: PathLike, threads: Optional[int] = None,
                  manifest: Optional[OnnxManifest] = None) -> 'OnnxLogitsSession':
        """Load ``model_path`` with the manifest beside it, its SHA-256 checked.

        Raises:
            hifuse_mm.deploy.ManifestError: no manifest, an invalid one, or a checksum that
                does not match.
            OnnxModelError: onnxruntime cannot load the file, or its input / output are not the
                manifest's.
        """
        model_path = Path(model_path)
        manifest = manifest or read_manifest(model_path, verify=False)
        data = model_path.read_bytes()
        check_model_sha256(manifest, model_path, hashlib.sha256(data).hexdigest())
        session = cls(data, manifest.height, manifest.width, manifest.batch,
                      manifest.input_name, manifest.output_name, threads=threads,
                      name=str(model_path))
        session.manifest = manifest
        return session

    def _check_signature(self) -> None:
        inputs = {item.name: item for item in self.session.get_inputs()}
        outputs = {item.name for item in self.session.get_outputs()}
        if self.input_name not in inputs or self.output_name not in outputs:
            raise OnnxModelError(
                f'{self.name}: the graph has inputs {sorted(inputs)} and outputs '
                f'{sorted(outputs)}, not {self.input_name!r} -> {self.output_name!r} as its '
                'manifest says; the manifest belongs to another model')
        shape = list(inputs[self.input_name].shape)
        expected = [self.batch, 3, self.height, self.width]
        batch_ok = isinstance(shape[0], int) == (self.batch is not None) and (
            self.batch is None or shape[0] == self.batch) if shape else False
        if len(shape) != 4 or list(shape[1:]) != expected[1:] or not batch_ok:
            raise OnnxModelError(
                f'{self.name}: the graph takes input {shape}, its manifest says '
                f'{["dynamic" if self.batch is None else self.batch, 3, self.height, self.width]}'
                '; the manifest belongs to another model')

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Logits ``[B, num_classes]`` (float32) of a normalised ``[B, 3, H, W]`` batch."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or not len(batch) or tuple(batch.shape[1:]) != (3, self.height,
                                                                            self.width):
            raise ValueError(f'{self.name} takes [B, 3, {self.height}, {self.width}] inputs, '
                             f'got {list(batch.shape)}')
        step = self.batch or len(batch)
        parts = [self.session.run([self.output_name],
                                  {self.input_name: batch[start:start + step]})[0]
                 for start in range(0, len(batch), step)]
        return np.concatenate(parts, axis=0).astype(np.float32, copy=False)
