#!/usr/bin/env python
"""Export a trained HiFuse / HEMF to one ONNX file and its manifest, through a parity gate.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT --out model.onnx [--shape H W]
        [--dynamic-batch] [--opset N] [--check-images DIR] [--trust-checkpoint]
        [--cfg-options KEY=VALUE ...] [--force]

Writes ``model.onnx`` (the logits graph, weights inside; ``torch.onnx.export`` with the
``torch.export``-based exporter) and beside it ``model.json``, the manifest: class names, input
size, channel order, mean / std, the resize rule (the config's test pipeline), the
checkpoint's and the model file's SHA-256, and the hifuse-mm / torch / ONNX versions.
``tools/infer.py model.onnx INPUT --out predictions.csv`` and
``hifuse_mm.apis.Classifier.from_onnx('model.onnx')`` use both.

The checkpoint loads as in ``tools/test.py``: weights-only, an untrusted pickle is refused
unless ``--trust-checkpoint``. ``--shape`` defaults to the size the test pipeline gives (and
must equal it when the pipeline fixes one); both sides must be multiples of 32.

Parity gate: after exporting, onnxruntime (CPU) runs the file on random images and the images
of ``--check-images``, at batch 1 and, with ``--dynamic-batch``, at batch 4, and compares with
PyTorch: max |logit difference| <= 1e-4 (fp32) and the same top-1 on every input. If the gate
fails, the figures are printed, nothing is written and the exit status is 1. Exit status 2: a
usage error or bad input (the message names the file and what to do); an existing model or
manifest is never replaced without ``--force``. Needs the ``deploy`` extra
(``pip install -e '.[deploy]'``; ``make venv`` installs it).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from hifuse_mm.apis import ExportError, ModelLoadError, OutputExistsError, export_onnx
from hifuse_mm.cli.arguments import CfgOptionsAction
from hifuse_mm.deploy import (DEFAULT_TOLERANCE, DeployDependencyError, OnnxExportError,
                              ParityGateError)

EXIT_GATE = 1
EXIT_USAGE = 2


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint (training, published or converted)')
    parser.add_argument('--out', required=True,
                        help='the .onnx file to write; its manifest goes beside it (.json)')
    parser.add_argument('--shape', nargs=2, type=int, metavar=('H', 'W'),
                        help='input height and width, multiples of 32 (default: the size the '
                        "config's test pipeline gives)")
    parser.add_argument('--dynamic-batch', action='store_true',
                        help='a dynamic batch dimension (default: one image per call)')
    parser.add_argument('--opset', type=int, help='ONNX opset (default: the exporter\'s)')
    parser.add_argument('--check-images', metavar='DIR',
                        help='images (a folder, searched recursively, or one file) that join '
                        'the random inputs of the parity gate')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow full unpickling of a checkpoint that does not load '
                        'weights-only (can run code: only for files you trust; SECURITY.md)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config entries, e.g. '
                        'test_dataloader.dataset.pipeline.1.scale=256')
    parser.add_argument('--force', action='store_true',
                        help='replace an existing model file and manifest')
    args = parser.parse_args(argv)
    if args.opset is not None and args.opset < 7:
        parser.error(f'--opset must be a supported ONNX opset (e.g. 18), got {args.opset}')
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    start = time.time()
    try:
        result = export_onnx(
            args.config, args.checkpoint, args.out, shape=args.shape,
            dynamic_batch=args.dynamic_batch, opset=args.opset, check_images=args.check_images,
            force=args.force, trust_checkpoint=args.trust_checkpoint,
            cfg_options=args.cfg_options,
            log=lambda message: print(message, file=sys.stderr, flush=True))
    except ParityGateError as err:
        print('parity gate (onnxruntime CPU vs PyTorch, fp32):', file=sys.stderr)
        for line in err.report.lines():
            print(f'  {line}', file=sys.stderr)
        print(f'error: {err}', file=sys.stderr)
        return EXIT_GATE
    except OnnxExportError as err:
        print(f'error: {err}', file=sys.stderr)
        return EXIT_GATE
    except (ExportError, ModelLoadError, OutputExistsError, DeployDependencyError) as err:
        print(f'error: {err}', file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        print(f'error: cannot write {args.out} ({err.strerror or err}); nothing was written',
              file=sys.stderr)
        return EXIT_GATE
    manifest = result.manifest
    print('parity gate (onnxruntime CPU vs PyTorch, fp32):')
    for line in result.report.lines():
        print(f'  {line}')
    batch = 'dynamic' if manifest.batch is None else manifest.batch
    print(f'{result.model_path} ({Path(result.model_path).stat().st_size / 2**20:.1f} MiB, '
          f'{manifest.height}x{manifest.width}, batch {batch}, opset {manifest.opset}) and '
          f'{result.manifest_path} written in {time.time() - start:.1f} s; max |logit '
          f'difference| {result.report.max_abs_diff:.2g} <= {DEFAULT_TOLERANCE:g}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
