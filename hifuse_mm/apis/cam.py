"""Class activation maps of HiFuse / HEMF with the ``grad-cam`` package.

The papers compute Grad-CAM (HiFuse) and Grad-CAM++ (HEMF) on "the last layer except the linear
layer": the stage-4 fused map, the output of the neck's last fusion block (``neck.blocks[-1]``,
``[B, C, H/32, W/32]``). With ``branches`` the stage-4 local-branch and global-branch maps are
explained too, to show where each branch looks.

``grad-cam`` hooks modules whose output is one tensor. The branch maps are not: HiFuse's global
stage returns ``(tokens, hw_shape)`` and the backbones return per-stage ``(local, global)``
tuples. :class:`TappedClassifier` therefore routes the backbone's last-stage maps through
identity modules (``taps['local']``, ``taps['global']``) before the neck, which makes them
addressable without touching the model code; its output is the head's class scores.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

#: ``--method`` choices -> grad-cam class names.
CAM_METHODS: Dict[str, str] = {
    'gradcam': 'GradCAM',
    'gradcam++': 'GradCAMPlusPlus',
    'layercam': 'LayerCAM',
    'eigencam': 'EigenCAM',
}
#: Maps that can be explained, in display order.
TARGETS: Tuple[str, ...] = ('fused', 'local', 'global')


class CamError(RuntimeError):
    """A CAM cannot be computed for this model or request; the message says why."""


class TappedClassifier(nn.Module):
    """An ``ImageClassifier`` whose last-stage branch maps pass through addressable modules.

    ``forward(inputs)`` returns the class scores (logits) of a normalised batch, as
    ``model.head(model.extract_feat(inputs))`` does. ``taps[name]`` (``'local'``,
    ``'global'``) is an identity module whose output is that branch's stage-4 map; a backbone
    built with one branch only (ablation configs) has one tap.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        for part in ('backbone', 'neck', 'head'):
            if getattr(model, part, None) is None:
                raise CamError(f'the model has no {part}; CAMs need a HiFuse/HEMF classifier '
                               '(backbone + fusion neck + head)')
        self.model = model
        backbone = model.backbone
        self.branches = tuple(name for name in ('local', 'global')
                              if getattr(backbone, f'with_{name}_branch', True))
        self.taps = nn.ModuleDict({name: nn.Identity() for name in self.branches})

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        stages = list(self.model.backbone(inputs))
        last = stages[-1]
        if len(last) != len(self.branches):
            raise CamError(f'expected the backbone\'s last stage to give {len(self.branches)} '
                           f'map(s) ({", ".join(self.branches)}), got {len(last)}')
        stages[-1] = tuple(self.taps[name](feature) for name, feature in zip(self.branches, last))
        return self.model.head(self.model.neck(tuple(stages)))

    def target_layer(self, target: str) -> nn.Module:
        """The module whose output is the ``target`` map: ``'fused'``, ``'local'``, ``'global'``."""
        if target == 'fused':
            blocks = getattr(self.model.neck, 'blocks', None)
            if blocks is not None and len(blocks):
                return blocks[-1]
            # A neck without fusion (ablation) pools the backbone's first branch map directly.
            return self.taps[self.branches[0]]
        if target in self.taps:
            return self.taps[target]
        if target in TARGETS:
            raise CamError(f'this backbone has no {target} branch (an ablation config); '
                           f'explain {" or ".join(("fused", ) + self.branches)} instead')
        raise CamError(f'unknown CAM target {target!r}; one of {TARGETS}')


@dataclass
class CamResult:
    """CAMs of one image.

    Attributes:
        maps: ``{target: [H, W] float32 in [0, 1]}`` at the input resolution.
        category: The class the maps explain.
        probabilities: The model's class probabilities for the image.
    """

    maps: Dict[str, np.ndarray]
    category: int
    probabilities: np.ndarray = field(repr=False)

    @property
    def predicted(self) -> int:
        """The predicted class."""
        return int(self.probabilities.argmax())


def _grad_cam_class(method: str) -> type:
    if importlib.util.find_spec('pytorch_grad_cam') is None:
        raise CamError('CAMs need the grad-cam package: pip install "grad-cam>=1.5" '
                       '(or `pip install -e .[cam]`)')
    if method not in CAM_METHODS:
        raise CamError(f'unknown CAM method {method!r}; one of {sorted(CAM_METHODS)}')
    import pytorch_grad_cam

    return getattr(pytorch_grad_cam, CAM_METHODS[method])


class CamExplainer:
    """Compute CAMs of a classifier's stage-4 maps.

    Args:
        model: An MMPretrain ``ImageClassifier`` with a HiFuse/HEMF backbone and fusion neck.
        method: One of :data:`CAM_METHODS`.
        targets: Which maps to explain, from :data:`TARGETS`.
    """

    def __init__(self, model: nn.Module, method: str = 'gradcam',
                 targets: Sequence[str] = ('fused', )) -> None:
        self.cam_class = _grad_cam_class(method)
        self.method = method
        self.tapped = TappedClassifier(model).eval()
        self.layers = {target: self.tapped.target_layer(target) for target in targets}

    def explain(self, inputs: torch.Tensor,
                category: Optional[int] = None) -> List[CamResult]:
        """CAMs for a normalised ``[B, C, H, W]`` batch.

        Args:
            inputs: The batch (from :meth:`ImagePreprocessor.batch`).
            category: Class to explain for every image; None: each image's predicted class.
        """
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        with torch.no_grad():
            probabilities = self.tapped(inputs).float().softmax(dim=1).cpu().numpy()
        num_classes = probabilities.shape[1]
        if category is not None and not 0 <= category < num_classes:
            raise CamError(f'--target-category {category} is out of range: the model has '
                           f'{num_classes} classes (0..{num_classes - 1})')
        categories = [int(row.argmax()) if category is None else category
                      for row in probabilities]
        grad_targets = [ClassifierOutputTarget(c) for c in categories]
        # Gradients reach every map even where frozen stages (frozen_stages) stop them.
        inputs = inputs.detach().clone().requires_grad_(True)
        maps: Dict[str, np.ndarray] = {}
        for target, layer in self.layers.items():
            cam = self.cam_class(model=self.tapped, target_layers=[layer])
            try:
                maps[target] = cam(input_tensor=inputs, targets=grad_targets)
            finally:
                cam.activations_and_grads.release()
                self.tapped.zero_grad(set_to_none=True)
        return [CamResult(maps={t: m[i].astype(np.float32) for t, m in maps.items()},
                          category=categories[i], probabilities=probabilities[i])
                for i in range(len(categories))]


def mean_inside_outside(cam: np.ndarray, mask: np.ndarray) -> Tuple[float, float]:
    """Mean CAM value inside and outside a binary mask of the same size."""
    inside = mask.astype(bool)
    if cam.shape != inside.shape:
        raise ValueError(f'CAM {cam.shape} and mask {inside.shape} differ in size')
    if inside.all() or not inside.any():
        raise ValueError('the mask must have pixels both inside and outside')
    return float(cam[inside].mean()), float(cam[~inside].mean())
