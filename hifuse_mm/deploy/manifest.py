"""The manifest beside an exported model: ``model.json`` next to ``model.onnx``.

An ONNX file holds the network only. Everything else a user of it must reproduce to get the
PyTorch path's predictions is in the manifest, written by ``tools/deployment/export_onnx.py``
and read by ``tools/infer.py`` / :meth:`hifuse_mm.apis.Classifier.from_onnx`:

* the class names, in label order;
* the input: tensor names, height and width (fixed), the batch size (fixed at 1, or dynamic);
* the preprocessing: how files are decoded, the config's test pipeline after its loading step
  (the resize / crop rule, run by the same mmcv transforms), the data preprocessor's mean, std
  and channel order (``to_rgb``), and its padding;
* provenance: the config, the checkpoint's SHA-256, the versions of hifuse-mm, torch and the
  ONNX packages, the opset, and the figures of the parity gate the export passed;
* the SHA-256 of the ``.onnx`` file itself, checked on every load
  (:func:`read_manifest`), so that a manifest is never used with another model's file.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ..utils.atomic_files import atomic_write_text
from ..utils.file_hash import file_sha256

PathLike = Union[str, Path]

#: ``format`` of a manifest, and the layout version this code writes and reads.
MANIFEST_FORMAT = 'hifuse-mm onnx model manifest'
MANIFEST_VERSION = 1
#: Names of the exported graph's input and output.
INPUT_NAME = 'images'
OUTPUT_NAME = 'logits'


class ManifestError(ValueError):
    """A model file without a usable manifest, or a manifest that does not belong to it; the
    message names the file and what to do."""


def manifest_path(model_path: PathLike) -> Path:
    """Where the manifest of ``model_path`` lives: same folder and stem, ``.json``."""
    return Path(model_path).with_suffix('.json')


@dataclass(frozen=True)
class Preprocessing:
    """How an image file becomes the model's input (what the PyTorch path does).

    Attributes:
        decode: ``LoadImageFromFile``'s options: ``color_type`` and ``backend``.
        pipeline: The config's test pipeline after its loading step (transform dicts; the last
            one packs the image); run by :class:`hifuse_mm.apis.ImagePreprocessor`.
        resize_rule: The same pipeline in words, for people.
        mean: Per-channel mean subtracted from the 0-255 pixels (model channel order).
        std: Per-channel divisor after the mean.
        to_rgb: Whether the BGR-decoded image is turned to RGB before normalisation.
        pad_size_divisor: The data preprocessor's batch padding (1: none).
        pad_value: Value of that padding.
        scope: The registry scope the pipeline's transform names are looked up in (the
            config's ``default_scope``).
    """

    decode: Dict[str, Any]
    pipeline: List[Dict[str, Any]]
    resize_rule: str
    mean: List[float]
    std: List[float]
    to_rgb: bool
    pad_size_divisor: int = 1
    pad_value: float = 0.0
    scope: str = 'mmpretrain'

    @property
    def channel_order(self) -> str:
        """Channel order of the model's input: ``'RGB'`` or ``'BGR'`` (files decode to BGR)."""
        return 'RGB' if self.to_rgb else 'BGR'


