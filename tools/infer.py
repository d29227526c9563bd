#!/usr/bin/env python
"""Classify new images with a trained model and write the predictions to a CSV file.

    python tools/infer.py CONFIG CHECKPOINT INPUT --out predictions.csv [--batch-size N] [--tta]
                          [--device cpu|cuda] [--precision fp32|bf16|fp16] [--compile]
                          [--temperature T] [--cfg-options KEY=VALUE ...] [--force]
    python tools/infer.py MODEL.onnx INPUT --out predictions.csv [--batch-size N] [--tta]
                          [--temperature T] [--threads N] [--force]

INPUT is an image or a folder (searched recursively for .jpg/.jpeg/.png/.bmp/.tif/... files).
The CSV (UTF-8) has one row per image file, in sorted order: ``path``, ``pred_label``,
``pred_class``, ``pred_prob``, the probability of every class (``prob_<class name>``), then
``status`` (``ok``, or ``error`` for a file that could not be classified: its prediction
columns are empty) and ``error`` (why; empty when ``ok``). Class names come from the
checkpoint's dataset meta, else from the config's dataset. File names that are not valid UTF-8
are written with each such byte as ``\\xNN`` (hifuse_mm.utils.file_names). Files that cannot be
read are also listed on stderr; the exit code is non-zero only when no image could be
classified (nothing is written then), on a usage error or when the CSV cannot be written.
``--out`` is checked before the model loads (a file name in a writable folder; an existing file
only with ``--force``) and written atomically: a complete CSV or none, never a partial one.
``--temperature T`` divides the logits by T before the softmax (temperature scaling, e.g. the
temperature fitted on the validation split; default 1: unchanged probabilities; the predicted
class never changes). ``--precision fp16`` on a CPU warns that it is emulated and slow (use
bf16). The same from Python: ``hifuse_mm.apis.Classifier(config, ckpt).predict(...)``.

A model exported by ``tools/deployment/export_onnx.py`` (a first argument ending in ``.onnx``)
runs with onnxruntime on the CPU, with no config or checkpoint: its manifest (``model.json``
beside ``model.onnx``) gives the classes and the preprocessing, and must record the model
file's SHA-256. The CSV is the same as the PyTorch path's (``Classifier.from_onnx`` from
Python). The PyTorch-only options (``--device``, ``--precision``, ``--compile``,
``--cfg-options``, ``--trust-checkpoint``) are refused with it.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from hifuse_mm.apis import (IMAGE_EXTENSIONS, Classifier, ModelLoadError, OutputExistsError,
                            check_new_files, find_images)
from hifuse_mm.apis.image_stream import ReadFailure, prepared_batches, report_failures
from hifuse_mm.cli.arguments import CfgOptionsAction
from hifuse_mm.deploy import DeployDependencyError, ManifestError, OnnxModelError
from hifuse_mm.utils.atomic_files import atomic_write_bytes
from hifuse_mm.utils.file_names import printable_name
from hifuse_mm.utils.speed import PRECISIONS

EXIT_NOTHING_READ = 1
EXIT_USAGE = 2
EXIT_WRITE = 1
#: Columns after the class probabilities (added in this order at the end of the header).
STATUS_COLUMNS = ('status', 'error')


class OutputError(ValueError):
    """``--out`` cannot be written; the message says why and what to do."""


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        usage='%(prog)s (CONFIG CHECKPOINT | MODEL.onnx) INPUT --out CSV [options]')
    parser.add_argument('config', help='config the checkpoint was trained with, or an .onnx '
                        'model exported by tools/deployment/export_onnx.py (its manifest '
                        'beside it; no CHECKPOINT then)')
    parser.add_argument('checkpoint', help='checkpoint (training, published or converted); '
                        'after an .onnx model: INPUT')
    parser.add_argument('input', nargs='?', help='an image, or a folder searched recursively')
    parser.add_argument('--out', required=True,
                        help='CSV file to write (must not exist unless --force; its folder '
                        'must be writable; checked before the model loads)')
    parser.add_argument('--batch-size', type=int, default=16, help='images per forward pass')
    parser.add_argument('--tta', action='store_true',
                        help='average the predictions of the image and its horizontal mirror')
    parser.add_argument('--device', help='cpu, cuda, cuda:1... (default: cuda if available)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow full unpickling of a checkpoint that does not load '
                        'weights-only (can run code: only for files you trust; SECURITY.md)')
    parser.add_argument('--precision', choices=PRECISIONS, default='fp32',
                        help='fp32 (default), or bf16/fp16 autocast: bf16 is ~2-3x faster on '
                        'CPUs with AMX/AVX512-BF16 (docs/benchmarks.md); fp16 on a CPU is '
                        'emulated and much slower than fp32 (a warning says so)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the model (falls back to eager with a warning)')
    parser.add_argument('--temperature', type=float, default=1.0,
                        help='temperature scaling: probabilities = softmax(logits / T), T > 0 '
                        '(e.g. fitted on the validation split; default 1 = unchanged)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config entries, e.g. '
                        'test_dataloader.dataset.pipeline.1.scale=128')
    parser.add_argument('--threads', type=int,
                        help='onnxruntime threads, for an .onnx model (default: its own)')
    parser.add_argument('--force', action='store_true', help='overwrite an existing --out file')
    args = parser.parse_args(argv)
    args.onnx = None
    if args.config.lower().endswith('.onnx'):
        if args.input is not None:
            parser.error(f'an .onnx model takes no checkpoint: {args.config} INPUT --out CSV '
                         f'(got {args.checkpoint} and {args.input})')
        args.onnx, args.input, args.config, args.checkpoint = \
            args.config, args.checkpoint, None, None
        torch_only = [flag for flag, used in (
            ('--device', args.device not in (None, 'cpu')),
            ('--precision', args.precision != 'fp32'), ('--compile', args.compile),
            ('--cfg-options', bool(args.cfg_options)),
            ('--trust-checkpoint', args.trust_checkpoint)) if used]
        if torch_only:
            parser.error(f'{" ".join(torch_only)}: PyTorch options; an .onnx model runs with '
                         'onnxruntime on the CPU in fp32, preprocessed as its manifest says')
    elif args.input is None:
        parser.error('the following arguments are required: input')
    elif args.threads is not None:
        parser.error('--threads is for an .onnx model (use torch\'s OMP_NUM_THREADS otherwise)')
    if args.threads is not None and args.threads < 1:
        parser.error('--threads must be >= 1')
    if args.batch_size < 1:
        parser.error('--batch-size must be >= 1')
    if not (math.isfinite(args.temperature) and args.temperature > 0):
        parser.error(f'--temperature must be a finite number > 0, got {args.temperature}')
    return args


def check_output(out: Path, force: bool) -> None:
    """Refuse an ``--out`` that cannot be written, before any work is done.

    Raises:
        OutputExistsError: it exists and ``force`` is off.
        OutputError: it is a folder or not a regular file, a folder on its way is a file, or
            its folder is not writable.
    """
    shown = printable_name(out)
    if out.is_dir():
        raise OutputError(f'--out {shown} is a folder; give the name of a CSV file '
                          f'(e.g. {printable_name(out / "predictions.csv")})')
    if out.exists() and not out.is_file():
        raise OutputError(f'--out {shown} exists and is not a regular file; choose another name')
    check_new_files([out], force=force)
    folder = out.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f'--out {shown}: {printable_name(folder)} is a file, not a folder; '
                          'choose another --out')
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f'--out {shown}: cannot write in {printable_name(folder)} '
                          '(permission denied or a read-only file system); choose another --out')


def _reason(failure: ReadFailure) -> str:
    """The failure's message without the leading file name (the path column has it)."""
    for prefix in (f'{failure.path}: ', f'{failure.path.name}: '):
        if failure.error.startswith(prefix):
            return failure.error[len(prefix):]
    return failure.error


