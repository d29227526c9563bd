#!/usr/bin/env python
"""Convert a checkpoint of the authors' released HiFuse / HEMF code.

    python tools/model_converters/hifuse_official_to_mmpretrain.py SRC DST

SRC is a bare state dict or one stored under ``state_dict``, ``model`` or
``net``, with or without the classifier (``conv_head``). The variant
(depths, dense or depthwise IRMLP, number of classes) is read from the
tensors; keys of modules the released code builds but never calls are
dropped. DST holds ``state_dict`` (our key layout) and ``meta`` with the
detected settings and the matching ``model`` config. DST is never
overwritten unless ``--force`` is given.
"""
import argparse
import os.path as osp
import sys

import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('src', help='released checkpoint (.pth / .pt)')
    parser.add_argument('dst', help='output checkpoint for hifuse-mm')
    parser.add_argument(
        '--force', action='store_true', help='overwrite an existing DST')
    args = parser.parse_args()

    from hifuse_mm.converters import ConversionError, convert_official

    if not osp.isfile(args.src):
        parser.error(f'{args.src}: no such file')
    if osp.exists(args.dst) and not args.force:
        parser.error(f'{args.dst} exists; pass --force to overwrite it')
    try:
        # Released checkpoints may hold optimizer state and numbers pickled
        # as numpy objects, which the weights-only loader refuses.
        checkpoint = torch.load(
            args.src, map_location='cpu', weights_only=False)
        state_dict, meta = convert_official(checkpoint)
    except ConversionError as err:
        print(f'error: {args.src}: {err}', file=sys.stderr)
        return 2
    meta['source'] = osp.abspath(args.src)
    torch.save(dict(state_dict=state_dict, meta=dict(hifuse_mm=meta)),
               args.dst)
    s = meta['settings']
    print(f'{args.src}: {meta["family"]} {s.get("arch")} '
          f'({s.get("mode")} mode), {len(state_dict)} tensors written to '
          f'{args.dst}; dropped {len(meta["dropped_keys"])} never-called '
          'or derived entries')
    return 0


if __name__ == '__main__':
    sys.exit(main())