@dataclass(frozen=True)
class OnnxManifest:
    """Everything about an exported model that its ``.onnx`` file does not hold.

    Attributes:
        model_file: File name of the model (in the manifest's folder) when it was exported.
        model_sha256: SHA-256 of the ``.onnx`` file; :func:`read_manifest` checks it.
        classes: Class names in label order (the output's columns).
        height, width: The input size the model was exported for (fixed).
        batch: The fixed batch size, or None for a dynamic batch dimension.
        preprocessing: See :class:`Preprocessing`.
        opset: The ONNX opset of the file.
        source: Config, checkpoint file name and SHA-256, model type.
        versions: hifuse-mm, torch, onnx, onnxscript, onnxruntime at export.
        parity: The parity gate's figures (inputs, batch sizes, max logit difference...).
        input_name, output_name: Names of the graph's input and output.
    """

    model_file: str
    model_sha256: str
    classes: Tuple[str, ...]
    height: int
    width: int
    batch: Optional[int]
    preprocessing: Preprocessing
    opset: int
    source: Dict[str, Any] = field(default_factory=dict)
    versions: Dict[str, Any] = field(default_factory=dict)
    parity: Dict[str, Any] = field(default_factory=dict)
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME

    def to_dict(self) -> Dict[str, Any]:
        """The JSON layout (key order as written)."""
        prep = asdict(self.preprocessing)
        prep['channel_order'] = self.preprocessing.channel_order
        return {
            'format': MANIFEST_FORMAT,
            'format_version': MANIFEST_VERSION,
            'model_file': self.model_file,
            'model_sha256': self.model_sha256,
            'classes': list(self.classes),
            'input': {'name': self.input_name, 'layout': 'NCHW', 'dtype': 'float32',
                      'channels': 3, 'height': self.height, 'width': self.width,
                      'batch': 'dynamic' if self.batch is None else self.batch},
            'output': {'name': self.output_name, 'meaning': 'logits (softmax gives the class '
                       'probabilities)', 'columns': len(self.classes)},
            'preprocessing': prep,
            'opset': self.opset,
            'source': self.source,
            'versions': self.versions,
            'parity': self.parity,
        }

    def to_json(self) -> str:
        """The manifest as written to disk (UTF-8 JSON, 2-space indent, final newline)."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + '\n'


def write_manifest(manifest: OnnxManifest, path: PathLike, exclusive: bool = True) -> None:
    """Write ``manifest`` to ``path`` atomically (``exclusive``: never over an existing file,
    :class:`FileExistsError`)."""
    atomic_write_text(path, manifest.to_json(), exclusive=exclusive)


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples the configs write (mmcv transforms check for tuples)."""
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    if isinstance(value, dict):
        return {key: _tuples(item) for key, item in value.items()}
    return value


def _require(data: dict, key: str, kind: Union[type, Tuple[type, ...]], where: Path) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) and kind in (int, float):
        raise ManifestError(f'{where}: key {key!r} is missing or not a '
                            f'{getattr(kind, "__name__", kind)}; the manifest is damaged. '
                            'Export the model again with tools/deployment/export_onnx.py.')
    return value


def _numbers(values: Any, count: int, key: str, where: Path) -> List[float]:
    if (not isinstance(values, list) or len(values) != count or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in values)):
        raise ManifestError(f'{where}: preprocessing.{key} must be {count} finite numbers; the '
                            'manifest is damaged. Export the model again with '
                            'tools/deployment/export_onnx.py.')
    return [float(v) for v in values]


