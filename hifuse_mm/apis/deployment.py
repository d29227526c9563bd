"""Export a trained classifier to ONNX: a config and a checkpoint in, ``model.onnx`` and its
manifest ``model.json`` out, only if the file passes the parity gate.

:func:`export_onnx` (``tools/deployment/export_onnx.py``):

1. checks the arguments before any work: the input size (sides multiples of 32), the output
   names (``.onnx``; neither it nor its manifest replaced without ``force``);
2. loads the model as :func:`hifuse_mm.apis.load_model` does for ``tools/test.py``
   (weights-only unless ``trust_checkpoint``; an untrusted pickle is refused, nothing from it
   runs);
3. records the preprocessing (:mod:`hifuse_mm.apis.onnx_preprocess`) and checks that the
   manifest's preprocessing gives the config's tensors, bit for bit;
4. exports the logits graph to a temporary file (:func:`hifuse_mm.deploy.export_logits`);
5. runs the parity gate (:func:`hifuse_mm.deploy.run_parity_gate`): onnxruntime on the CPU
   against the PyTorch model, on random images and the ``check_images``, at batch 1 and, for a
   dynamic batch, at a larger batch: max |logit difference| <= ``tolerance`` and the same
   top-1 on every input;
6. only then puts the model and its manifest under their names (atomically; the temporary
   file is removed whatever happens). A failed gate raises
   :class:`~hifuse_mm.deploy.ParityGateError` with the figures, and nothing is left behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..deploy.dependencies import deploy_versions, import_deploy_module
from ..deploy.manifest import (OnnxManifest, manifest_from_dict, manifest_path,
                               write_manifest)
from ..deploy.onnx_backend import OnnxLogitsSession
from ..deploy.onnx_export import (DEFAULT_TOLERANCE, EXPORT_IMPL, ParityGateError,
                                  ParityReport, export_logits, run_parity_gate)
from ..utils.atomic_files import atomic_write_bytes
from ..utils.file_hash import file_sha256
from ..utils.output_files import check_new_files
from ..version import __version__
from .images import ImageReadError, find_images
from .model_loading import ConfigLike, LoadedModel, load_model
from .onnx_preprocess import PreprocessingRecordError, manifest_preprocessor, preprocessing_of
from .preprocess import SIZE_DIVISOR, ImagePreprocessor, InputSizeError

PathLike = Union[str, Path]
#: Sizes of the synthetic images that find out whether the test pipeline fixes the input size
#: (multiples of 32, so that a pipeline without a resize passes them through).
PROBE_SIZES = ((320, 416), (448, 384))


class ExportError(ValueError):
    """The export cannot be done as asked; the message names the file or option and what to
    do."""


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote: the model, its manifest, and the gate's figures."""

    model_path: Path
    manifest_path: Path
    manifest: OnnxManifest
    report: ParityReport


def check_shape(shape: Optional[Sequence[int]]) -> Optional[Tuple[int, int]]:
    """``(height, width)``, or :class:`ExportError` if a side is not a positive multiple of
    :data:`~hifuse_mm.apis.preprocess.SIZE_DIVISOR` (32)."""
    if shape is None:
        return None
    if len(shape) != 2:
        raise ExportError(f'--shape takes two numbers, HEIGHT WIDTH; got {list(shape)}')
    height, width = (int(side) for side in shape)
    if height < SIZE_DIVISOR or width < SIZE_DIVISOR or height % SIZE_DIVISOR \
            or width % SIZE_DIVISOR:
        fix = [max(SIZE_DIVISOR, round(side / SIZE_DIVISOR) * SIZE_DIVISOR)
               for side in (height, width)]
        raise ExportError(f'--shape {height} {width}: HiFuse and HEMF need sides that are '
                          f'multiples of {SIZE_DIVISOR} (their total downsampling); use e.g. '
                          f'--shape {fix[0]} {fix[1]}')
    return height, width


