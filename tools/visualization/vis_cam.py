#!/usr/bin/env python
"""Class activation maps (Grad-CAM & co.) of a HiFuse / HEMF classifier on new images.

    python tools/visualization/vis_cam.py CONFIG CHECKPOINT INPUT
        [--method gradcam|gradcam++|layercam|eigencam] [--target-category N] [--branches]
        [--out-dir DIR] [--device cpu|cuda] [--cfg-options KEY=VALUE ...] [--force]

The CAM is computed on the stage-4 fused map, the papers' target ("the last layer except the
linear layer": HiFuse uses Grad-CAM, HEMF Grad-CAM++). ``--branches`` adds the CAMs of the
stage-4 local-branch and global-branch maps, to show where each branch looks. INPUT is an image
or a folder (searched recursively); the config's test pipeline decides the input size (sides
must be multiples of 32; ``--cfg-options`` can change it, e.g. for a finer map). One PNG
per image, ``DIR/<relative path>_cam.png``: the input, the overlay(s), the predicted class and
its probability. Existing PNGs are not overwritten unless ``--force``. A file name that is not
valid UTF-8 keeps its bytes in the PNG's name; the caption and messages show each such byte as
``\\xNN`` (hifuse_mm.utils.file_names).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from hifuse_mm.apis import (CAM_METHODS, CamError, CamExplainer, Classifier, ModelLoadError,
                            OutputExistsError, check_new_files, derived_paths, find_images,
                            save_cam_figure)
from hifuse_mm.apis.image_stream import ReadFailure, prepared_batches, report_failures
from hifuse_mm.cli.arguments import CfgOptionsAction
from hifuse_mm.utils.file_names import printable_name

EXIT_NOTHING_READ = 1
EXIT_USAGE = 2


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint (training, published or converted)')
    parser.add_argument('input', help='an image, or a folder searched recursively')
    parser.add_argument('--method', default='gradcam', choices=sorted(CAM_METHODS),
                        help='CAM method (default gradcam; the HEMF paper uses gradcam++)')
    parser.add_argument('--target-category', type=int,
                        help='class index to explain (default: the predicted class)')
    parser.add_argument('--branches', action='store_true',
                        help='also show the local- and global-branch stage-4 maps')
    parser.add_argument('--out-dir', default='work_dirs/vis_cam',
                        help='folder for the PNGs (default work_dirs/vis_cam)')
    parser.add_argument('--device', help='cpu, cuda, cuda:1... (default: cuda if available)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow full unpickling of a checkpoint that does not load '
                        'weights-only (can run code: only for files you trust; SECURITY.md)')
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction,
                        help='override config entries, e.g. '
                        'test_dataloader.dataset.pipeline.1.scale=128')
    parser.add_argument('--force', action='store_true', help='overwrite existing PNGs')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        images, _ = find_images(args.input)
        outputs = derived_paths(images, Path(args.input), Path(args.out_dir))
        check_new_files(outputs, force=args.force)
    except (OutputExistsError, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return EXIT_USAGE
    if not images:
        print(f'error: no image files in {printable_name(args.input)}', file=sys.stderr)
        return EXIT_NOTHING_READ
    targets = ('fused', 'local', 'global') if args.branches else ('fused', )
    try:
        classifier = Classifier(args.config, args.checkpoint, device=args.device,
                                trust_checkpoint=args.trust_checkpoint,
                                cfg_options=args.cfg_options)
        explainer = CamExplainer(classifier.model, method=args.method, targets=targets)
    except (ModelLoadError, CamError) as err:
        print(f'error: {err}', file=sys.stderr)
        return EXIT_USAGE
    num_classes = len(classifier.classes)
    if args.target_category is not None and not 0 <= args.target_category < num_classes:
        print(f'error: --target-category {args.target_category} is out of range: the model has '
              f'{num_classes} classes (0..{num_classes - 1}: {", ".join(classifier.classes)})',
              file=sys.stderr)
        return EXIT_USAGE

    out_of = dict(zip(images, outputs))
    failures: List[ReadFailure] = []
    written = 0
    for batch in prepared_batches(classifier.preprocessor, images, 1, failures):
        (path, prepared), = batch
        inputs = classifier.preprocessor.batch([prepared])
        try:
            result, = explainer.explain(inputs, category=args.target_category)
        except CamError as err:
            print(f'\nerror: {err}', file=sys.stderr)
            return EXIT_USAGE
        save_cam_figure(out_of[path], prepared.shown, result, classifier.classes, args.method,
                        caption=printable_name(path))
        written += 1
    report_failures(failures, len(images))
    if not written:
        print(f'error: none of the {len(images)} image file(s) could be read', file=sys.stderr)
        return EXIT_NOTHING_READ
    print(f'{written} CAM figure(s) ({args.method}, {"+".join(targets)}) written to '
          f'{printable_name(args.out_dir)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
