#!/usr/bin/env python
"""Publish a checkpoint: keep the weights and plain metadata, add a content hash to the name.

    python tools/model_converters/publish_model.py IN OUT [--trust-checkpoint]

IN is a checkpoint of our training (with optimizer state, schedulers, message_hub) or any
checkpoint with a ``state_dict``. The output keeps ``state_dict`` and ``meta`` (class names,
config text, epoch...) as plain values, so it loads with ``torch.load(weights_only=True)`` (the
safe default of torch >= 2.6) and gives the same outputs. It is written as
``<OUT without .pth>-<sha256[:8]>.pth`` and never replaces an existing file.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from hifuse_mm.apis import OutputExistsError, PublishError, publish_checkpoint


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('in_file', metavar='IN', help='checkpoint to publish')
    parser.add_argument('out_file', metavar='OUT',
                        help='output name; the hash is added before .pth')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow full unpickling of IN if it does not load weights-only '
                        '(can run code: only for files you trust; SECURITY.md)')
    args = parser.parse_args(argv)
    try:
        result = publish_checkpoint(args.in_file, args.out_file,
                                    trust_checkpoint=args.trust_checkpoint)
    except (FileNotFoundError, PublishError, OutputExistsError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if not result.created:
        print(f'{result.path} already exists with the same contents; nothing written')
        return 0
    dropped = f' (dropped: {", ".join(result.dropped)})' if result.dropped else ''
    print(f'published {args.in_file} -> {result.path}{dropped}\nsha256 {result.sha256}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
