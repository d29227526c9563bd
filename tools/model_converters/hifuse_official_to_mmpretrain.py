#!/usr/bin/env python
"""Convert a checkpoint of the authors' released HiFuse / HEMF code.

    python tools/model_converters/hifuse_official_to_mmpretrain.py SRC DST
        [--force] [--trust-checkpoint]

SRC is a bare state dict or one stored under ``state_dict``, ``model`` or
``net``, with or without the classifier (``conv_head``). The variant
(depths, dense or depthwise IRMLP, number of classes) is read from the
tensors; keys of modules the released code builds but never calls are
dropped. DST holds ``state_dict`` (our key layout) and ``meta`` with the
detected settings and the matching ``model`` config. DST is never
overwritten unless ``--force`` is given.
"""
import argparse
import io
import os.path as osp
import sys

import torch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('src', help='released checkpoint (.pth / .pt)')
    parser.add_argument('dst', help='output checkpoint for hifuse-mm')
    parser.add_argument(
        '--force', action='store_true', help='overwrite an existing DST')
    parser.add_argument(
        '--trust-checkpoint', action='store_true',
        help='allow full unpickling of SRC if it does not load weights-only '
        '(can run code: only for files you trust; SECURITY.md)')
    args = parser.parse_args(argv)

    from hifuse_mm.converters import ConversionError, convert_official
    from hifuse_mm.engine import UntrustedCheckpointError, load_checkpoint_file
    from hifuse_mm.engine.atomic_io import atomic_write_bytes

    if not osp.isfile(args.src):
        from hifuse_mm.engine.safe_checkpoint import url_scheme
        parser.error(f'{args.src}: no such file' + (
            ' (a URL: download it first and pass the local file)'
            if url_scheme(args.src) else ''))
    if osp.exists(args.dst) and not args.force:
        parser.error(f'{args.dst} exists; pass --force to overwrite it')
    try:
        # Weights-only, with the allowlist of harmless numpy types that
        # released checkpoints may hold; anything else needs trust.
        checkpoint = load_checkpoint_file(
            args.src, map_location='cpu', trust=args.trust_checkpoint)
        state_dict, meta = convert_official(checkpoint)
    except UntrustedCheckpointError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    except ConversionError as err:
        print(f'error: {args.src}: {err}', file=sys.stderr)
        return 2
    meta['source'] = osp.abspath(args.src)
    buffer = io.BytesIO()
    torch.save(dict(state_dict=state_dict, meta=dict(hifuse_mm=meta)), buffer)
    atomic_write_bytes(args.dst, buffer.getvalue())
    s = meta['settings']
    print(f'{args.src}: {meta["family"]} {s.get("arch")} '
          f'({s.get("mode")} mode), {len(state_dict)} tensors written to '
          f'{args.dst}; dropped {len(meta["dropped_keys"])} never-called '
          'or derived entries')
    return 0


if __name__ == '__main__':
    sys.exit(main())
