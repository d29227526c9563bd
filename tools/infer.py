#!/usr/bin/env python
"""Classify new images with a trained model and write the predictions to a CSV file.

    python tools/infer.py CONFIG CHECKPOINT INPUT --out predictions.csv [--batch-size N] [--tta]
                          [--device cpu|cuda] [--precision fp32|bf16|fp16] [--compile]
                          [--cfg-options KEY=VALUE ...] [--force]

INPUT is an image or a folder (searched recursively for .jpg/.jpeg/.png/.bmp/.tif/... files).
The CSV has one row per image: ``path``, ``pred_label``, ``pred_class``, ``pred_prob`` and the
probability of every class (``prob_<class name>``). Class names come from the checkpoint's
dataset meta, else from the config's dataset. Files that cannot be read are listed with their
error and skipped; the exit code is non-zero only when no image could be classified (or on a
usage error). The same from Python: ``hifuse_mm.apis.Classifier(config, ckpt).predict(...)``.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

from mmengine.config import DictAction

from hifuse_mm.apis import (IMAGE_EXTENSIONS, Classifier, ModelLoadError, OutputExistsError,
                            check_new_files, find_images)
from hifuse_mm.apis.image_stream import ReadFailure, prepared_batches, report_failures
from hifuse_mm.utils.speed import PRECISIONS

EXIT_NOTHING_READ = 1
EXIT_USAGE = 2


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint (training, published or converted)')
    parser.add_argument('input', help='an image, or a folder searched recursively')
    parser.add_argument('--out', required=True, help='CSV file to write (must not exist)')
    parser.add_argument('--batch-size', type=int, default=16, help='images per forward pass')
    parser.add_argument('--tta', action='store_true',
                        help='average the predictions of the image and its horizontal mirror')
    parser.add_argument('--device', help='cpu, cuda, cuda:1... (default: cuda if available)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow full unpickling of a checkpoint that does not load '
                        'weights-only (can run code: only for files you trust; SECURITY.md)')
    parser.add_argument('--precision', choices=PRECISIONS, default='fp32',
                        help='fp32 (default), or bf16/fp16 autocast: bf16 is ~2-3x faster on '
                        'CPUs with AMX/AVX512-BF16 (docs/benchmarks.md)')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the model (falls back to eager with a warning)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. '
                        'test_dataloader.dataset.pipeline.1.scale=128')
    parser.add_argument('--force', action='store_true', help='overwrite an existing --out file')
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error('--batch-size must be >= 1')
    return args


def write_csv(path: Path, rows: List[list], classes: Sequence[str]) -> None:
    """Write the prediction rows under a header naming every class."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w', newline='') as stream:
        writer = csv.writer(stream)
        writer.writerow(['path', 'pred_label', 'pred_class', 'pred_prob'] +
                        [f'prob_{name}' for name in classes])
        writer.writerows(rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    try:
        check_new_files([out], force=args.force)
        images, skipped = find_images(args.input)
    except (OutputExistsError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return EXIT_USAGE
    if skipped:
        print(f'note: {len(skipped)} file(s) without an image extension skipped '
              f'(e.g. {skipped[0]}); image extensions: {" ".join(IMAGE_EXTENSIONS)}',
              file=sys.stderr)
    if not images:
        print(f'error: no image files in {args.input}', file=sys.stderr)
        return EXIT_NOTHING_READ
    try:
        classifier = Classifier(args.config, args.checkpoint, device=args.device,
                                trust_checkpoint=args.trust_checkpoint,
                                cfg_options=args.cfg_options, tta=args.tta,
                                precision=args.precision, compile=args.compile)
    except ModelLoadError as err:
        print(f'error: {err}', file=sys.stderr)
        return EXIT_USAGE

    start = time.time()
    failures: List[ReadFailure] = []
    rows: List[list] = []
    for batch in prepared_batches(classifier.preprocessor, images, args.batch_size, failures):
        predictions = classifier.predict_prepared([prepared for _, prepared in batch])
        for (path, _), pred in zip(batch, predictions):
            rows.append([str(path), pred.label, pred.name, f'{pred.score:.6f}'] +
                        [f'{p:.6f}' for p in pred.probabilities])
    report_failures(failures, len(images))
    if not rows:
        print(f'error: none of the {len(images)} image file(s) could be read; nothing written',
              file=sys.stderr)
        return EXIT_NOTHING_READ
    write_csv(out, rows, classifier.classes)
    print(f'{len(rows)} image(s) classified in {time.time() - start:.1f} s '
          f'({"with" if args.tta else "without"} TTA, {args.precision}) -> {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