def check_outputs(out: PathLike, force: bool = False) -> Tuple[Path, Path]:
    """``(model, manifest)`` paths for ``out``; refuses a name without ``.onnx``, a folder, an
    unwritable folder and (without ``force``) an existing model or manifest.

    Raises:
        ExportError: the name or its folder cannot be used.
        hifuse_mm.apis.OutputExistsError: a file exists and ``force`` is off.
    """
    out = Path(out)
    if out.suffix.lower() != '.onnx':
        raise ExportError(f'--out {out}: the model file name must end in .onnx (its manifest '
                          f'is written beside it as {out.with_suffix(".json").name})')
    if out.is_dir():
        raise ExportError(f'--out {out} is a folder; give the name of the .onnx file to write')
    manifest = manifest_path(out)
    check_new_files([out, manifest], force=force)
    folder = out.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f'--out {out}: cannot write in {folder}; choose another --out')
    return out, manifest


def pipeline_size(preprocessor: ImagePreprocessor) -> Optional[Tuple[int, int]]:
    """The input size the test pipeline gives every image, or None when it follows the image
    (two synthetic images of different sizes give different inputs).

    Raises:
        InputSizeError: the pipeline gives sides that are not multiples of 32.
    """
    sizes = set()
    for height, width in PROBE_SIZES:
        image = np.random.default_rng(height).integers(0, 256, (height, width, 3), np.uint8)
        sizes.add(tuple(preprocessor.prepare(image).packed.shape[-2:]))
    return sizes.pop() if len(sizes) == 1 else None


def _input_size(preprocessor: ImagePreprocessor, shape: Optional[Tuple[int, int]],
                config: ConfigLike) -> Tuple[Tuple[int, int], bool]:
    """The input size to export, and whether the test pipeline fixes it."""
    fixed = pipeline_size(preprocessor)
    if shape is None:
        if fixed is None:
            raise ExportError(
                f'{config}: the test pipeline does not resize images to one size (its output '
                'follows the image); pass --shape HEIGHT WIDTH, the size the model is to take')
        return fixed, True
    if fixed is not None and fixed != shape:
        raise ExportError(
            f'--shape {shape[0]} {shape[1]}, but the test pipeline of {config} gives '
            f'{fixed[0]}x{fixed[1]} inputs, and the exported model is used with that pipeline; '
            'change the pipeline\'s resize / crop (e.g. --cfg-options '
            f'"test_dataloader.dataset.pipeline.1.scale=({shape[1]},{shape[0]})" for a '
            'Resize step) or leave out --shape')
    return shape, fixed is not None


def _check_images(folder: Optional[PathLike], preprocessor: ImagePreprocessor,
                  size: Tuple[int, int]) -> List[Path]:
    if folder is None:
        return []
    try:
        images, _ = find_images(folder)
    except FileNotFoundError as err:
        raise ExportError(f'--check-images: {err}') from err
    if not images:
        raise ExportError(f'--check-images {folder}: no image files in it')
    for path in images:
        try:
            prepared = preprocessor.prepare(preprocessor.read(path), path=path)
        except (ImageReadError, InputSizeError) as err:
            raise ExportError(f'--check-images: {err}') from err
        if tuple(prepared.packed.shape[-2:]) != size:
            got = 'x'.join(map(str, prepared.packed.shape[-2:]))
            raise ExportError(f'--check-images: {path}: the test pipeline gives a {got} input, '
                              f'the model is exported for {size[0]}x{size[1]}')
    return images


def _normalised(preprocessor: ImagePreprocessor, images: Sequence, paths: bool) -> torch.Tensor:
    prepared = [preprocessor.prepare(preprocessor.read(item), path=item) if paths
                else preprocessor.prepare(item) for item in images]
    return preprocessor.batch(prepared) if prepared else torch.zeros(0)


