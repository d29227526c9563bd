"""Test-only hook: puts an object outside the weights-only allowlist into every checkpoint.

A ``fractions.Fraction`` is harmless, but ``torch.load(weights_only=True)`` refuses it like any
unknown global, so checkpoints of a run with this hook need full unpickling: the case the trust
rule decides (``--resume`` of our own signed checkpoint: yes; anything else: refused).
"""
from fractions import Fraction

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class CustomStateHook(Hook):
    """Store ``meta['note'] = Fraction(1, 3)`` in every saved checkpoint."""

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['meta']['note'] = Fraction(1, 3)
