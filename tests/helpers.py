"""Paths, environment and small fixtures shared by the tests (``from helpers import REPO``)."""
import contextlib
import os
import shlex
from pathlib import Path
from typing import Dict, Iterator

import torch

#: The repository root.
REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / 'tests'
TOOLS = REPO / 'tools'
#: The demo config the tests' small configs inherit from.
DEMO_CONFIG = REPO / 'configs' / 'hifuse' / 'hifuse-tiny_demo.py'


def repo_env(*paths: Path, **variables: str) -> Dict[str, str]:
    """This process's environment for a tool subprocess: ``PYTHONPATH`` starts with the
    repository (then ``paths``, then what it was), plus ``variables``."""
    pythonpath = os.pathsep.join(
        filter(None, [str(REPO), *map(str, paths), os.environ.get('PYTHONPATH')]))
    return dict(os.environ, PYTHONPATH=pythonpath, **variables)


@contextlib.contextmanager
def inside(folder: Path) -> Iterator[None]:
    """Run a block in ``folder`` (as the tools run in a work dir), restoring the working folder
    and torch's deterministic-algorithms flag (a deterministic run turns it on) afterwards."""
    before = torch.are_deterministic_algorithms_enabled()
    with contextlib.chdir(folder):
        yield
    torch.use_deterministic_algorithms(before)


class Payload:
    """A hostile pickle: unpickling it runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {shlex.quote(self.marker)}', )


def forward_parts(model: torch.nn.Module, x: torch.Tensor):
    """One no-grad pass of an ImageClassifier with a fusion neck: ``(logits, stage maps, the
    neck's fused map, the neck's features)``, each as that pass computed it (the stage maps are
    the backbone's output, the fused map what ``neck.fuse`` returned on them)."""
    seen = {}
    fuse = model.neck.fuse

    def spy(inputs):
        seen['fused'] = fuse(inputs)
        return seen['fused']

    def keep(name):
        def hook(module, args, out):
            seen[name] = out  # (returns None: the output is left as it is)
        return hook

    hooks = [model.backbone.register_forward_hook(keep('stages')),
             model.neck.register_forward_hook(keep('neck'))]
    model.neck.fuse = spy
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        del model.neck.fuse
        for hook in hooks:
            hook.remove()
    return logits, seen['stages'], seen['fused'], seen['neck']


def check_fusion_shapes(model: torch.nn.Module, size, channels, num_classes: int) -> None:
    """One pass of a fusion classifier (``forward_parts``) on a ``(1, 3, *size)`` batch: four
    stages of (local, global) maps with ``channels`` at strides 4-32, the fused map (768
    channels, stride 32), the neck's 768 features, ``num_classes`` logits."""
    logits, stages, fused, features = forward_parts(model, torch.randn(1, 3, *size))
    assert len(stages) == 4
    for i, (local_map, global_map) in enumerate(stages):
        expected = (1, channels[i], size[0] // 2**(i + 2), size[1] // 2**(i + 2))
        assert local_map.shape == expected
        assert global_map.shape == expected
    assert fused.shape == (1, 768, size[0] // 32, size[1] // 32)
    assert features[0].shape == (1, 768)
    assert logits.shape == (1, num_classes)