def _same_preprocessing(config_side: ImagePreprocessor, manifest_side: ImagePreprocessor,
                        images: List[Path], size: Tuple[int, int], resizes: bool) -> None:
    """Refuse a manifest whose preprocessing does not give the config's tensors (on the check
    images and random images: of another size too when the pipeline resizes)."""
    rng = np.random.default_rng(0)
    sizes = [size] + ([(size[0] + 37, size[1] + 53)] if resizes else [])
    arrays = [rng.integers(0, 256, (height, width, 3), np.uint8) for height, width in sizes]
    for items, paths in ((arrays, False), (images, True)):
        if not items:
            continue
        ours = _normalised(config_side, items, paths)
        theirs = _normalised(manifest_side, items, paths)
        if ours.shape != theirs.shape or not torch.equal(ours, theirs):
            raise ExportError(
                'the preprocessing written into the manifest does not reproduce the config\'s '
                'test pipeline and data preprocessor exactly; the exported model would be fed '
                'other tensors than the PyTorch model. Simplify the test pipeline (plain '
                'mmcv / MMPretrain transforms with numbers and strings as arguments)')


def _random_inputs(loaded: LoadedModel, count: int, size: Tuple[int, int]) -> torch.Tensor:
    """``count`` random-pixel images through the model's data preprocessor (seeded)."""
    generator = torch.Generator().manual_seed(0)
    packed = [torch.randint(0, 256, (3, *size), generator=generator, dtype=torch.uint8)
              for _ in range(count)]
    with torch.no_grad():
        return loaded.model.data_preprocessor(dict(inputs=packed), training=False)['inputs']


def _describe_source(config: ConfigLike, checkpoint: Path, loaded: LoadedModel) -> Dict:
    model = loaded.cfg.model
    parts = {key: (model.get(key) or {}).get('type') for key in ('backbone', 'neck', 'head')}
    return {
        'config': str(config) if not hasattr(config, 'filename') else str(config.filename),
        'checkpoint': checkpoint.name,
        'checkpoint_sha256': file_sha256(checkpoint),
        'model': parts,
        'arch': (model.get('backbone') or {}).get('arch'),
        'traced_impl': EXPORT_IMPL,
    }


