"""Optional gradient checkpointing of a block call."""
import torch
import torch.nn as nn
import torch.utils.checkpoint as cp


def run_block(block: nn.Module, *args, with_cp: bool = False):
    """Call ``block(*args)``, through activation checkpointing if asked.

    Checkpointing only applies when the first input requires grad
    (training); in eval it is a plain call.
    """
    first = args[0]
    if with_cp and isinstance(first, torch.Tensor) and first.requires_grad:
        return cp.checkpoint(block, *args, use_reentrant=False)
    return block(*args)
