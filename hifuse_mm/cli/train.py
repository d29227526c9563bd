"""``tools/train.py``: parsed arguments -> training config -> run."""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from mmengine.config import Config

from .. import engine
from ..engine.runs import close_process_group, run_train
from ..engine.training_config import configure_training
from .arguments import common_options, load_config, train_parser
from .checks import check_checkpoints, check_launcher, config_key_errors
from .errors import clear_errors, config_errors


def train_config(args: argparse.Namespace) -> Config:
    """Build the training config from parsed :func:`~.arguments.train_parser` arguments."""
    cfg = load_config(args)
    with config_errors():
        return configure_training(
            cfg, **common_options(args), resume=args.resume, validate=not args.no_validate,
            auto_scale_lr=args.auto_scale_lr,
            persistent_workers=not args.no_persistent_workers)


def train_main(argv: Optional[Sequence[str]] = None) -> None:
    """Entry point of ``tools/train.py``."""
    engine.install()
    args = train_parser().parse_args(argv)
    check_launcher(args.launcher, 'train')
    with clear_errors(), engine.trust_all_checkpoints(args.trust_checkpoint):
        cfg = train_config(args)
        check_checkpoints(cfg, '--resume' if args.resume not in (None, 'auto') else 'load_from')
        with config_key_errors(cfg):
            run_train(cfg)
    close_process_group()