def csv_bytes(images: Sequence[Path], predicted: Dict[Path, list],
              failures: Sequence[ReadFailure], classes: Sequence[str]) -> bytes:
    """The CSV: a row per image in ``images`` order, ``ok`` or ``error`` (UTF-8 bytes)."""
    failed = {failure.path: _reason(failure) for failure in failures}
    text = io.StringIO(newline='')
    writer = csv.writer(text)
    writer.writerow(['path', 'pred_label', 'pred_class', 'pred_prob'] +
                    [printable_name(f'prob_{name}') for name in classes] +
                    list(STATUS_COLUMNS))
    empty = [''] * (3 + len(classes))
    for path in images:
        if path in predicted:
            writer.writerow([printable_name(path)] + predicted[path] + ['ok', ''])
        elif path in failed:
            writer.writerow([printable_name(path)] + empty +
                            ['error', printable_name(failed[path])])
    return text.getvalue().encode('utf-8')


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    try:
        check_output(out, args.force)
        images, skipped = find_images(args.input)
    except (OutputExistsError, OutputError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return EXIT_USAGE
    if skipped:
        print(f'note: {len(skipped)} file(s) without an image extension skipped '
              f'(e.g. {printable_name(skipped[0])}); image extensions: '
              f'{" ".join(IMAGE_EXTENSIONS)}', file=sys.stderr)
    if not images:
        print(f'error: no image files in {printable_name(args.input)}', file=sys.stderr)
        return EXIT_NOTHING_READ
    try:
        if args.onnx:
            classifier = Classifier.from_onnx(args.onnx, tta=args.tta,
                                              temperature=args.temperature,
                                              threads=args.threads)
        else:
            classifier = Classifier(args.config, args.checkpoint, device=args.device,
                                    trust_checkpoint=args.trust_checkpoint,
                                    cfg_options=args.cfg_options, tta=args.tta,
                                    precision=args.precision, compile=args.compile,
                                    temperature=args.temperature)
    except (ModelLoadError, ManifestError, OnnxModelError, DeployDependencyError) as err:
        print(f'error: {err}', file=sys.stderr)
        return EXIT_USAGE

    start = time.time()
    failures: List[ReadFailure] = []
    predicted: Dict[Path, list] = {}
    for batch in prepared_batches(classifier.preprocessor, images, args.batch_size, failures):
        predictions = classifier.predict_prepared([prepared for _, prepared in batch])
        for (path, _), pred in zip(batch, predictions):
            predicted[path] = ([pred.label, printable_name(pred.name), f'{pred.score:.6f}'] +
                               [f'{p:.6f}' for p in pred.probabilities])
    report_failures(failures, len(images))
    if not predicted:
        print(f'error: none of the {len(images)} image file(s) could be read; nothing written',
              file=sys.stderr)
        return EXIT_NOTHING_READ
    try:
        atomic_write_bytes(out, csv_bytes(images, predicted, failures, classifier.classes),
                           exclusive=not args.force)
    except FileExistsError:
        print(f'error: {printable_name(out)} was created by something else while the images '
              'were classified; it was left as it is (pass --force to replace it)',
              file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        print(f'error: cannot write {printable_name(out)} ({err.strerror or err}); nothing '
              'was written', file=sys.stderr)
        return EXIT_WRITE
    failed = f'; {len(failures)} could not be (status "error" rows)' if failures else ''
    print(f'{len(predicted)} image(s) classified in {time.time() - start:.1f} s '
          f'({"with" if args.tta else "without"} TTA, '
          f'{"onnxruntime fp32" if args.onnx else args.precision}){failed} -> '
          f'{printable_name(out)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