def export_onnx(config: ConfigLike, checkpoint: PathLike, out: PathLike,
                shape: Optional[Sequence[int]] = None, dynamic_batch: bool = False,
                opset: Optional[int] = None, check_images: Optional[PathLike] = None,
                force: bool = False, trust_checkpoint: bool = False,
                cfg_options: Optional[dict] = None, random_inputs: int = 4,
                gate_batch: int = 4, tolerance: float = DEFAULT_TOLERANCE,
                log: Callable[[str], None] = lambda message: None) -> ExportResult:
    """Export ``checkpoint`` (a model of ``config``) to ``out`` and its manifest, gated.

    Args:
        config: The config the checkpoint was trained with.
        checkpoint: Training, published or converted checkpoint (loaded weights-only unless
            ``trust_checkpoint``).
        out: The ``.onnx`` file; the manifest goes beside it (same name, ``.json``).
        shape: ``(height, width)`` of the input; default: the size the test pipeline gives.
            Must equal it when the pipeline fixes one.
        dynamic_batch: A dynamic batch dimension (else the model takes one image per call).
        opset: ONNX opset (None: the exporter's default).
        check_images: A folder (or image) whose images join the gate's random inputs.
        force: Replace an existing model file and manifest.
        trust_checkpoint: Allow full unpickling of the checkpoint (it can run code).
        cfg_options: Config overrides, as ``--cfg-options`` gives them.
        random_inputs: Number of random-pixel images in the gate.
        gate_batch: The larger batch the gate runs a dynamic-batch model at.
        tolerance: The gate's bound on max |logit difference|.
        log: Called with progress messages.

    Raises:
        ExportError: bad arguments, check images or preprocessing (before any file is
            written).
        hifuse_mm.apis.OutputExistsError: ``out`` or its manifest exists, without ``force``.
        hifuse_mm.apis.ModelLoadError: the config or checkpoint is unusable, or the checkpoint
            needs full unpickling and is not trusted.
        hifuse_mm.deploy.DeployDependencyError: the ``deploy`` extra is not installed.
        hifuse_mm.deploy.OnnxExportError: the exporter failed.
        hifuse_mm.deploy.ParityGateError: the file failed the gate (nothing written).
    """
    size = check_shape(shape)
    out, manifest_file = check_outputs(out, force)
    for module in ('onnx', 'onnxscript', 'onnxruntime'):
        import_deploy_module(module, 'ONNX export')
    checkpoint = Path(checkpoint)
    loaded = load_model(config, checkpoint, device='cpu', cfg_options=cfg_options,
                        trust_checkpoint=trust_checkpoint)
    preprocessor = ImagePreprocessor(loaded.cfg, loaded.model.data_preprocessor)
    try:
        size, resizes = _input_size(preprocessor, size, config)
        images = _check_images(check_images, preprocessor, size)
        preprocessing = preprocessing_of(loaded.cfg, loaded.model.data_preprocessor,
                                         preprocessor.decode_args)
    except (InputSizeError, PreprocessingRecordError) as err:
        raise ExportError(str(err)) from err
    draft = OnnxManifest(
        model_file=out.name, model_sha256='', classes=tuple(loaded.classes), height=size[0],
        width=size[1], batch=None if dynamic_batch else 1, preprocessing=preprocessing,
        opset=opset or 0, source=_describe_source(config, checkpoint, loaded))
    # Through JSON and back, so that what is checked is what a reader of the file will get.
    draft = manifest_from_dict(json.loads(draft.to_json()), manifest_file)
    _same_preprocessing(preprocessor, manifest_preprocessor(draft, str(out)), images, size,
                        resizes)

    tmp = out.absolute().parent / f'.{out.stem}.export-{os.getpid()}-{secrets.token_hex(4)}.onnx'
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        log(f'exporting {size[0]}x{size[1]}, batch {"dynamic" if dynamic_batch else 1} ...')
        used_opset = export_logits(loaded.model, tmp, size[0], size[1], dynamic_batch, opset)
        log('parity gate: onnxruntime (CPU) against PyTorch ...')
        session = OnnxLogitsSession(tmp, size[0], size[1], None if dynamic_batch else 1,
                                    draft.input_name, draft.output_name, name=str(out))
        model = loaded.model
        inputs = {'random': _random_inputs(loaded, random_inputs, size),
                  'images': _normalised(preprocessor, images, True)}
        batches = [1] + ([max(2, gate_batch)] if dynamic_batch else [])
        report = run_parity_gate(lambda x: model.head(model.extract_feat(x)), session, inputs,
                                 batches, tolerance)
        if not report.passed:
            raise ParityGateError(
                f'the exported model does not compute what the PyTorch model computes (max '
                f'|logit difference| {report.max_abs_diff:.3g}, limit {tolerance:g}, or a '
                f'different top-1); {out} was not written', report)
        data = tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)
    manifest = replace(
        draft, model_sha256=hashlib.sha256(data).hexdigest(), opset=used_opset,
        parity=dict(report.to_dict(), random_inputs=random_inputs, check_images=len(images),
                    batch_sizes=batches),
        versions=dict(hifuse_mm=__version__, torch=torch.__version__, **deploy_versions(),
                      python=platform.python_version()))
    try:
        atomic_write_bytes(out, data, exclusive=not force)
    except FileExistsError as err:
        raise ExportError(f'{out} was created by something else during the export; it was '
                          'left as it is (pass --force to replace it)') from err
    try:
        write_manifest(manifest, manifest_file, exclusive=not force)
    except BaseException as err:
        out.unlink(missing_ok=True)
        if isinstance(err, FileExistsError):
            raise ExportError(f'{manifest_file} was created by something else during the '
                              f'export; it was left as it is and {out} removed again (pass '
                              '--force to replace both)') from err
        raise
    return ExportResult(out, manifest_file, manifest, report)
