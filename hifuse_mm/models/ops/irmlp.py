"""The fusion blocks' inverted residual MLP with its expansion one image at a time."""
import torch

from ..layers.irmlp import IRMLP
from .drop_in import DropIn


def irmlp_per_image(mlp: IRMLP, x: torch.Tensor) -> torch.Tensor:
    """Without autograd, the expansion, GELU and projection one image at a time.

    The expanded map is the models' largest activation (``4 * 3C`` channels at
    full stage resolution in HiFuse); a fresh allocation that size page-faults
    on first touch on the CPU, one image's does much less. With autograd, in
    train mode or on one image: :class:`~hifuse_mm.models.layers.IRMLP`.
    """
    if (mlp.training or x.shape[0] == 1 or torch.is_grad_enabled() and (
            x.requires_grad or mlp.expand.weight.requires_grad)):
        return IRMLP.forward(mlp, x)
    x = mlp.norm(mlp.act(mlp.spatial_conv(x)) + x)
    return torch.cat(
        [mlp.project(mlp.act(mlp.expand(img))) for img in x.split(1)])


class OptimisedIRMLP(DropIn, IRMLP):
    """Drop-in for :class:`~hifuse_mm.models.layers.IRMLP` (op ``irmlp``)."""

    reference = IRMLP
    op = 'irmlp'
    implementations = {'per_image': irmlp_per_image}
