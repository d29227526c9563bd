"""``CrashSafeCheckpointHook``: mmengine's ``CheckpointHook`` that a kill cannot leave without a
complete checkpoint.

mmengine 0.10's ``CheckpointHook`` writes a checkpoint straight into its final path, writes the
``last_checkpoint`` pointer with a plain ``open(..., 'w')``, and deletes the checkpoint that falls
out of ``max_keep_ckpts`` (and the previous best checkpoint) *before* it writes the new one: with
``max_keep_ckpts=1`` a kill during the save leaves no checkpoint at all and ``last_checkpoint``
naming a deleted file. This subclass (registered under its own name; ``configs/_base_/
default_runtime.py`` uses it and :class:`~hifuse_mm.engine.runner.HiFuseRunner` puts it in place
of a plain ``CheckpointHook``):

* saves local checkpoints through the ``hifuse_atomic_local`` file backend
  (:mod:`~hifuse_mm.engine.atomic_backend`) unless ``backend_args`` chooses another;
* writes ``last_checkpoint`` atomically
  (:func:`~hifuse_mm.engine.mmengine_patches.atomic_last_checkpoint`, around that one call);
* defers the deletions until the new checkpoint and the pointer are on disk, and deletes the
  signature sidecar (:mod:`~hifuse_mm.engine.checkpoint_trust`) with each checkpoint;
* in a run whose runner resolves it (``runner.relative_last_checkpoint``, a
  :class:`~hifuse_mm.engine.runner.HiFuseRunner`), writes ``last_checkpoint`` relative to the
  work dir (:mod:`~hifuse_mm.engine.last_checkpoint`), so a moved or copied work dir resumes
  from its own checkpoints; mmengine's runner reads the pointer relative to the current
  folder, so with it the pointer stays absolute;
* on a resume, takes a best checkpoint recorded in another folder (the work dir was moved or
  copied) to be the file of that name beside the checkpoints, so that replacing it never
  deletes a file outside the run's folder.

A kill at any moment leaves ``last_checkpoint`` naming a complete checkpoint.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Tuple

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook
from mmpretrain.registry import HOOKS

from ..atomic_backend import atomic_backend_args, is_local_path
from ..atomic_io import atomic_write_text
from ..checkpoint_trust import signature_path
from ..last_checkpoint import POINTER_NAME, pointer_text
from ..mmengine_patches import atomic_last_checkpoint


class _DeferredRemovals:
    """A file backend whose ``remove`` / ``rmtree`` are recorded instead of done."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.pending: List[Tuple[str, str]] = []

    def remove(self, path: str) -> None:
        self.pending.append(('remove', path))

    def rmtree(self, path: str) -> None:
        self.pending.append(('rmtree', path))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)


@HOOKS.register_module()
class CrashSafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` with atomic checkpoint and ``last_checkpoint`` writes and deferred
    deletion of old checkpoints. Same arguments as mmengine's ``CheckpointHook``."""

    def before_train(self, runner: Any) -> None:
        out_dir = self.out_dir if self.out_dir is not None else runner.work_dir
        self.backend_args = atomic_backend_args(out_dir, self.file_client_args,
                                                self.backend_args)
        super().before_train(runner)
        self._relocate_best_checkpoints(runner)

    def _relocate_best_checkpoints(self, runner: Any) -> None:
        """Best checkpoints recorded (in the resumed checkpoint) in another folder than
        ``out_dir`` are taken to be the files of that name in ``out_dir``."""
        if not self.save_best or not is_local_path(self.out_dir):
            return
        here = os.path.abspath(self.out_dir)

        def relocated(path: Optional[str], key: str) -> Optional[str]:
            if not path or not is_local_path(path) or \
                    os.path.dirname(os.path.abspath(path)) == here:
                return path
            moved = os.path.join(self.out_dir, os.path.basename(path))
            runner.message_hub.update_info(key, moved)
            runner.logger.info(f'the best checkpoint recorded as {path} is taken to be {moved} '
                               '(the work dir was moved or copied)')
            return moved

        if getattr(self, 'best_ckpt_path', None):
            self.best_ckpt_path = relocated(self.best_ckpt_path, 'best_ckpt')
        for key, path in list((getattr(self, 'best_ckpt_path_dict', None) or {}).items()):
            self.best_ckpt_path_dict[key] = relocated(path, f'best_ckpt_{key}')

    def _save_checkpoint_with_step(self, runner: Any, step: int, meta: dict) -> None:
        with self._deferring_removals(), atomic_last_checkpoint():
            super()._save_checkpoint_with_step(runner, step, meta)
            self._write_relative_pointer(runner)

    def _write_relative_pointer(self, runner: Any) -> None:
        """Rewrite the pointer mmengine wrote (absolute) relative to the work dir, when the
        runner resolves such pointers."""
        if not getattr(runner, 'relative_last_checkpoint', False) or not is_main_process() \
                or not self.last_ckpt:
            return
        text = pointer_text(self.last_ckpt, runner.work_dir)
        if text != str(self.last_ckpt):
            atomic_write_text(os.path.join(runner.work_dir, POINTER_NAME), text)

    def _save_best_checkpoint(self, runner: Any, metrics: dict) -> None:
        with self._deferring_removals():
            super()._save_best_checkpoint(runner, metrics)

    def _kept_paths(self) -> set:
        """The checkpoints the hook points at now (never deleted)."""
        paths = [getattr(self, 'last_ckpt', None), getattr(self, 'best_ckpt_path', None),
                 *(getattr(self, 'best_ckpt_path_dict', None) or {}).values()]
        return {str(path) for path in paths if path}

    @contextmanager
    def _deferring_removals(self) -> Iterator[None]:
        """Inside, deletions are recorded; after a successful save they are done (except of the
        checkpoints the hook still points at). Nested use: the outermost one deletes."""
        backend = self.file_backend
        if isinstance(backend, _DeferredRemovals):
            yield
            return
        deferred = _DeferredRemovals(backend)
        self.file_backend = deferred
        try:
            yield
        finally:
            self.file_backend = backend
        kept = self._kept_paths()
        for kind, path in deferred.pending:
            if str(path) in kept:
                continue
            getattr(backend, kind)(path)
            if is_local_path(path):
                signature_path(path).unlink(missing_ok=True)