def manifest_from_dict(data: Any, where: PathLike = 'the manifest') -> OnnxManifest:
    """Validate a parsed manifest; :class:`ManifestError` naming ``where`` if it is not one."""
    where = Path(where)
    if not isinstance(data, dict) or data.get('format') != MANIFEST_FORMAT:
        raise ManifestError(f'{where} is not a hifuse-mm ONNX manifest (no "format": '
                            f'"{MANIFEST_FORMAT}"); export the model with '
                            'tools/deployment/export_onnx.py, which writes the manifest.')
    if data.get('format_version') != MANIFEST_VERSION:
        raise ManifestError(f'{where}: manifest layout version {data.get("format_version")!r}, '
                            f'this hifuse-mm reads version {MANIFEST_VERSION}; export the model '
                            'again with this version of tools/deployment/export_onnx.py.')
    classes = _require(data, 'classes', list, where)
    if not classes or not all(isinstance(name, str) for name in classes):
        raise ManifestError(f'{where}: "classes" must be a non-empty list of class names')
    inputs = _require(data, 'input', dict, where)
    height, width = _require(inputs, 'height', int, where), _require(inputs, 'width', int, where)
    batch = inputs.get('batch')
    if not (batch == 'dynamic' or isinstance(batch, int) and not isinstance(batch, bool)
            and batch >= 1):
        raise ManifestError(f'{where}: input.batch must be "dynamic" or a batch size >= 1')
    prep = _require(data, 'preprocessing', dict, where)
    pipeline = _require(prep, 'pipeline', list, where)
    if not all(isinstance(step, dict) and isinstance(step.get('type'), str) for step in pipeline):
        raise ManifestError(f'{where}: preprocessing.pipeline must be a list of transform dicts '
                            'with a "type"')
    channels = 3
    decode = prep.get('decode') or {}
    if not isinstance(decode, dict):
        raise ManifestError(f'{where}: preprocessing.decode must be a dict')
    preprocessing = Preprocessing(
        decode=dict(decode), pipeline=[_tuples(step) for step in pipeline],
        resize_rule=str(prep.get('resize_rule', '')),
        mean=_numbers(prep.get('mean'), channels, 'mean', where),
        std=_numbers(prep.get('std'), channels, 'std', where),
        to_rgb=bool(prep.get('to_rgb')),
        pad_size_divisor=int(prep.get('pad_size_divisor', 1)),
        pad_value=float(prep.get('pad_value', 0.0)),
        scope=str(prep.get('scope') or 'mmpretrain'))
    if any(value == 0 for value in preprocessing.std):
        raise ManifestError(f'{where}: preprocessing.std has a zero')
    output = data.get('output') or {}
    return OnnxManifest(
        model_file=_require(data, 'model_file', str, where),
        model_sha256=_require(data, 'model_sha256', str, where).lower(),
        classes=tuple(classes), height=height, width=width,
        batch=None if batch == 'dynamic' else batch, preprocessing=preprocessing,
        opset=int(data.get('opset') or 0), source=dict(data.get('source') or {}),
        versions=dict(data.get('versions') or {}), parity=dict(data.get('parity') or {}),
        input_name=str(inputs.get('name', INPUT_NAME)),
        output_name=str(output.get('name', OUTPUT_NAME)))


def read_manifest(model_path: PathLike, verify: bool = True) -> OnnxManifest:
    """The manifest beside ``model_path`` (``model.onnx`` -> ``model.json``), checked.

    Args:
        model_path: The ``.onnx`` file.
        verify: Check that the model file's SHA-256 is the one the manifest records.

    Raises:
        ManifestError: the model file or its manifest is missing, the manifest is not valid,
            or (``verify``) it records another file's checksum.
    """
    model_path = Path(model_path)
    where = manifest_path(model_path)
    if not model_path.is_file():
        raise ManifestError(f'{model_path}: model file not found; pass the .onnx file written by '
                            'tools/deployment/export_onnx.py')
    if not where.is_file():
        raise ManifestError(
            f'{model_path} has no manifest: {where} is missing. The manifest holds the class '
            'names and the preprocessing, without which the model\'s outputs mean nothing; keep '
            f'the .json that tools/deployment/export_onnx.py wrote beside the .onnx (same name, '
            '.json), or export the model again.')
    try:
        data = json.loads(where.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ManifestError(f'{where}: cannot read the manifest ({err}); export the model '
                            'again with tools/deployment/export_onnx.py') from err
    manifest = manifest_from_dict(data, where)
    if verify:
        check_model_sha256(manifest, model_path, file_sha256(model_path))
    return manifest


def check_model_sha256(manifest: OnnxManifest, model_path: PathLike, actual: str) -> None:
    """Refuse a model file whose SHA-256 (``actual``) is not the one ``manifest`` records.

    Raises:
        ManifestError: naming both files, both checksums and what to do.
    """
    if actual.lower() != manifest.model_sha256:
        model_path = Path(model_path)
        raise ManifestError(
            f'{model_path} does not match its manifest {manifest_path(model_path)}: the file\'s '
            f'SHA-256 is {actual}, the manifest records {manifest.model_sha256} (for '
            f'{manifest.model_file}). The model file was changed or replaced, or the manifest '
            'belongs to another model; export the model again with '
            'tools/deployment/export_onnx.py and keep both files together.')


def describe_pipeline(pipeline: Sequence[Dict[str, Any]]) -> str:
    """A pipeline in words: ``ResizeEdge(scale=256, edge='short') -> CenterCrop(...)``."""
    shown = []
    for step in pipeline:
        args = ', '.join(f'{key}={value!r}' for key, value in step.items() if key != 'type')
        shown.append(f'{step["type"]}({args})')
    return ' -> '.join(shown)
